// The citizen page: a hash router over the public JSON API.
//   #/                              agency scorecards (filters in the query: from, to, district, channel)
//   #/agency/{agency}               an agency, its keys and its commitments
//   #/commitment/{agency}/{id}      a commitment, its versions, figures and on-time trend
//   #/case, #/case/{agency}/{id}    case lookup and a case's events with their proofs
//   #/receipt, #/receipt/{CODE}     a citizen's receipt: their case, and their rating or dispute (the code stays in
//                                   the URL fragment, which browsers never send; only the key's address is asked for)
//   #/proof/{seq}                   one entry's proof, checkable against any node
//   #/log                           the raw entry log, a page at a time (batch anchors marked)
//   #/batches, #/batch/{seq}        Merkle-anchored batches, and one batch with its file
//   #/audits                        independent audits: registered auditors, their attestations and reports

import * as api from "./api.js";
import { drawTrend } from "./chart.js";
import { h, newId } from "./dom.js";
import {
  channelLabel,
  CHANNELS,
  formatDate,
  formatDuration,
  formatInt,
  formatRate,
  formatScore,
  formatTime,
  isoInstant,
  kindLabel,
  lang,
  localDayStart,
  localIsoDate,
  localName,
  actionLabel,
  setLang,
  statusLabel,
  t,
  UTC_OFFSET_SECONDS,
} from "./i18n.js";

const LOG_PAGE = 50;
// lists the page shows whole (agencies, an agency's commitments) are asked for in one page of the API's largest size
const MAX_LIST = 1000;
const LATE_SECONDS = 86400;
const CASE_ID = /^0x[0-9a-fA-F]{64}$/;
// Answers are kept briefly, so switching language redraws at once without asking the server again.
const CACHE_MS = 30_000;

const main = document.getElementById("main");
const cache = new Map();
const state = {
  chain: null,
  // proofs seen with case events, by seq, so the proof view can link back to the case
  caseOfSeq: new Map(),
  // the raw log as loaded so far (kept across a language switch)
  log: null,
  // each render's number: a view whose answers arrive after a newer render started is dropped
  renderToken: 0,
};

function cached(path, params = {}) {
  const key = `${path}?${new URLSearchParams(params)}`;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.promise;
  const promise = api.get(path, params);
  cache.set(key, { at: Date.now(), promise });
  promise.catch(() => cache.delete(key));
  return promise;
}

// --- small building blocks ------------------------------------------------------------------------------------

const enc = encodeURIComponent;

function timeEl(unix, { dateOnly = false } = {}) {
  if (unix === null || unix === undefined) return t("none");
  return h("time", { datetime: isoInstant(unix) }, dateOnly ? formatDate(unix) : formatTime(unix));
}

function code(text, { short = false } = {}) {
  if (text === null || text === undefined || text === "") return t("none");
  const value = String(text);
  if (short && value.length > 18) {
    return h("code", { class: "hash", title: value }, `${value.slice(0, 10)}…${value.slice(-6)}`);
  }
  return h("code", { class: "hash" }, value);
}

/** A <dl> of [label, value] pairs (pairs with a null value left out). */
function facts(pairs, className = "facts") {
  return h(
    "dl",
    { class: className },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))),
  );
}

/** A table in a horizontally scrollable, keyboard-focusable region, so a wide table never widens the page. */
function table({ caption, columns, rows, className = "" }) {
  const captionId = newId("caption");
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-labelledby": captionId, tabindex: "0" },
    h(
      "table",
      { class: className },
      h("caption", { id: captionId }, caption),
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", class: column.num ? "num" : null }, column.label)))),
      h("tbody", {}, rows),
    ),
  );
}

/** A table row: the first cell a row header; `cells` are [content, isNumeric]. */
function row(header, cells, attrs = {}) {
  return h("tr", attrs, h("th", { scope: "row" }, header), cells.map(([content, num]) => h("td", { class: num ? "num" : null }, content)));
}

function rateWithTarget(rate, target) {
  if (rate === null || rate === undefined) return t("none");
  const text = formatRate(rate);
  if (target === null || target === undefined) return text;
  const below = Number(rate) < Number(target);
  return h("span", { class: below ? "rate below" : "rate meets" }, text, " ", h("span", { class: "badge" }, below ? t("below_target") : t("meets_target")));
}

function pageHeading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

function message(text, kind = "note") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

function deadlineText(commitment) {
  const key = commitment.deadline_unit === "working_days" ? "working_days" : "hours";
  return t(key, { n: formatInt(commitment.deadline) });
}

function otherLang() {
  return lang() === "zh" ? "en" : "zh";
}

/** The API's time range (unix seconds, `to` exclusive) from the page's date filters (local days, `to` inclusive). */
function rangeParams(params) {
  const from = localDayStart(params.get("from"));
  const to = localDayStart(params.get("to"));
  return { from: from ?? undefined, to: to === null ? undefined : to + 86400 };
}

/** The trend query: the page's date range, or by default the last 30 days or 26 weeks (weeks from Monday), in
 * local days, so that each bucket is a local day or week rather than a UTC one. */
function trendRange(params, bucket) {
  const range = rangeParams(params);
  if (range.from !== undefined) return { ...range, bucket };
  const today = localDayStart(localIsoDate(Date.now() / 1000));
  const end = range.to ?? today + 86400;
  const weekday = (new Date((end - 86400 + UTC_OFFSET_SECONDS) * 1000).getUTCDay() + 6) % 7; // Monday 0
  const from = bucket === "day" ? end - 30 * 86400 : end - 86400 - weekday * 86400 - 25 * 7 * 86400;
  return { from, to: range.to, bucket };
}

/** The scorecards query from the page's filters. */
function filterParams(params) {
  return { ...rangeParams(params), district: params.get("district") || undefined, channel: params.get("channel") || undefined };
}

function rangeText(params) {
  const from = params.get("from");
  const to = params.get("to");
  const f = (iso) => formatDate(localDayStart(iso));
  if (from && to) return t("range_from_to", { from: f(from), to: f(to) });
  if (from) return t("range_from", { from: f(from) });
  if (to) return t("range_to", { to: f(to) });
  return t("range_all");
}

/** Filter query parameters carried from page to page (scorecards → agency → commitment). */
function filterQuery(params) {
  const kept = new URLSearchParams();
  for (const name of ["from", "to", "district", "channel"]) if (params.get(name)) kept.set(name, params.get(name));
  const text = kept.toString();
  return text ? `?${text}` : "";
}

// --- views ----------------------------------------------------------------------------------------------------

async function scorecardsView({ params }) {
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
  ];
}

/** The average rating and how many ratings it is over: "4.25 (40)". */
function ratingCell(metrics) {
  if (metrics.rating_average === null || metrics.rating_average === undefined) return t("none");
  return h("span", {}, formatScore(metrics.rating_average), " ", h("span", { class: "subtle" }, t("rating_count", { n: formatInt(metrics.ratings) })));
}

function unansweredCell(count) {
  if (!count) return formatInt(count);
  return h("span", { class: "late" }, formatInt(count));
}

