// #/ — the agency scorecards: each agency's figures over the filters' range (from, to, district, channel), and the
// filter form.

import { h, newId } from "../dom.js";
import { channelLabel, CHANNELS, formatDuration, formatInt, formatRate, localName, t } from "../i18n.js";
import { cached, chainOrNull, navigate } from "../state.js";
import {
  auditLine,
  enc,
  filterParams,
  filterQuery,
  message,
  pageHeading,
  rangeText,
  rateWithTarget,
  ratingCell,
  row,
  table,
  unansweredCell,
} from "../ui.js";

export async function scorecardsView({ params }) {
  const [answer, chain] = await Promise.all([cached("scorecards", { by: "agency", ...filterParams(params) }), chainOrNull()]);
  const rows = answer.items.map((card) =>
    row(
      h("a", { href: `#/agency/${enc(card.agency_id)}${filterQuery(params)}` }, localName(card, card.agency_id, "agency_name_")),
      scorecardCells(card.metrics),
    ),
  );
  const heading = t("sc_title");
  return {
    title: heading,
    node: [
      pageHeading(heading),
      h("p", { class: "lead" }, t("sc_intro")),
      auditLine(chain?.audit),
      filterForm(params),
      rows.length
        ? table({
            caption: t("sc_caption_agency", { range: rangeText(params) }),
            columns: [{ label: t("col_agency") }, ...scorecardColumns()],
            rows,
            className: "scorecards",
          })
        : message(t("no_cases")),
    ],
  };
}

function scorecardColumns() {
  return [
    { label: t("col_on_time_rate"), num: true },
    { label: t("col_opened"), num: true },
    { label: t("col_closed"), num: true },
    { label: t("col_median"), num: true },
    { label: t("col_open"), num: true },
    { label: t("col_overdue"), num: true },
    { label: t("col_rejection"), num: true },
    { label: t("col_late"), num: true },
    { label: t("col_rating"), num: true },
    { label: t("col_rating_response"), num: true },
    { label: t("col_disputes"), num: true },
    { label: t("col_unanswered"), num: true },
    { label: t("col_reopened"), num: true },
    { label: t("col_filings"), num: true },
    { label: t("col_filings_overdue"), num: true },
    { label: t("col_filings_late"), num: true },
  ];
}

function scorecardCells(metrics) {
  return [
    [rateWithTarget(metrics.on_time_rate, metrics.target_rate), true],
    [formatInt(metrics.cases_opened), true],
    [formatInt(metrics.cases_closed), true],
    [formatDuration(metrics.median_fulfil_seconds), true],
    [formatInt(metrics.open_cases), true],
    [formatInt(metrics.overdue_cases), true],
    [formatRate(metrics.rejection_rate), true],
    [formatInt(metrics.late_recordings), true],
    [ratingCell(metrics), true],
    [formatRate(metrics.rating_response_rate), true],
    [formatInt(metrics.disputes), true],
    [unansweredCell(metrics.disputes_unanswered), true],
    [formatInt(metrics.reopened), true],
    [formatInt(metrics.filings), true],
    [unansweredCell(metrics.filings_overdue), true],
    [unansweredCell(metrics.filings_answered_late), true],
  ];
}

function filterForm(params) {
  const ids = { from: newId("from"), to: newId("to"), district: newId("district"), channel: newId("channel") };
  const field = (id, label, control) => h("div", { class: "field" }, h("label", { for: id }, label), control);
  const form = h(
    "form",
    { class: "filters-form" },
    h(
      "fieldset",
      {},
      h("legend", { class: "visually-hidden" }, t("filter")),
      field(ids.from, t("from"), h("input", { id: ids.from, name: "from", type: "date", value: params.get("from") || "" })),
      field(ids.to, t("to"), h("input", { id: ids.to, name: "to", type: "date", value: params.get("to") || "" })),
      field(
        ids.district,
        t("district"),
        h("input", {
          id: ids.district, name: "district", type: "text", value: params.get("district") || "", autocomplete: "off",
          spellcheck: "false", maxlength: "32", size: "12",
        }),
      ),
      field(
        ids.channel,
        t("channel"),
        h(
          "select",
          { id: ids.channel, name: "channel" },
          h("option", { value: "" }, t("any")),
          CHANNELS.map((channel) => h("option", { value: channel, selected: String(channel) === params.get("channel") }, channelLabel(channel))),
        ),
      ),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, t("apply")), h("button", { type: "reset", class: "secondary" }, t("reset"))),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (String(value).trim()) query.set(name, String(value).trim());
    const text = query.toString();
    navigate(`#/${text ? `?${text}` : ""}`);
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    navigate("#/");
  });
  // folded away on a phone unless a filter is in use, where it would push the figures below the fold
  const open = Boolean(filterQuery(params)) || window.matchMedia("(min-width: 40rem)").matches;
  return h("details", { class: "filters", open }, h("summary", {}, t("filter")), form);
}
