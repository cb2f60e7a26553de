// #/agency/{agency} — an agency: its figures per commitment (the city's published figures first, each with what it
// rests on) over the filters' selection, its withheld batches and its signing keys.

import { h } from "../dom.js";
import { formatDuration, formatInt, formatRate, localName, t } from "../i18n.js";
import { figureLabel, figureNotes, PUBLISHED, publishedCell } from "../figures.js";
import { cached, chainOrNull, MAX_LIST } from "../state.js";
import {
  auditLine,
  breadcrumbs,
  code,
  deadlineText,
  enc,
  facts,
  filterForm,
  filterParams,
  filterQuery,
  message,
  otherLang,
  feedLink,
  pageHeading,
  proofLink,
  row,
  selectionText,
  table,
  timeEl,
  withheldCount,
  withheldLabel,
} from "../ui.js";

export async function agencyView({ args: [agencyId], params }) {
  const [agency, commitments, scorecards, withheld, chain] = await Promise.all([
    cached(`agencies/${enc(agencyId)}`, {}),
    cached("commitments", { agency_id: agencyId, limit: MAX_LIST }),
    cached("scorecards", { by: "commitment", ...filterParams(params) }),
    cached("batches", { agency_id: agencyId, withheld: true, limit: MAX_LIST }),
    chainOrNull(),
  ]);
  const cards = new Map(scorecards.items.filter((card) => card.agency_id === agencyId).map((card) => [card.commitment_id, card]));
  const name = localName(agency, agencyId);
  const other = otherLang();
  const query = filterQuery(params);
  const commitmentRows = commitments.items.map((commitment) => {
    const card = cards.get(commitment.commitment_id);
    const metrics = card ? card.metrics : {};
    return row(
      h(
        "span",
        {},
        h("a", { href: `#/commitment/${enc(agencyId)}/${enc(commitment.commitment_id)}${query}` }, localName(commitment, commitment.commitment_id)),
        commitment.retired ? h("span", { class: "badge muted" }, t("retired")) : null,
      ),
      [
        ...PUBLISHED.map((figure) => [publishedCell(metrics, figure, figure === PUBLISHED[0] ? commitment.target_rate : null), true]),
        [formatRate(commitment.target_rate), true],
        [deadlineText(commitment), false],
        [formatInt(metrics.cases_opened), true],
        [formatDuration(metrics.median_fulfil_seconds), true],
        [formatInt(metrics.open_cases), true],
        [formatInt(metrics.overdue_cases), true],
      ],
    );
  });
  return {
    title: name,
    node: [
      breadcrumbs([[t("nav_scorecards"), `#/${query}`]], name),
      pageHeading(name),
      h("p", { class: "lead", lang: other }, agency[`name_${other}`]),
      feedLink(`agencies/${enc(agencyId)}`, t("feed_agency")),
      auditLine(chain?.audit),
      facts([
        [t("agency_id"), code(agencyId)],
        [t("jurisdiction"), code(agency.jurisdiction)],
        [t("registered_proof"), proofLink(agency.registration.seq)],
        [t("batches_withheld"), withheldCount(agency)],
      ]),
      withheldSection(agency, withheld.items),
      h("h2", {}, t("commitments")),
      filterForm(params, { path: `#/agency/${enc(agencyId)}` }),
      commitmentRows.length
        ? table({
            caption: t("sc_caption_commitment", { agency: name, range: selectionText(params) }),
            columns: [
              { label: t("col_commitment") },
              ...PUBLISHED.map((figure) => ({ label: figureLabel(figure), num: true })),
              { label: t("col_target"), num: true },
              { label: t("deadline") },
              { label: t("col_opened"), num: true },
              { label: t("col_median"), num: true },
              { label: t("col_open"), num: true },
              { label: t("col_overdue"), num: true },
            ],
            rows: commitmentRows,
          })
        : message(t("no_commitments")),
      commitmentRows.length ? figureNotes({ minSample: scorecards.min_ranked_sample }) : null,
      h("h2", {}, t("signers")),
      table({
        caption: t("signers_caption"),
        columns: [{ label: t("signer") }, { label: t("signer_change") }, { label: t("block_time") }, { label: t("col_proof") }],
        rows: agency.key_history.map((change) =>
          row(code(change.signer), [
            [t(change.action), false],
            [timeEl(change.proof.block_time), false],
            [proofLink(change.proof.seq), false],
          ]),
        ),
      }),
    ],
  };
}

/** The agency's withheld batches: why their entries are not in its figures. */
function withheldSection(agency, batches) {
  if (!batches.length) return null;
  return h(
    "section",
    { class: "withheld", "aria-labelledby": "withheld-heading" },
    h("h2", { id: "withheld-heading" }, t("withheld_title")),
    message(t("withheld_intro", { n: formatInt(agency.batches_withheld), entries: formatInt(agency.entries_withheld) }), "error"),
    table({
      caption: t("withheld_caption"),
      columns: [{ label: t("col_batch") }, { label: t("col_entries"), num: true }, { label: t("col_recorded_short") }, { label: t("col_withheld") }, { label: t("col_reason") }],
      rows: batches.map((batch) =>
        row(h("a", { href: `#/batch/${batch.seq}` }, `#${batch.seq}`), [
          [formatInt(batch.count), true],
          [timeEl(batch.proof.block_time), false],
          [withheldLabel(batch), false],
          [h("span", { class: "reason", lang: "en" }, batch.withheld_reason), false],
        ]),
      ),
      className: "withheld-batches",
    }),
  );
}