/** How the ratings of a selection are spread over the scores: a table (with bars) a screen reader reads as one. */
function ratingDistribution(metrics) {
  const counts = metrics.rating_distribution || [0, 0, 0, 0, 0];
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  return table({
    caption: t("distribution_caption", { n: formatInt(total) }),
    columns: [{ label: t("col_score") }, { label: t("col_ratings"), num: true }, { label: t("col_share") }],
    className: "distribution",
    rows: [5, 4, 3, 2, 1].map((score) => {
      const n = counts[score - 1];
      const share = n / total;
      const bar = h("span", { class: "share-bar", "aria-hidden": "true" });
      bar.style.width = `${(share * 100).toFixed(1)}%`; // through the CSSOM: the page's policy forbids style attributes
      return row(h("span", {}, `${score} · ${t(`score.${score}`)}`), [
        [formatInt(n), true],
        [h("span", { class: "share" }, h("span", { class: "share-track" }, bar), formatRate(share)), false],
      ]);
    }),
  });
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

async function agencyView({ args: [agencyId], params }) {
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
        [rateWithTarget(metrics.on_time_rate, commitment.target_rate), true],
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
      auditLine(chain?.audit),
      facts([
        [t("agency_id"), code(agencyId)],
        [t("jurisdiction"), code(agency.jurisdiction)],
        [t("registered_proof"), proofLink(agency.registration.seq)],
        [t("batches_withheld"), withheldCount(agency)],
      ]),
      withheldSection(agency, withheld.items),
      h("h2", {}, t("commitments")),
      commitmentRows.length
        ? table({
            caption: t("sc_caption_commitment", { agency: name, range: rangeText(params) }),
            columns: [
              { label: t("col_commitment") },
              { label: t("col_on_time_rate"), num: true },
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

/** The chain facts, or null when they cannot be had: the audit line they give is not worth failing a view for. */
function chainOrNull() {
  return cached("chain", {}).catch(() => null);
}

/** One line on how far independent auditors vouch for the whole ledger (`/api/v1/chain`'s `audit`): "Independently
 * audited up to block N by K auditors — passed", a warning when they found problems or when a registered auditor's
 * latest attestation does not match the ledger, "Not yet independently audited" before any; with a link to the
 * attestations and their reports. */
function auditLine(audit) {
  if (!audit) return null;
  const { text, failed, audited } = auditSummary(audit);
  const parts = [h("span", { class: "audit-summary" }, text)];
  if (audit.not_matching) {
    const key = audit.not_matching === 1 ? "audit_not_matching_one" : "audit_not_matching_many";
    parts.push(" ", h("strong", { class: "audit-mismatch badge warn" }, t(key, { n: formatInt(audit.not_matching) })));
  }
  parts.push(" ", h("a", { href: "#/audits" }, t("audit_details")));
  const kind = failed || audit.not_matching ? "error" : audited ? "success" : "note";
  return h("p", { class: `message audit-line ${kind}` }, parts);
}

/** The audit line's words, and whether the ledger is audited at all and whether the audit found problems. */
function auditSummary(audit) {
  if (audit.audited_to_block === null || audit.audited_to_block === undefined) return { text: t("audit_none"), failed: false, audited: false };
  const failed = audit.verdict !== "passed";
  const auditors = audit.auditors === 1 ? t("audit_auditors_one") : t("audit_auditors_many", { n: formatInt(audit.auditors) });
  const verdict = !failed
    ? t("audit_passed")
    : audit.findings === 1
      ? t("audit_findings_one")
      : t("audit_findings_many", { n: formatInt(audit.findings) });
  return { text: t("audit_line", { block: formatInt(audit.audited_to_block), auditors }) + verdict, failed, audited: true };
}

/** The cells of an attestation in the audits tables: block, verdict, findings, whether it matches, its report. */
function attestationCells(attestation) {
  const matches = attestation.matches_ledger;
  const verdict = attestation.verdict === "passed" ? h("span", { class: "badge" }, t("verdict_passed")) : h("span", { class: "badge warn" }, t("verdict_failed"));
  return [
    [formatInt(attestation.block_number), true],
    [verdict, false],
    [formatInt(attestation.findings), true],
    [matches === null ? t("matches_unknown") : matches ? t("matches_yes") : h("span", { class: "badge warn" }, t("matches_no")), false],
    [attestation.report_available ? h("a", { href: attestation.report_url, type: "application/json" }, t("report_link")) : h("span", { class: "subtle" }, t("report_missing")), false],
  ];
}

async function auditsView() {
  const [chain, page] = await Promise.all([cached("chain", {}), cached("attestations", { limit: MAX_LIST })]);
  const audit = chain.audit;
  const heading = t("audits_title");
  const attestationColumns = [
    { label: t("col_audited_block"), num: true },
    { label: t("col_verdict") },
    { label: t("col_findings"), num: true },
    { label: t("col_matches") },
    { label: t("col_report") },
  ];
  const current = audit.latest.length
    ? table({
        caption: t("audits_current_caption"),
        columns: [{ label: t("col_auditor") }, ...attestationColumns, { label: t("col_proof") }],
        rows: audit.latest.map(({ auditor, attestation }) =>
          row(
            code(auditor),
            attestation
              ? [...attestationCells(attestation), [proofLink(attestation.seq), false]]
              : [[t("no_attestation"), false], ["", false], ["", false], ["", false], ["", false], ["", false]],
          ),
        ),
        className: "auditors",
      })
    : message(t("audits_no_auditor"));
  const all = page.items.length
    ? table({
        caption: t("audits_all_caption"),
        columns: [{ label: t("col_seq") }, { label: t("col_auditor") }, ...attestationColumns],
        rows: page.items.map((attestation) => row(proofLink(attestation.seq), [[code(attestation.auditor, { short: true }), false], ...attestationCells(attestation)])),
        className: "attestations",
      })
    : message(t("audits_empty"));
  return { title: heading, node: [pageHeading(heading), h("p", { class: "lead" }, t("audits_intro")), auditLine(audit), current, all] };
}

/** "N batches (M entries)", marked, when an agency withholds batches; "none" otherwise. */
function withheldCount(counts) {
  if (!counts.batches_withheld) return t("withheld_none");
  return h("span", { class: "badge warn" }, t("withheld_count", { n: formatInt(counts.batches_withheld), entries: formatInt(counts.entries_withheld) }));
}

/** A withheld batch's state: missing (the file may still be published) or impossible (it never can be). */
function withheldLabel(batch) {
  if (!batch.withheld) return h("span", { class: "badge" }, t("batch_indexed"));
  return h("span", { class: "badge warn" }, t(`withheld_${batch.withheld}`));
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

/** "in batch #S (Merkle proof) file" for a record written in a Merkle-anchored batch; null for any other. */
function batchNote(seq, batch) {
  if (!batch) return null;
  return h(
    "span",
    { class: "batch-note" },
    t("in_batch"),
    " ",
    h("a", { href: `#/batch/${batch.seq}`, "aria-label": t("batch_link", { seq: batch.seq }) }, `#${batch.seq}`),
    " (",
    h("a", { href: `#/proof/${seq}` }, t("merkle_proof")),
    ") ",
    h("a", { href: batch.file_url, download: "" }, t("batch_file")),
  );
}

function proofLink(seq) {
  // the accessible name contains the visible text ("#12"), as WCAG's "label in name" asks
  return h("a", { href: `#/proof/${seq}`, "aria-label": t("proof_link", { seq }) }, `#${seq}`);
}

function breadcrumbs(trail, current) {
  return h(
    "nav",
    { class: "breadcrumbs", "aria-label": t("breadcrumbs") },
    h("ol", {}, trail.map(([label, href]) => h("li", {}, h("a", { href }, label))), h("li", { "aria-current": "page" }, current)),
  );
}

async function commitmentView({ args: [agencyId, commitmentId], params }) {
  const bucket = params.get("bucket") === "week" ? "week" : "day";
  const path = `commitments/${enc(agencyId)}/${enc(commitmentId)}`;
  const [agencies, history, trend, scorecards] = await Promise.all([
    cached("agencies", { limit: MAX_LIST }),
    cached(path, {}),
    cached(`${path}/trend`, trendRange(params, bucket)),
    cached("scorecards", { by: "commitment", ...filterParams(params) }),
  ]);
  const agency = agencies.items.find((a) => a.agency_id === agencyId) || { agency_id: agencyId };
  const versions = history.versions;
  const commitment = versions.find((v) => v.version === history.current_version) || versions[versions.length - 1];
  const card = scorecards.items.find((c) => c.agency_id === agencyId && c.commitment_id === commitmentId);
  const metrics = card ? card.metrics : {};
  const target = commitment.target_rate;
  const name = localName(commitment, commitmentId);
  const agencyName = localName(agency, agencyId);
  const other = otherLang();
  const query = filterQuery(params);
  const buckets = trend.buckets;

  const unit = t(`unit.${bucket}`);
  const rates = buckets.map((b) => b.on_time_rate).filter((r) => r !== null).map(Number);
  const chartTitle = t("chart_title", { bucket: unit, range: rangeText(params) });
  const chartDesc =
    trend.target_rate === null
      ? t("chart_desc_no_target", { count: formatInt(buckets.length) })
      : t("chart_desc", {
          count: formatInt(buckets.length),
          target: formatRate(trend.target_rate),
          min: rates.length ? formatRate(Math.min(...rates)) : t("none"),
          max: rates.length ? formatRate(Math.max(...rates)) : t("none"),
        });
  const chartBox = h("div", { class: "chart-box" });

  const node = [
    breadcrumbs([[t("nav_scorecards"), `#/${query}`], [agencyName, `#/agency/${enc(agencyId)}${query}`]], name),
    pageHeading(name),
    h("p", { class: "lead", lang: other }, commitment[`name_${other}`]),
    facts([
      [t("col_agency"), h("a", { href: `#/agency/${enc(agencyId)}${query}` }, agencyName)],
      [t("commitment_id"), code(commitmentId)],
      [t("service_code"), code(commitment.service_code)],
      [t("deadline"), deadlineText(commitment)],
      [t("target"), formatRate(target)],
      [t("valid_from"), timeEl(commitment.valid_from)],
      [t("status"), history.retired ? t("retired") : t("in_force")],
      [t("terms_hash"), code(commitment.terms_hash)],
    ]),
    h("h2", {}, t("figures"), " ", h("span", { class: "subtle" }, `(${rangeText(params)})`)),
    facts(
      [
        [t("col_opened"), formatInt(metrics.cases_opened)],
        [t("col_closed"), formatInt(metrics.cases_closed)],
        [t("col_on_time_rate"), rateWithTarget(metrics.on_time_rate, target)],
        [t("col_median"), formatDuration(metrics.median_fulfil_seconds)],
        [t("col_p90"), formatDuration(metrics.p90_fulfil_seconds)],
        [t("col_open"), formatInt(metrics.open_cases)],
        [t("col_overdue"), formatInt(metrics.overdue_cases)],
        [t("col_rejection"), formatRate(metrics.rejection_rate)],
        [t("col_latency"), formatDuration(metrics.latency_median_seconds)],
        [t("col_late"), formatInt(metrics.late_recordings)],
      ],
      "facts figures",
    ),
    h("h2", {}, t("feedback_figures"), " ", h("span", { class: "subtle" }, `(${rangeText(params)})`)),
    facts(
      [
        [t("col_rating"), ratingCell(metrics)],
        [t("col_rating_response"), formatRate(metrics.rating_response_rate)],
        [t("col_disputes"), formatInt(metrics.disputes)],
        [t("col_unanswered"), unansweredCell(metrics.disputes_unanswered)],
        [t("col_reopened"), formatInt(metrics.reopened)],
      ],
      "facts figures",
    ),
    ratingDistribution(metrics),
    h("h2", {}, t("trend_title")),
    bucketSwitch(bucket, params, agencyId, commitmentId),
    rates.length
      ? h("figure", { class: "chart" }, chartBox, h("figcaption", {}, chartLegend(trend.target_rate)))
      : message(t("chart_empty")),
    buckets.length
      ? h(
          "details",
          { class: "chart-data" },
          h("summary", {}, t("data_table")),
          table({
            caption: t("trend_caption", { bucket: unit }),
            columns: [
              { label: t("period_start") },
              { label: t("on_time_rate"), num: true },
              { label: t("on_time"), num: true },
              { label: t("eligible"), num: true },
            ],
            rows: buckets.map((b) =>
              row(timeEl(b.start, { dateOnly: true }), [
                [formatRate(b.on_time_rate), true],
                [formatInt(b.metrics.on_time), true],
                [formatInt(b.metrics.on_time_eligible), true],
              ]),
            ),
          }),
        )
      : null,
    h("h2", {}, t("versions")),
    table({
      caption: t("versions_caption"),
      columns: [
        { label: t("version") },
        { label: t("published") },
        { label: t("deadline") },
        { label: t("col_target"), num: true },
        { label: t("valid_from") },
        { label: t("col_proof") },
      ],
      rows: versions.map((version) =>
        row(
          h("span", {}, formatInt(version.version), version.voided_by !== null ? h("span", { class: "badge warn" }, t("voided", { seq: version.voided_by })) : null),
          [
            [timeEl(version.occurred_at), false],
            [deadlineText(version), false],
            [formatRate(version.target_rate), true],
            [timeEl(version.valid_from), false],
            [proofLink(version.proof.seq), false],
          ],
        ),
      ),
    }),
  ];
  const points = buckets.map((b) => ({
    start: b.start,
    rate: b.on_time_rate === null ? null : Number(b.on_time_rate),
    on_time: b.metrics.on_time,
    eligible: b.metrics.on_time_eligible,
  }));
  return {
    title: name,
    node,
    // the chart sizes itself to its box, so it is drawn once the box is in the page
    after: () => {
      if (rates.length) drawTrend(chartBox, points, { target: trend.target_rate === null ? null : Number(trend.target_rate), title: chartTitle, desc: chartDesc });
    },
  };
}

/** The chart's key: what a plain bar, a hatched bar and the dashed line mean. */
function chartLegend(target) {
  const swatch = (className) => h("span", { class: `swatch ${className}`, "aria-hidden": "true" });
  return h(
    "ul",
    { class: "legend" },
    target === null ? null : h("li", {}, swatch("meets"), t("legend_meets")),
    target === null ? null : h("li", {}, swatch("below"), t("legend_below")),
    target === null ? null : h("li", {}, swatch("target"), t("chart_target", { target: formatRate(target) })),
    h("li", {}, swatch("empty"), t("chart_no_data")),
  );
}

function bucketSwitch(bucket, params, agencyId, commitmentId) {
  const name = newId("bucket");
  const choices = ["day", "week"].map((value) => {
    const id = newId("bucket-option");
    return h(
      "span",
      { class: "choice" },
      h("input", {
        type: "radio", name, id, value, checked: value === bucket,
        onchange: () => {
          const next = new URLSearchParams(params);
          next.set("bucket", value);
          navigate(`#/commitment/${enc(agencyId)}/${enc(commitmentId)}?${next}`, { focus: `.bucket-switch input[value="${value}"]` });
        },
      }),
      h("label", { for: id }, t(`bucket_${value}`)),
    );
  });
  return h("fieldset", { class: "bucket-switch" }, h("legend", {}, t("bucket")), choices);
}

async function caseView({ args: [agencyId, caseId] }) {
  const agencies = (await cached("agencies", { limit: MAX_LIST })).items;
  const heading = t("case_title");
  const node = [pageHeading(heading), h("p", { class: "lead" }, t("case_intro")), caseForm(agencies, agencyId || "", caseId || "")];
  if (!agencyId || !caseId) return { title: heading, node };
  let kase;
  try {
    kase = await cached(`cases/${enc(agencyId)}/${enc(caseId)}`, {});
  } catch (error) {
    if (error.status !== 404 && error.status !== 422) throw error;
    node.push(h("section", { class: "case-result" }, message(t("case_not_found"), "error")));
    return { title: heading, node };
  }
  const agency = agencies.find((a) => a.agency_id === agencyId) || { agency_id: agencyId };
  node.push(caseResult(kase, agency));
  return { title: `${heading}: ${caseId.slice(0, 10)}…`, node };
}

function caseForm(agencies, agencyId, caseId) {
  const ids = { agency: newId("agency"), caseId: newId("case-id"), hint: newId("hint"), error: newId("error") };
  const select = h(
    "select",
    { id: ids.agency, name: "agency", required: true },
    h("option", { value: "" }, t("choose_agency")),
    agencies.map((agency) => h("option", { value: agency.agency_id, selected: agency.agency_id === agencyId }, localName(agency, agency.agency_id))),
  );
  const input = h("input", {
    id: ids.caseId, name: "case", type: "text", value: caseId, required: true, autocomplete: "off", spellcheck: "false",
    autocapitalize: "off", "aria-describedby": ids.hint,
  });
  const error = h("p", { id: ids.error, class: "field-error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "case-form", "aria-label": t("case_title"), novalidate: true },
    h("div", { class: "field" }, h("label", { for: ids.agency }, t("col_agency")), select),
    h("div", { class: "field wide" }, h("label", { for: ids.caseId }, t("case_id")), input, h("p", { id: ids.hint, class: "hint" }, t("case_id_hint"))),
    error,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, t("lookup"))),
  );
  const fail = (field, text) => {
    error.textContent = text;
    error.hidden = false;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", field === input ? `${ids.hint} ${ids.error}` : ids.error);
    field.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    select.removeAttribute("aria-invalid");
    select.removeAttribute("aria-describedby");
    input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", ids.hint);
    error.hidden = true;
    let value = input.value.trim();
    if (/^[0-9a-fA-F]{64}$/.test(value)) value = `0x${value}`;
    if (!select.value) return fail(select, t("agency_required"));
    if (!CASE_ID.test(value)) return fail(input, t("case_id_invalid"));
    navigate(`#/case/${enc(select.value)}/${value.toLowerCase()}`, { focus: ".case-result h2" });
  });
  return form;
}

function caseResult(kase, agency) {
  const agencyId = kase.agency_id;
  const casePath = `#/case/${enc(agencyId)}/${kase.case_id}`;
  for (const event of kase.events) state.caseOfSeq.set(event.seq, casePath);
  const commitmentName = localName(kase, kase.commitment_id, "commitment_name_");
  const onTime = kase.on_time === true ? t("on_time_yes") : kase.on_time === false ? t("on_time_no") : null;
  return h(
    "section",
    { class: "case-result", "aria-labelledby": "case-heading" },
    h("h2", { id: "case-heading", tabindex: "-1" }, t("case_heading"), " ", code(kase.case_id)),
    facts([
      [t("status"), kase.status ? h("strong", {}, statusLabel(kase.status)) : null],
      [t("col_agency"), h("a", { href: `#/agency/${enc(agencyId)}` }, localName(agency, agencyId))],
      [t("col_commitment"), kase.commitment_id ? h("a", { href: `#/commitment/${enc(agencyId)}/${enc(kase.commitment_id)}` }, commitmentName) : null],
      [t("district"), kase.district ? code(kase.district) : null],
      [t("channel"), kase.channel ? channelLabel(kase.channel) : null],
      [t("opened_at"), kase.opened_at ? timeEl(kase.opened_at) : null],
      [t("due_at"), kase.due_at ? timeEl(kase.due_at) : null],
      [t("closed_at"), kase.closed_at ? timeEl(kase.closed_at) : null],
      [t("hold_time"), kase.hold_seconds ? formatDuration(kase.hold_seconds) : null],
      [t("fulfil_time"), kase.fulfil_seconds !== null ? formatDuration(kase.fulfil_seconds) : null],
      [t("on_time_q"), onTime],
      [t("escalated"), kase.escalated ? t("yes") : null],
      [t("invalid_transitions"), kase.invalid_transitions ? formatInt(kase.invalid_transitions) : null],
    ]),
    h("h3", {}, t("events")),
    table({
      caption: t("events_caption"),
      columns: [
        { label: t("col_event") },
        { label: t("col_occurred") },
        { label: t("col_recorded") },
        { label: t("col_latency_short"), num: true },
        { label: t("col_proof") },
      ],
      className: "events",
      rows: kase.events.map((event) => {
        const voided = event.voided_by !== null;
        const late = event.recording_latency_seconds > LATE_SECONDS;
        return row(
          h(
            "span",
            {},
            voided ? h("s", {}, actionLabel(event.action)) : actionLabel(event.action),
            voided ? h("span", { class: "badge warn" }, t("voided", { seq: event.voided_by })) : null,
            event.not_applied_reason ? h("span", { class: "badge warn not-applied", title: t("not_applied_why") }, t("not_applied")) : null,
            event.not_applied_reason ? h("span", { class: "not-applied-why" }, t("not_applied_why")) : null,
          ),
          [
            [timeEl(event.occurred_at), false],
            [timeEl(event.recorded_at), false],
            [h("span", { class: late ? "late" : null }, formatDuration(event.recording_latency_seconds), late ? h("span", { class: "badge warn" }, t("late_note")) : null), true],
            [h("span", {}, proofLink(event.seq), event.proof.batch ? " " : null, batchNote(event.seq, event.proof.batch)), false],
          ],
          { class: voided ? "voided" : null },
        );
      }),
    }),
  );
}

// --- the citizen's receipt: their case, and their rating or dispute ---------------------------------------------------

// receipt.js (and the cryptography it vendors) is loaded only when a receipt is looked up
let receiptLibrary = null;
function receiptLib() {
  receiptLibrary ??= import("./receipt.js");
  return receiptLibrary;
}

function codeErrorText(error) {
  if (error && error.kind === "characters") return t("code_bad_characters", { chars: error.detail });
  if (error && error.kind === "length") return t("code_bad_length", { n: error.detail });
  return t("code_invalid");
}

async function receiptView({ args: [codeText] }) {
  const heading = t("receipt_title");
  const lib = await receiptLib();
  const intro = [pageHeading(heading), h("p", { class: "lead" }, t("receipt_intro"))];
  if (codeText === undefined) return { title: heading, node: [...intro, receiptForm(lib, "")] };
  let receiptCode;
  try {
    receiptCode = lib.formatCode(codeText);
  } catch (error) {
    return { title: heading, node: [...intro, receiptForm(lib, codeText, codeErrorText(error))] };
  }
  const address = lib.address(receiptCode);
  let view;
  try {
    // never the cached copy: the feedback state changes with the citizen's own writes
    view = await api.get(`receipts/${address}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    return {
      title: heading,
      node: [...intro, receiptForm(lib, receiptCode), h("section", { class: "case-result" }, message(t("receipt_not_found"), "error"))],
    };
  }
  const agencies = (await cached("agencies", { limit: MAX_LIST })).items;
  const agency = agencies.find((a) => a.agency_id === view.agency_id) || { agency_id: view.agency_id };
  const result = caseResult(view, agency);
  // the proof view's "back" link returns here, not to the plain case lookup
  for (const event of view.events) state.caseOfSeq.set(event.seq, `#/receipt/${receiptCode}`);
  return {
    title: heading,
    node: [
      pageHeading(heading),
      facts([
        [t("receipt_code"), h("code", { class: "hash receipt-code" }, receiptCode)],
        [t("receipt_key"), code(view.receipt.address)],
        [t("receipt_issued"), h("span", {}, timeEl(view.receipt.issued_at), " ", proofLink(view.receipt.proof.seq))],
      ]),
      h("p", { class: "hint" }, t("receipt_privacy")),
      result,
      feedbackSection(lib, receiptCode, view),
      h("p", { class: "back" }, h("a", { href: "#/receipt" }, t("receipt_other"))),
    ],
  };
}

function receiptForm(lib, value, errorText = null) {
  const ids = { code: newId("code"), hint: newId("hint"), error: newId("error") };
  const input = h("input", {
    id: ids.code, name: "receipt-code", type: "text", value, required: true, autocomplete: "off", spellcheck: "false",
    autocapitalize: "characters", "aria-describedby": errorText ? `${ids.hint} ${ids.error}` : ids.hint,
    "aria-invalid": errorText ? "true" : null, maxlength: "40",
  });
  const error = h("p", { id: ids.error, class: "field-error", role: "alert", hidden: !errorText }, errorText || "");
  const form = h(
    "form",
    { class: "case-form receipt-form", "aria-label": t("receipt_title"), novalidate: true },
    h("div", { class: "field wide" }, h("label", { for: ids.code }, t("receipt_code")), input, h("p", { id: ids.hint, class: "hint" }, t("receipt_code_hint"))),
    error,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, t("lookup"))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let code;
    try {
      code = lib.formatCode(input.value);
    } catch (failure) {
      error.textContent = codeErrorText(failure);
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `${ids.hint} ${ids.error}`);
      input.focus();
      return;
    }
    navigate(`#/receipt/${code}`, { focus: ".case-result h2" });
  });
  return form;
}

/** What the holder may do: rate (once, after closing) and dispute (a fulfilment, within the window). */
function feedbackSection(lib, receiptCode, view) {
  const fb = view.feedback;
  const headingId = newId("feedback");
  const parts = [h("h2", { id: headingId }, t("feedback_title"))];
  // the index lacks or lags behind this case: what follows is the chain's own state of it
  if (fb.source === "chain") parts.push(message(t(`feedback_source.${fb.source_reason}`)));

  parts.push(h("h3", {}, t("rating_title")));
  if (fb.rating) {
    parts.push(ratingShown(fb.rating));
  } else if (fb.can_rate) {
    parts.push(ratingForm(lib, receiptCode, view));
  } else {
    parts.push(message(t(`rate_refusal.${fb.rate_refusal}`)));
  }

  parts.push(h("h3", {}, t("dispute_title")));
  if (fb.disputes.length) parts.push(disputesTable(fb.disputes));
  if (fb.can_dispute) {
    parts.push(disputeForm(lib, receiptCode, view));
  } else if (fb.dispute_refusal) {
    parts.push(message(t(`dispute_refusal.${fb.dispute_refusal}`, { days: formatInt(fb.dispute_window_seconds / 86400) })));
  }
  return h("section", { class: "feedback", "aria-labelledby": headingId }, parts);
}

function scoreText(score) {
  return t("score_of", { score: formatInt(score) });
}

function ratingShown(rating) {
  return h(
    "div",
    { class: "rating-shown" },
    facts([
      [t("your_rating"), h("strong", {}, h("span", { class: "stars", "aria-hidden": "true" }, "★".repeat(rating.score) + "☆".repeat(5 - rating.score)), " ", scoreText(rating.score), " · ", t(`score.${rating.score}`))],
      [t("rated_at"), h("span", {}, timeEl(rating.rated_at), " ", proofLink(rating.proof.seq))],
      [t("comment"), offChainText(rating.comment, rating.comment_hash)],
    ]),
  );
}

const ZERO_HASH = `0x${"00".repeat(32)}`;

/** A comment or reason: its text if published, else whether there is one. */
function offChainText(text, hash) {
  if (text) return h("q", { class: "citizen-text" }, text);
  return hash !== ZERO_HASH ? t("comment_private") : t("comment_none");
}

function disputesTable(disputes) {
  return table({
    caption: t("disputes_caption"),
    columns: [{ label: t("col_closure") }, { label: t("disputed_at") }, { label: t("reason") }, { label: t("answer_due") }, { label: t("answer") }],
    className: "disputes",
    rows: disputes.map((d) =>
      row(h("span", {}, `#${d.closure} `, proofLink(d.proof.seq)), [
        [timeEl(d.disputed_at), false],
        [offChainText(d.reason, d.reason_hash), false],
        [timeEl(d.answer_due), false],
        [
          d.answer
            ? h("span", {}, t(`answer.${d.answer.action}`), " ", proofLink(d.answer.seq))
            : h("span", { class: d.answer_overdue ? "late" : null }, t(d.answer_overdue ? "answer_overdue" : "answer_waiting")),
          false,
        ],
      ]),
    ),
  });
}

/** The chain's EIP-712 domain, from the chain facts (asked afresh). */
async function ledgerDomain() {
  const chain = await api.get("chain");
  state.chain = chain;
  if (chain.chain_id === null || !chain.contract_address) throw new Error(t("no_chain"));
  return { name: "CivicLedger", version: "1", chainId: chain.chain_id, verifyingContract: chain.contract_address };
}

/** A textarea and a consent box for an optional off-chain text (comment or reason). */
function textFields(name, label, hint) {
  const ids = { text: newId(name), hint: newId("hint"), publish: newId("publish") };
  const area = h("textarea", { id: ids.text, name, rows: "3", maxlength: "2000", "aria-describedby": ids.hint });
  const publish = h("input", { id: ids.publish, name: `${name}-publish`, type: "checkbox" });
  const node = [
    h("div", { class: "field wide" }, h("label", { for: ids.text }, label), area, h("p", { id: ids.hint, class: "hint" }, hint)),
    h("div", { class: "check" }, publish, h("label", { for: ids.publish }, t("publish_consent"))),
  ];
  return { area, publish, node };
}

/** The outcome line of a feedback form: a status (polite) or an alert, focusable so the reader lands on it. */
function outcome() {
  return h("p", { class: "form-outcome", tabindex: "-1", hidden: true });
}

function showOutcome(node, text, kind) {
  node.textContent = text;
  node.className = `form-outcome message ${kind}`;
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  node.hidden = false;
  node.focus();
}

function refusalText(error, kind) {
  const key = `refusal.${error.code}`;
  const text = t(key, { kind: t(`kind_word.${kind}`) });
  return error.code && text !== key ? text : t("refusal_other", { message: error.message });
}

function accepted(answer, kind) {
  if (answer.status === "recorded") return t(`${kind}_recorded`, { seq: answer.seq });
  if (answer.status === "failed") return t("relay_failed", { name: answer.error ? answer.error.name : "" });
  return t(`${kind}_accepted`);
}

/** Sign `build(domain)` with the receipt key and post it; report the outcome in `out`. */
async function sendSigned({ form, button, out, path, kind, build }) {
  if (button.getAttribute("aria-disabled") === "true") return;
  button.setAttribute("aria-disabled", "true");
  showOutcome(out, t("sending"), "note");
  try {
    const body = build(await ledgerDomain());
    const answer = await api.post(path, body);
    const done = accepted(answer, kind);
    if (answer.status === "failed") {
      showOutcome(out, done, "error");
    } else {
      for (const field of form.querySelectorAll("fieldset, .field, .check, .buttons")) field.hidden = true;
      showOutcome(out, done, "success");
    }
  } catch (error) {
    if (error.status === undefined) showOutcome(out, t("refusal_other", { message: error.message }), "error");
    else showOutcome(out, refusalText(error, kind), "error");
  } finally {
    button.removeAttribute("aria-disabled");
  }
}

function ratingForm(lib, receiptCode, view) {
  const name = newId("score");
  const choices = [1, 2, 3, 4, 5].map((n) => {
    const id = newId("score-option");
    return h(
      "span",
      { class: "score-choice" },
      h("input", { type: "radio", name, id, value: String(n) }),
      h("label", { for: id }, h("span", { class: "score-number", "aria-hidden": "true" }, String(n)), h("span", { class: "score-word" }, t(`score.${n}`))),
    );
  });
  const scoreError = h("p", { class: "field-error", role: "alert", hidden: true });
  const fieldset = h("fieldset", { class: "score" }, h("legend", {}, t("score_legend")), h("div", { class: "score-choices" }, choices), scoreError);
  const comment = textFields("comment", t("comment_label"), t("comment_hint"));
  const button = h("button", { type: "submit" }, t("send_rating"));
  const out = outcome();
  const form = h("form", { class: "feedback-form rating-form", "aria-label": t("rating_title"), novalidate: true }, fieldset, comment.node, h("div", { class: "buttons" }, button), out);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = form.querySelector(`input[name="${name}"]:checked`);
    if (!chosen) {
      scoreError.textContent = t("score_required");
      scoreError.hidden = false;
      form.querySelector(`input[name="${name}"]`).focus();
      return;
    }
    scoreError.hidden = true;
    const score = Number(chosen.value);
    const text = comment.area.value.trim();
    sendSigned({
      form, button, out, path: "ratings", kind: "rating",
      build: (domain) => {
        const salt = text ? lib.newSalt() : null;
        const commentHash = text ? lib.saltedTextHash(salt, text) : lib.ZERO32;
        const record = { agencyId: lib.codeBytes32(view.agency_id), caseId: view.case_id, score, commentHash };
        const { signature } = lib.signRecord(receiptCode, domain, "Rating", record);
        const body = { agency_id: view.agency_id, case_id: view.case_id, score, comment_hash: commentHash, signature };
        if (text) body.comment = { text, salt, publish: comment.publish.checked };
        return body;
      },
    });
  });
  return form;
}

function disputeForm(lib, receiptCode, view) {
  const fb = view.feedback;
  const reason = textFields("reason", t("reason_label"), t("reason_hint"));
  const button = h("button", { type: "submit" }, t("send_dispute"));
  const out = outcome();
  const form = h(
    "form",
    { class: "feedback-form dispute-form", "aria-label": t("dispute_title"), novalidate: true },
    h("p", {}, t("dispute_intro", { deadline: formatTime(fb.dispute_deadline) })),
    reason.node,
    h("div", { class: "buttons" }, button),
    out,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.area.value.trim();
    sendSigned({
      form, button, out, path: "disputes", kind: "dispute",
      build: (domain) => {
        const salt = text ? lib.newSalt() : null;
        const reasonHash = text ? lib.saltedTextHash(salt, text) : lib.ZERO32;
        const record = { agencyId: lib.codeBytes32(view.agency_id), caseId: view.case_id, closure: fb.dispute_closure, reasonHash };
        const { signature } = lib.signRecord(receiptCode, domain, "Dispute", record);
        const body = { agency_id: view.agency_id, case_id: view.case_id, closure: fb.dispute_closure, reason_hash: reasonHash, signature };
        if (text) body.reason = { text, salt, publish: reason.publish.checked };
        return body;
      },
    });
  });
  return form;
}

