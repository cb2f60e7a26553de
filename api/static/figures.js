// The figures a city publishes (ledger/metrics.py, "The figures a city publishes" and "Rankings") as the page shows,
// explains and ranks them: each one's rate beside the count it rests on (its sample, the rate's denominator), so a
// reader sees what a rate is worth. Their names and explanations are in i18n.js ("fig.*", "about.*").

import { h } from "./dom.js";
import { formatInt, formatRate, t } from "./i18n.js";
import { rateWithTarget } from "./ui.js";

/** The city's figures in the order the page shows them. `sample` is the count each is a rate of, as
 * ledger.metrics.RANKED_FIGURES names it (tests/api/test_rankings_page.py checks that the two agree). */
export const PUBLISHED = [
  { key: "deadline_rate", sample: (m) => m.deadline_cases },
  { key: "response_rate", sample: (m) => m.responses_due },
  { key: "resolution_rate", sample: (m) => m.answers_with_receipt },
  { key: "satisfaction_rate", sample: (m) => m.ratings },
  { key: "rating_coverage", sample: (m) => m.cases_closed },
  { key: "rectification_rate", sample: (m) => m.rectifications_due },
];
/** The older on-time rate, of fulfilled cases only: shown under the on-time rate, and a figure to rank by. */
export const ON_TIME_OF_FULFILLED = { key: "on_time_rate", sample: (m) => m.on_time_eligible };
/** The figures a ranking may be by (ledger.metrics.RANKED_FIGURES), the default first. */
export const RANKED = [...PUBLISHED, ON_TIME_OF_FULFILLED];

/** The ranked figure named `key`, or null. */
export function rankedFigure(key) {
  return RANKED.find((figure) => figure.key === key) || null;
}

/** A scorecard's rank by `figure` (the API's, ledger.metrics.ranks), or null when it is not ranked. */
export function rankOf(card, figure) {
  return card.ranks?.[figure.key] ?? null;
}

export function figureLabel(figure) {
  return t(`fig.${figure.key}`);
}

/** "of 110": the count `figure` of `metrics` rests on. */
function sampleNote(metrics, figure) {
  return h("span", { class: "sample" }, t("of_sample", { n: formatInt(figure.sample(metrics)) }));
}

/** "86.36% of 110": the rate and what it rests on, marked against `target` when one is given; "—" when there is no
 * rate. */
export function rateCell(metrics, figure, target = null) {
  return rateWithTarget(metrics[figure.key], target, sampleNote(metrics, figure));
}

/** The on-time rate a city publishes (deadline_rate) with its sample, and under it the older rate of fulfilled cases
 * only, so a reader sees what late rejections and overdue open cases change. */
export function onTimeCell(metrics, target = null) {
  const main = rateCell(metrics, PUBLISHED[0], target);
  const old = metrics.on_time_rate;
  if (old === null || old === undefined) return main;
  return h(
    "span",
    { class: "on-time" },
    main,
    h(
      "span",
      { class: "fulfilled-only" },
      t("fulfilled_only"),
      " ",
      h("span", { class: "value" }, formatRate(old), " ", t("of_sample", { n: formatInt(metrics.on_time_eligible) })),
    ),
  );
}

/** The cell of a published figure: the on-time rate with its older companion, any other with its sample. */
export function publishedCell(metrics, figure, target = null) {
  return figure === PUBLISHED[0] ? onTimeCell(metrics, target) : rateCell(metrics, figure, target);
}

/** What each figure means, in words that follow ledger/metrics.py's definitions; with the ranking rule when the
 * view ranks (`minSample`: the response's min_ranked_sample). Folded, after the figures it explains. */
export function figureNotes({ minSample = null } = {}) {
  const item = (term, text) => h("div", {}, h("dt", {}, term), h("dd", {}, text));
  return h(
    "details",
    { class: "figure-notes" },
    h("summary", {}, t("figure_notes")),
    h(
      "dl",
      {},
      RANKED.map((figure) => item(figureLabel(figure), t(`about.${figure.key}`))),
      item(t("counting_time"), t("about_as_of")),
      minSample === null ? null : item(t("nav_rankings"), t("about_ranking", { n: formatInt(minSample) })),
    ),
  );
}
