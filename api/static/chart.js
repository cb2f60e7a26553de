// The on-time trend chart: one bar per period (day or week), the commitment's target as a dashed reference line.
// Inline SVG drawn here, sized to its container in CSS pixels so its text stays legible on a phone; it has a
// <title> and <desc>, and the page puts the same figures in a table next to it.

import { newId, s } from "./dom.js";
import { formatInt, formatRate, formatShortDate, t } from "./i18n.js";

const HEIGHT = 240;
const MARGIN = { top: 14, right: 10, bottom: 34, left: 46 };
const GRID = [0, 0.25, 0.5, 0.75, 1];

/**
 * Draw `points` ([{start, rate, on_time, eligible}], rate a number in [0, 1] or null) into `container`, and again
 * when the container's width changes. `title` and `desc` are the chart's accessible name and description.
 */
export function drawTrend(container, points, { target, title, desc }) {
  let drawnWidth = 0;
  const draw = () => {
    const width = Math.round(Math.max(280, Math.min(container.clientWidth || 640, 1200)));
    if (width === drawnWidth) return;
    drawnWidth = width;
    container.replaceChildren(trendSvg(points, { target, title, desc, width }));
  };
  draw();
  if ("ResizeObserver" in window) {
    const observer = new ResizeObserver(() => {
      if (!container.isConnected) observer.disconnect();
      else draw();
    });
    observer.observe(container);
  }
}

function trendSvg(points, { target, title, desc, width }) {
  const titleId = newId("chart-title");
  const descId = newId("chart-desc");
  const hatchId = newId("hatch");
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (rate) => MARGIN.top + plotH * (1 - rate);
  const band = plotW / Math.max(points.length, 1);
  const barW = Math.max(2, Math.min(band * 0.72, 48));

  const svg = s("svg", {
    class: "trend-chart",
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
  });
  svg.append(
    s("title", { id: titleId }, title),
    s("desc", { id: descId }, desc),
    s(
      "defs",
      {},
      s(
        "pattern",
        { id: hatchId, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
        s("rect", { class: "bar-below-bg", width: 6, height: 6 }),
        s("line", { class: "bar-below-line", x1: 0, y1: 0, x2: 0, y2: 6 }),
      ),
    ),
  );

  const grid = s("g", { class: "grid", "aria-hidden": "true" });
  for (const rate of GRID) {
    grid.append(
      s("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(rate), y2: y(rate) }),
      s("text", { x: MARGIN.left - 6, y: y(rate), dy: "0.32em", "text-anchor": "end" }, formatRate(rate)),
    );
  }
  svg.append(grid);

  const bars = s("g", { class: "bars" });
  const labels = s("g", { class: "x-labels", "aria-hidden": "true" });
  // label at most one period in `every`, so labels never overlap (about 56 px each)
  const every = Math.max(1, Math.ceil(points.length / Math.max(1, Math.floor(plotW / 56))));
  points.forEach((point, index) => {
    const cx = MARGIN.left + band * (index + 0.5);
    const when = formatShortDate(point.start);
    if (point.rate === null || point.rate === undefined) {
      bars.append(
        s(
          "line",
          { class: "bar-empty", x1: cx - barW / 2, x2: cx + barW / 2, y1: y(0) - 1, y2: y(0) - 1 },
          s("title", {}, `${when}: ${t("chart_no_data")}`),
        ),
      );
    } else {
      const below = target !== null && target !== undefined && point.rate < target;
      const top = y(point.rate);
      bars.append(
        s(
          "rect",
          {
            class: below ? "bar bar-below" : "bar",
            x: cx - barW / 2,
            y: top,
            width: barW,
            height: Math.max(0, y(0) - top),
            fill: below ? `url(#${hatchId})` : null,
          },
          s("title", {}, `${when}: ${formatRate(point.rate)} (${formatInt(point.on_time)} / ${formatInt(point.eligible)})`),
        ),
      );
    }
    if (index % every === 0) {
      labels.append(s("text", { x: cx, y: HEIGHT - MARGIN.bottom + 18, "text-anchor": "middle" }, when));
    }
  });
  svg.append(bars, labels);
  svg.append(s("line", { class: "axis", x1: MARGIN.left, x2: width - MARGIN.right, y1: y(0), y2: y(0), "aria-hidden": "true" }));

  if (target !== null && target !== undefined) {
    // the figure's legend names it; a label here would cover the bars that reach it
    svg.append(
      s(
        "g",
        { class: "target", "aria-hidden": "true" },
        s("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(target), y2: y(target) }),
      ),
    );
  }
  return svg;
}