async function proofView({ args: [seqText] }) {
  const seq = Number(seqText);
  // the chain facts are asked afresh, to compare with a node
  const [entry, chain] = await Promise.all([cached(`entries/${seq}`, {}), api.get("chain", {})]);
  state.chain = chain;
  renderChainFacts();
  const heading = t("proof_title", { seq });
  const { proof } = entry;
  const fromCase = state.caseOfSeq.get(seq);
  const proofJson = JSON.stringify(
    {
      chain: {
        chain_id: chain.chain_id,
        contract_address: chain.contract_address,
        entry_count: chain.entry_count,
        running_hash: chain.running_hash,
        last_indexed_block: chain.last_indexed_block,
        finalized_block: chain.finalized_block,
      },
      entry,
    },
    null,
    2,
  );
  const rpc = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getTransactionReceipt", params: [proof.tx_hash] });
  const batch = proof.batch;
  const jsonBlock = h("pre", { class: "json", tabindex: "0", "aria-label": t("proof_json") }, h("code", {}, proofJson));
  const status = h("p", { class: "copy-status", role: "status" });
  const copyButton = h("button", { type: "button", class: "secondary" }, t("copy_json"));
  copyButton.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(proofJson);
      status.textContent = t("copied");
    } catch {
      // no clipboard permission: select the JSON so the reader can copy it themselves
      const range = document.createRange();
      range.selectNodeContents(jsonBlock);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      status.textContent = t("copy_failed");
    }
  });
  return {
    title: heading,
    node: [
      fromCase ? h("p", { class: "back" }, h("a", { href: fromCase }, `← ${t("back_to_case")}`)) : null,
      pageHeading(heading),
      h("p", { class: "lead" }, t("proof_intro")),
      h("h2", {}, t("proof_fields")),
      facts([
        [t("seq"), formatInt(seq)],
        [t("kind"), kindLabel(entry.kind)],
        [t("col_agency"), entry.agency_id === null ? t("none") : h("a", { href: `#/agency/${enc(entry.agency_id)}` }, entry.agency_id)],
        [t("tx_hash"), code(proof.tx_hash)],
        [t("block_number"), formatInt(proof.block_number)],
        [t("block_hash"), code(proof.block_hash)],
        [t("block_time"), timeEl(proof.block_time)],
        [t("log_index"), String(proof.log_index)],
        [t("entry_hash"), code(proof.entry_hash)],
        [t("record_hash"), code(entry.record_hash)],
        [t("running_hash"), code(entry.running_hash)],
        [t("actor"), code(entry.actor)],
        [t("occurred_at"), entry.occurred_at !== null ? timeEl(entry.occurred_at) : null],
        [t("final"), entry.final ? t("final_yes") : t("final_no")],
      ]),
      batch ? batchSection(entry, batch) : null,
      h("h2", {}, t("how_to_check")),
      h(
        "ol",
        { class: "steps" },
        h("li", {}, t("check_1", { chain_id: chain.chain_id ?? t("none") })),
        h("li", {}, t("check_2")),
        batch
          ? h("li", {}, t("batch_check_3", { block: proof.block_number, log_index: proof.log_index, contract: chain.contract_address ?? t("none"), batch: batch.seq, root: batch.root }))
          : h("li", {}, t("check_3", { block: proof.block_number, log_index: proof.log_index, contract: chain.contract_address ?? t("none"), entry_hash: proof.entry_hash })),
        batch ? h("li", {}, t("batch_check_4", { batch: batch.seq, index: batch.index })) : null,
        h("li", {}, t("check_4")),
      ),
      h("h3", {}, t("rpc_request")),
      h("pre", { class: "json", tabindex: "0", "aria-label": t("rpc_request") }, h("code", {}, rpc)),
      h("h3", {}, t("chain_title")),
      chainFacts(chain),
      h("h2", {}, t("proof_json")),
      h("div", { class: "buttons" }, copyButton),
      status,
      jsonBlock,
    ],
  };
}

