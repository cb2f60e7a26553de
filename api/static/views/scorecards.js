// #/ — the agency scorecards: each agency's figures over the filters' selection (from, to, district, channel, as_of),
// the city's published figures first, each with what it rests on; the filter form; what the figures mean.

import { h } from "../dom.js";
import { formatDuration, formatInt, formatRate, localName, t } from "../i18n.js";
import { figureLabel, figureNotes, PUBLISHED, publishedCell } from "../figures.js";
import { cached, chainOrNull } from "../state.js";
import {
  auditLine,
  enc,
  filterForm,
  filterParams,
  filterQuery,
  message,
  pageHeading,
  ratingCell,
  row,
  selectionText,
  table,
  unansweredCell,
} from "../ui.js";

export async function scorecardsView({ params }) {
  const [answer, chain] = await Promise.all([cached("scorecards", { by: "agency", ...filterParams(params) }), chainOrNull()]);
  const query = filterQuery(params);
  const name = (card) => localName(card, card.agency_id, "agency_name_");
  // each agency's link once, in the first table
  const link = (card) => h("a", { href: `#/agency/${enc(card.agency_id)}${query}` }, name(card));
  const heading = t("sc_title");
  return {
    title: heading,
    node: [
      pageHeading(heading),
      h("p", { class: "lead" }, t("sc_intro")),
      auditLine(chain?.audit),
      filterForm(params),
      h("p", { class: "rankings-link" }, h("a", { href: `#/rankings${query}` }, t("rankings_link"))),
      answer.items.length
        ? [
            h("h2", {}, t("published_figures")),
            table({
              caption: t("sc_caption_agency", { range: selectionText(params) }),
              columns: [
                { label: t("col_agency") },
                ...PUBLISHED.map((figure) => ({ label: figureLabel(figure), num: true })),
                { label: t("col_rating"), num: true },
                { label: t("col_opened"), num: true },
              ],
              rows: answer.items.map((card) =>
                row(link(card), [
                  ...PUBLISHED.map((figure) => [publishedCell(card.metrics, figure), true]),
                  [ratingCell(card.metrics), true],
                  [formatInt(card.metrics.cases_opened), true],
                ]),
              ),
              className: "scorecards",
            }),
            figureNotes({ minSample: answer.min_ranked_sample }),
            h("h2", {}, t("other_figures")),
            table({
              caption: t("sc_caption_more", { range: selectionText(params) }),
              columns: [{ label: t("col_agency") }, ...moreColumns()],
              rows: answer.items.map((card) => row(name(card), moreCells(card.metrics))),
              className: "scorecards-more",
            }),
          ]
        : message(t("no_cases")),
    ],
  };
}

function moreColumns() {
  return [
    { label: t("col_closed"), num: true },
    { label: t("col_median"), num: true },
    { label: t("col_open"), num: true },
    { label: t("col_overdue"), num: true },
    { label: t("col_rejection"), num: true },
    { label: t("col_late_rejections"), num: true },
    { label: t("col_late"), num: true },
    { label: t("col_rating_response"), num: true },
    { label: t("col_bad_ratings"), num: true },
    { label: t("col_disputes"), num: true },
    { label: t("col_unanswered"), num: true },
    { label: t("col_reopened"), num: true },
    { label: t("col_filings"), num: true },
    { label: t("col_filings_overdue"), num: true },
    { label: t("col_filings_late"), num: true },
  ];
}

function moreCells(metrics) {
  return [
    [formatInt(metrics.cases_closed), true],
    [formatDuration(metrics.median_fulfil_seconds), true],
    [formatInt(metrics.open_cases), true],
    [formatInt(metrics.overdue_cases), true],
    [formatRate(metrics.rejection_rate), true],
    [unansweredCell(metrics.late_rejections + metrics.late_withdrawals), true],
    [formatInt(metrics.late_recordings), true],
    [formatRate(metrics.rating_response_rate), true],
    [formatInt(metrics.bad_ratings), true],
    [formatInt(metrics.disputes), true],
    [unansweredCell(metrics.disputes_unanswered), true],
    [formatInt(metrics.reopened), true],
    [formatInt(metrics.filings), true],
    [unansweredCell(metrics.filings_overdue), true],
    [unansweredCell(metrics.filings_answered_late), true],
  ];
}
