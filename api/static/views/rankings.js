// #/rankings?by=agency|commitment&figure=… — agencies or commitments in order of one published figure, over the
// filters' selection (from, to, district, channel, as_of). The ranks are the API's (ledger.metrics.ranks: the highest
// rate first, equal rates sharing a rank); the rows come in rank order, then the ones not ranked (a rate resting on
// fewer than the response's min_ranked_sample cases, or none), in the API's order. The address keeps the selection
// and the figure, so a ranking can be shared.

import { h, newId } from "../dom.js";
import { formatInt, localName, t } from "../i18n.js";
import { figureLabel, figureNotes, RANKED, rankedFigure, rankOf, rateCell } from "../figures.js";
import { cached, navigate } from "../state.js";
import { enc, filterForm, filterParams, filterQuery, message, pageHeading, selectionText, table } from "../ui.js";

const BY = ["agency", "commitment"];

/** The rankings' address for a choice of `by` and `figure`, keeping the filters of `params`. */
export function rankingsHash(params, by, figure) {
  const query = new URLSearchParams({ by, figure });
  for (const [name, value] of new URLSearchParams(filterQuery(params))) query.set(name, value);
  return `#/rankings?${query}`;
}

export async function rankingsView({ params }) {
  const by = BY.includes(params.get("by")) ? params.get("by") : BY[0];
  const figure = rankedFigure(params.get("figure")) || RANKED[0];
  const answer = await cached("scorecards", { by, ...filterParams(params) });
  const minSample = answer.min_ranked_sample;
  // Array.prototype.sort is stable: equal ranks stay in the API's (id) order
  const ranked = answer.items.filter((card) => rankOf(card, figure) !== null).sort((a, b) => rankOf(a, figure) - rankOf(b, figure));
  const unranked = answer.items.filter((card) => rankOf(card, figure) === null);
  const query = filterQuery(params);
  const label = figureLabel(figure);
  const heading = t("rk_title");

  const name = (card) =>
    by === "agency"
      ? h("a", { href: `#/agency/${enc(card.agency_id)}${query}` }, localName(card, card.agency_id, "agency_name_"))
      : h(
          "span",
          {},
          h("a", { href: `#/commitment/${enc(card.agency_id)}/${enc(card.commitment_id)}${query}` }, localName(card, card.commitment_id, "commitment_name_")),
          h("span", { class: "of-agency" }, localName(card, card.agency_id, "agency_name_")),
        );
  const line = (card) => {
    const rank = rankOf(card, figure);
    return h(
      "tr",
      { class: rank === null ? "unranked" : null },
      h("td", { class: "num rank" }, rank === null ? h("span", { class: "not-ranked" }, t("not_ranked", { n: formatInt(minSample) })) : formatInt(rank)),
      h("th", { scope: "row" }, name(card)),
      h("td", { class: "num" }, rateCell(card.metrics, figure)),
    );
  };

  return {
    title: `${heading}: ${label}`,
    node: [
      pageHeading(heading),
      h("p", { class: "lead" }, t("rk_intro")),
      filterForm(params, { path: "#/rankings", keep: ["by", "figure"] }),
      rankControls(params, by, figure),
      h("p", { class: "figure-about" }, h("strong", {}, label), t("label_sep"), t(`about.${figure.key}`)),
      h("p", { class: "figure-about" }, t("about_ranking", { n: formatInt(minSample) })),
      answer.items.length
        ? table({
            caption: t(`rk_caption_${by}`, { figure: label, selection: selectionText(params) }),
            columns: [
              { label: t("col_rank"), num: true },
              { label: t(by === "agency" ? "col_agency" : "col_commitment") },
              { label, num: true },
            ],
            rows: [...ranked, ...unranked].map(line),
            className: "rankings",
          })
        : message(t("rk_empty")),
      figureNotes({ minSample }),
    ],
  };
}

/** What to rank (agencies or commitments) and by which figure: a choice goes to its address at once, the focus
 * staying on the control, as the commitment view's day/week switch does. */
function rankControls(params, by, figure) {
  const group = newId("rank-by");
  const byChoices = BY.map((value) => {
    const id = newId("rank-by-option");
    return h(
      "span",
      { class: "choice" },
      h("input", {
        type: "radio", name: group, id, value, checked: value === by,
        onchange: () => navigate(rankingsHash(params, value, figure.key), { focus: `.rank-controls input[value="${value}"]` }),
      }),
      h("label", { for: id }, t(`rk_by_${value}`)),
    );
  });
  const selectId = newId("rank-figure");
  const select = h(
    "select",
    {
      id: selectId, name: "figure",
      onchange: (event) => navigate(rankingsHash(params, by, event.target.value), { focus: ".rank-controls select" }),
    },
    RANKED.map((option) => h("option", { value: option.key, selected: option === figure }, figureLabel(option))),
  );
  return h(
    "div",
    { class: "rank-controls" },
    h("fieldset", { class: "bucket-switch" }, h("legend", {}, t("rk_by")), byChoices),
    h("div", { class: "field" }, h("label", { for: selectId }, t("rk_figure")), select),
  );
}