/** The proof view's part for a batched record: its batch, its Merkle proof, and a check of it in this browser. */
function batchSection(entry, batch) {
  const result = h("p", { class: "verify-status", role: "status" });
  let verify = null;
  if (batch.merkle_proof) {
    verify = h("button", { type: "button", class: "secondary" }, t("verify_here"));
    verify.addEventListener("click", async () => {
      const { verifyProof } = await import("./merkle.js");
      const ok = verifyProof(batch.root, batch.index, entry.record_hash, batch.merkle_proof);
      result.textContent = ok ? t("verify_ok") : t("verify_bad");
      result.className = `verify-status message ${ok ? "success" : "error"}`;
    });
  }
  return h(
    "section",
    { class: "batch-proof", "aria-labelledby": "batch-proof-heading" },
    h("h2", { id: "batch-proof-heading" }, t("batch_section")),
    h("p", {}, t("batch_intro")),
    facts([
      [t("batch_no"), h("a", { href: `#/batch/${batch.seq}` }, t("batch_link", { seq: batch.seq }))],
      [t("batch_index"), formatInt(batch.index)],
      [t("batch_count"), formatInt(batch.count)],
      [t("batch_root"), code(batch.root)],
      [t("batch_file_hash"), h("span", {}, code(batch.file_hash), " ", h("a", { href: batch.file_url, download: "" }, t("batch_file_link")))],
    ]),
    batch.merkle_proof
      ? [
          h("h3", {}, t("merkle_proof_hashes", { n: formatInt(batch.merkle_proof.length) })),
          h("ol", { class: "merkle-proof" }, batch.merkle_proof.map((node) => h("li", {}, code(node)))),
          h("div", { class: "buttons" }, verify),
          result,
        ]
      : message(t("proof_unavailable", { reason: batch.proof_unavailable }), "error"),
  );
}

function batchFileLink(batch) {
  return batch.file_available
    ? h("a", { href: batch.file_url, download: "" }, t("batch_file_link"))
    : h("span", { class: "badge warn" }, t("batch_file_missing"));
}

async function batchesView() {
  const page = await cached("batches", { limit: MAX_LIST });
  const heading = t("batches_title");
  const intro = [
    h("p", { class: "back" }, h("a", { href: "#/log" }, `← ${t("log_title")}`)),
    pageHeading(heading),
    h("p", { class: "lead" }, t("batches_intro")),
  ];
  if (!page.items.length) return { title: heading, node: [...intro, message(t("batches_empty"))] };
  return {
    title: heading,
    node: [
      ...intro,
      table({
        caption: t("batches_caption"),
        columns: [
          { label: t("col_batch") },
          { label: t("col_agency_short") },
          { label: t("col_entries"), num: true },
          { label: t("col_recorded_short") },
          { label: t("col_root") },
          { label: t("col_file") },
          { label: t("col_withheld") },
        ],
        rows: page.items.map((batch) =>
          row(h("a", { href: `#/batch/${batch.seq}` }, `#${batch.seq}`), [
            [code(batch.agency_id), false],
            [formatInt(batch.count), true],
            [timeEl(batch.proof.block_time), false],
            [code(batch.root, { short: true }), false],
            [batchFileLink(batch), false],
            [withheldLabel(batch), false],
          ]),
        ),
        className: "batches",
      }),
    ],
  };
}

async function batchView({ args: [seqText] }) {
  const seq = Number(seqText);
  const batch = await cached(`batches/${seq}`, {});
  const heading = t("batch_title", { seq });
  const { proof } = batch;
  return {
    title: heading,
    node: [
      h("p", { class: "back" }, h("a", { href: "#/batches" }, `← ${t("batches_title")}`)),
      pageHeading(heading),
      h("p", { class: "lead" }, t("batch_view_intro", { seq: batch.seq, last: batch.last_seq })),
      batch.withheld ? message(t(`withheld_${batch.withheld}_intro`), "error") : null,
      facts([
        [t("batch_entries"), t("batch_range", { seq: batch.seq, last: batch.last_seq, n: formatInt(batch.count) })],
        [t("col_withheld"), withheldLabel(batch)],
        [t("col_reason"), batch.withheld_reason ? h("span", { class: "reason", lang: "en" }, batch.withheld_reason) : null],
        [t("col_agency"), h("a", { href: `#/agency/${enc(batch.agency_id)}` }, batch.agency_id)],
        [t("batch_signer"), code(batch.signer)],
        [t("batch_root"), code(batch.root)],
        [t("batch_file_hash"), code(batch.file_hash)],
        [t("batch_file_state"), batchFileLink(batch)],
        [t("batch_record_hash"), code(batch.record_hash)],
        [t("batch_entry_hash"), code(batch.entry_hash)],
        [t("batch_running_hash"), code(batch.running_hash)],
        [t("tx_hash"), code(proof.tx_hash)],
        [t("block_number"), formatInt(proof.block_number)],
        [t("block_hash"), code(proof.block_hash)],
        [t("block_time"), timeEl(proof.block_time)],
        [t("log_index"), String(proof.log_index)],
        [t("final"), batch.final ? t("final_yes") : t("final_no")],
      ]),
      h("p", {}, h("a", { href: `#/proof/${batch.seq}` }, t("proof_link", { seq: batch.seq }))),
    ],
  };
}

async function logView() {
  if (!state.log) {
    const first = await api.get("entries", { limit: LOG_PAGE });
    state.log = { items: first.items, next: first.next };
  }
  const heading = t("log_title");
  const intro = [
    pageHeading(heading),
    h("p", { class: "lead" }, t("log_intro")),
    h("p", {}, h("a", { href: "#/batches" }, t("batches_link"))),
  ];
  if (!state.log.items.length) return { title: heading, node: [...intro, message(t("log_empty"))] };
  const entryRow = (entry) => {
    const batch = entry.proof.batch;
    const line = row(proofLink(entry.seq), [
      [h("span", {}, kindLabel(entry.kind), batch ? " " : null, batch ? h("a", { class: "badge muted", href: `#/batch/${batch.seq}` }, t("batch_badge", { seq: batch.seq })) : null), false],
      [code(entry.agency_id), false],
      [timeEl(entry.occurred_at), false],
      [timeEl(entry.proof.block_time), false],
      [formatInt(entry.proof.block_number), true],
      [code(entry.proof.tx_hash, { short: true }), false],
      [code(entry.proof.entry_hash, { short: true }), false],
    ]);
    if (!batch || batch.index !== 0) return line;
    // the batch's anchoring, before its first record: one transaction for all of them
    const anchor = h(
      "tr",
      { class: "batch-anchor" },
      h("th", { scope: "row" }, h("a", { href: `#/batch/${batch.seq}` }, `#${batch.seq}`)),
      h(
        "td",
        { colspan: "7" },
        t("batch_anchor_row", { seq: batch.seq, n: formatInt(batch.count), root: `${batch.root.slice(0, 10)}…` }),
        " ",
        h("a", { href: batch.file_url, download: "" }, t("batch_file_link")),
      ),
    );
    return [anchor, line];
  };
  const logTable = table({
    caption: t("log_caption"),
    columns: [
      { label: t("col_seq") },
      { label: t("col_kind") },
      { label: t("col_agency_short") },
      { label: t("occurred_at") },
      { label: t("col_recorded_short") },
      { label: t("col_block"), num: true },
      { label: t("col_tx") },
      { label: t("col_entry_hash") },
    ],
    rows: state.log.items.map(entryRow),
    className: "log",
  });
  const body = logTable.querySelector("tbody");
  const status = h("p", { class: "log-status", role: "status" }, t("log_count", { n: formatInt(state.log.items.length) }));
  const end = h("p", { class: "log-end", tabindex: "-1", hidden: state.log.next !== null }, t("log_end"));
  const more = h("button", { type: "button", class: "load-more", hidden: state.log.next === null }, t("load_more"));
  more.addEventListener("click", async () => {
    // aria-disabled, not disabled: a disabled button would drop the keyboard focus to the page
    if (more.getAttribute("aria-disabled") === "true") return;
    more.setAttribute("aria-disabled", "true");
    try {
      const page = await api.get("entries", { after: state.log.next, limit: LOG_PAGE });
      state.log.items.push(...page.items);
      state.log.next = page.next;
      body.append(...page.items.flatMap(entryRow));
      status.textContent = t("log_count", { n: formatInt(state.log.items.length) });
      if (state.log.next === null) {
        more.hidden = true;
        end.hidden = false;
        end.focus();
      }
    } catch (error) {
      status.textContent = t("load_error", { message: error.message });
    } finally {
      more.removeAttribute("aria-disabled");
    }
  });
  return { title: heading, node: [...intro, logTable, h("div", { class: "log-more" }, status, more, end)] };
}

function notFound() {
  const heading = t("not_found_title");
  return { title: heading, node: [pageHeading(heading), h("p", {}, t("not_found_text")), h("p", {}, h("a", { href: "#/" }, t("go_home")))] };
}

// --- router ---------------------------------------------------------------------------------------------------

const ROUTES = [
  [/^\/$/, scorecardsView],
  [/^\/agency\/([^/]+)$/, agencyView],
  [/^\/commitment\/([^/]+)\/([^/]+)$/, commitmentView],
  [/^\/case(?:\/([^/]+)\/([^/]+))?$/, caseView],
  [/^\/receipt(?:\/([^/]+))?$/, receiptView],
  [/^\/proof\/(\d+)$/, proofView],
  [/^\/log$/, logView],
  [/^\/batches$/, batchesView],
  [/^\/batch\/(\d+)$/, batchView],
  [/^\/audits$/, auditsView],
];

function currentRoute() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const mark = raw.indexOf("?");
  const path = mark < 0 ? raw : raw.slice(0, mark);
  const params = new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1));
  const notFoundRoute = { path, params, view: async () => notFound(), args: [] };
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    try {
      return { path, params, view, args: match.slice(1).filter((a) => a !== undefined).map(decodeURIComponent) };
    } catch {
      return notFoundRoute; // a malformed %-escape
    }
  }
  return notFoundRoute;
}

let pendingFocus = null;

/** Go to `hash`; the new view's heading (or the `focus` selector) gets the focus, as a page load would start at the top. */
function navigate(hash, { focus = "h1" } = {}) {
  if (window.location.hash === hash) {
    render({ focus });
  } else {
    pendingFocus = focus;
    window.location.hash = hash;
  }
}

/** Draw the view of the current hash; then focus the element `focus` selects (none: the focus stays where it is). */
async function render({ focus = null } = {}) {
  state.renderToken += 1;
  const token = state.renderToken;
  const hash = window.location.hash;
  const route = currentRoute();
  if (route.path !== "/log") state.log = null;
  updateNav(route.path);
  main.setAttribute("aria-busy", "true");
  const loading = window.setTimeout(() => {
    if (token === state.renderToken) main.replaceChildren(h("p", { class: "loading" }, t("loading")));
  }, 150);
  let result;
  try {
    result = await route.view({ args: route.args, params: route.params });
  } catch (error) {
    result = error.status === 404 ? notFound() : {
      title: t("error_title"),
      node: [
        pageHeading(t("error_title")),
        message(t("load_error", { message: error.message }), "error"),
        h("p", {}, h("button", { type: "button", onclick: () => render({ focus: "h1" }) }, t("retry"))),
      ],
    };
  } finally {
    window.clearTimeout(loading);
  }
  if (token !== state.renderToken) return;
  main.replaceChildren(...[result.node].flat(Infinity).filter(Boolean));
  main.dataset.drawn = hash; // which view is on screen (for scripts and tests driving the page)
  main.removeAttribute("aria-busy");
  document.title = `${result.title} · ${t("site_name")}`;
  if (result.after) result.after();
  const target = focus && (main.querySelector(focus) || main.querySelector("h1"));
  if (target) {
    target.focus({ preventScroll: true });
    if (target.matches("h1")) window.scrollTo(0, 0);
    else target.scrollIntoView({ block: "nearest" });
  }
}

function updateNav(path) {
  const section = path.startsWith("/case")
    ? "/case"
    : path.startsWith("/receipt")
      ? "/receipt"
      : path.startsWith("/log") || path.startsWith("/batch")
        ? "/log"
        : path.startsWith("/proof") || path.startsWith("/audits")
          ? null
          : "/";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- the page shell: language, static strings, chain facts ----------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang();
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  for (const button of document.querySelectorAll("[data-lang]")) button.setAttribute("aria-pressed", String(button.dataset.lang === lang()));
  renderChainFacts();
}

/** The chain facts anyone can compare with the contract on a node of their own. */
function chainFacts(chain) {
  return facts([
    [t("chain_id"), chain.chain_id === null ? t("none") : String(chain.chain_id)],
    [t("contract"), code(chain.contract_address)],
    [t("entry_count"), formatInt(chain.entry_count)],
    [t("running_hash"), code(chain.running_hash)],
    [t("last_block"), formatInt(chain.last_indexed_block)],
    [t("finalized_block"), formatInt(chain.finalized_block)],
    [
      t("batches_withheld"),
      chain.batches_withheld
        ? h("a", { href: "#/batches" }, withheldCount(chain))
        : t("withheld_none"),
    ],
    [t("audits_link"), chain.audit ? h("a", { href: "#/audits" }, auditSummary(chain.audit).text) : null],
  ]);
}

function renderChainFacts() {
  const list = document.getElementById("chain-facts");
  if (list && state.chain) list.replaceChildren(...chainFacts(state.chain).childNodes);
}

async function loadChain() {
  try {
    state.chain = await api.get("chain");
    renderChainFacts();
  } catch {
    // the footer stays empty; the views report their own errors
  }
}

function start() {
  applyLanguage();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      if (button.dataset.lang === lang()) return;
      setLang(button.dataset.lang);
      applyLanguage();
      render();  // the focus stays on the button
    });
  }
  // The skip link must not change the hash: the hash is the router's.
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
    main.scrollIntoView();
  });
  window.addEventListener("hashchange", () => {
    const focus = pendingFocus ?? "h1";
    pendingFocus = null;
    render({ focus });
  });
  loadChain();
  render();
}

start();
