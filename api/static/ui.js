// The views' small building blocks: times, hashes, fact lists, tables, headings and messages; the filters carried from
// view to view, and their form; the figures' cells; the audit line; withheld batches' badges; proof links and
// breadcrumbs; and the chain facts (in the proof view and the page's footer). Built with dom.js's h(), so text from
// the API is only ever set as text.

import { h, newId } from "./dom.js";
import {
  channelLabel,
  CHANNELS,
  formatDate,
  formatInt,
  formatRate,
  formatScore,
  formatTime,
  isoInstant,
  lang,
  localDayStart,
  t,
} from "./i18n.js";
import { navigate, state } from "./state.js";

export const enc = encodeURIComponent;

export function timeEl(unix, { dateOnly = false } = {}) {
  if (unix === null || unix === undefined) return t("none");
  return h("time", { datetime: isoInstant(unix) }, dateOnly ? formatDate(unix) : formatTime(unix));
}

export function code(text, { short = false } = {}) {
  if (text === null || text === undefined || text === "") return t("none");
  const value = String(text);
  if (short && value.length > 18) {
    return h("code", { class: "hash", title: value }, `${value.slice(0, 10)}…${value.slice(-6)}`);
  }
  return h("code", { class: "hash" }, value);
}

/** A <dl> of [label, value] pairs (pairs with a null value left out). */
export function facts(pairs, className = "facts") {
  return h(
    "dl",
    { class: className },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))),
  );
}

/** A table in a horizontally scrollable, keyboard-focusable region, so a wide table never widens the page. */
export function table({ caption, columns, rows, className = "" }) {
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
export function row(header, cells, attrs = {}) {
  return h("tr", attrs, h("th", { scope: "row" }, header), cells.map(([content, num]) => h("td", { class: num ? "num" : null }, content)));
}

/** A rate, marked against a target when there is one; `sample` (a node: what the rate rests on) after the rate. */
export function rateWithTarget(rate, target, sample = null) {
  if (rate === null || rate === undefined) return t("none");
  const text = formatRate(rate);
  const after = sample ? [" ", sample] : [];
  if (target === null || target === undefined) return after.length ? h("span", { class: "rate" }, text, after) : text;
  const below = Number(rate) < Number(target);
  return h("span", { class: below ? "rate below" : "rate meets" }, text, after, " ", h("span", { class: "badge" }, below ? t("below_target") : t("meets_target")));
}

export function pageHeading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

export function message(text, kind = "note") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

export function deadlineText(commitment) {
  const key = commitment.deadline_unit === "working_days" ? "working_days" : "hours";
  return t(key, { n: formatInt(commitment.deadline) });
}

export function otherLang() {
  return lang() === "zh" ? "en" : "zh";
}

export function proofLink(seq) {
  // the accessible name contains the visible text ("#12"), as WCAG's "label in name" asks
  return h("a", { href: `#/proof/${seq}`, "aria-label": t("proof_link", { seq }) }, `#${seq}`);
}

export function breadcrumbs(trail, current) {
  return h(
    "nav",
    { class: "breadcrumbs", "aria-label": t("breadcrumbs") },
    h("ol", {}, trail.map(([label, href]) => h("li", {}, h("a", { href }, label))), h("li", { "aria-current": "page" }, current)),
  );
}

// --- the filters (scorecards → agency → commitment, and the rankings) -------------------------------------------

/** The selection's query parameters, carried from view to view (the API's from, to, district, channel and as_of). */
const FILTERS = ["from", "to", "district", "channel", "as_of"];

/** The API's time range (unix seconds, `to` exclusive) from the page's date filters (local days, `to` inclusive). */
export function rangeParams(params) {
  const from = localDayStart(params.get("from"));
  const to = localDayStart(params.get("to"));
  return { from: from ?? undefined, to: to === null ? undefined : to + 86400 };
}

/** The scorecards query from the page's filters; `as_of` (a local day) is the end of that day, as `to` is. */
export function filterParams(params) {
  const asOf = localDayStart(params.get("as_of"));
  return {
    ...rangeParams(params),
    district: params.get("district") || undefined,
    channel: params.get("channel") || undefined,
    as_of: asOf === null ? undefined : asOf + 86400,
  };
}

export function rangeText(params) {
  const from = params.get("from");
  const to = params.get("to");
  const f = (iso) => formatDate(localDayStart(iso));
  if (from && to) return t("range_from_to", { from: f(from), to: f(to) });
  if (from) return t("range_from", { from: f(from) });
  if (to) return t("range_to", { to: f(to) });
  return t("range_all");
}

/** The whole selection in words, for a caption a shared address must explain: range, district, channel, as_of. */
export function selectionText(params) {
  const parts = [rangeText(params)];
  if (params.get("district")) parts.push(t("sel_district", { district: params.get("district") }));
  if (params.get("channel")) parts.push(channelLabel(params.get("channel")));
  const asOf = localDayStart(params.get("as_of"));
  if (asOf !== null) parts.push(t("sel_as_of", { date: formatDate(asOf) }));
  return parts.join(t("list_sep"));
}

/** Filter query parameters carried from page to page (scorecards → agency → commitment, rankings). */
export function filterQuery(params) {
  const kept = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) kept.set(name, params.get(name));
  const text = kept.toString();
  return text ? `?${text}` : "";
}

/** The filter form of a view at `path` (a hash, "#/…"): applying it goes to `path` with the filters chosen and the
 * view's own parameters named in `keep` (e.g. the ranking's figure), so the address always holds the selection. */
export function filterForm(params, { path = "#/", keep = [] } = {}) {
  const ids = Object.fromEntries(FILTERS.map((name) => [name, newId(name)]));
  const field = (name, label, control) => h("div", { class: "field" }, h("label", { for: ids[name] }, label), control);
  const date = (name) => h("input", { id: ids[name], name, type: "date", value: params.get(name) || "" });
  const form = h(
    "form",
    { class: "filters-form" },
    h(
      "fieldset",
      {},
      h("legend", { class: "visually-hidden" }, t("filter")),
      field("from", t("from"), date("from")),
      field("to", t("to"), date("to")),
      field(
        "district",
        t("district"),
        h("input", {
          id: ids.district, name: "district", type: "text", value: params.get("district") || "", autocomplete: "off",
          spellcheck: "false", maxlength: "32", size: "12",
        }),
      ),
      field(
        "channel",
        t("channel"),
        h(
          "select",
          { id: ids.channel, name: "channel" },
          h("option", { value: "" }, t("any")),
          CHANNELS.map((channel) => h("option", { value: channel, selected: String(channel) === params.get("channel") }, channelLabel(channel))),
        ),
      ),
      field("as_of", t("as_of"), date("as_of")),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, t("apply")), h("button", { type: "reset", class: "secondary" }, t("reset"))),
    ),
  );
  const go = (query) => {
    for (const name of keep) if (params.get(name)) query.set(name, params.get(name));
    const text = query.toString();
    navigate(`${path}${text ? `?${text}` : ""}`);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (String(value).trim()) query.set(name, String(value).trim());
    go(query);
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    go(new URLSearchParams());
  });
  // folded away on a phone unless a filter is in use, where it would push the figures below the fold
  const open = Boolean(filterQuery(params)) || window.matchMedia("(min-width: 40rem)").matches;
  return h("details", { class: "filters", open }, h("summary", {}, t("filter")), form);
}

// --- figures --------------------------------------------------------------------------------------------------

/** The average rating and how many ratings it is over: "4.25 (40)". */
export function ratingCell(metrics) {
  if (metrics.rating_average === null || metrics.rating_average === undefined) return t("none");
  return h("span", {}, formatScore(metrics.rating_average), " ", h("span", { class: "subtle" }, t("rating_count", { n: formatInt(metrics.ratings) })));
}

/** A link to an Atom feed of the API (`/api/v1/feeds/…`, api/feeds.py), in the page's language, for any feed
 * reader. */
export function feedLink(path, label) {
  const href = `/api/v1/feeds/${path}.atom?lang=${lang}`;
  return h("p", { class: "feed" }, h("a", { href, type: "application/atom+xml", rel: "alternate" }, label));
}

export function unansweredCell(count) {
  if (!count) return formatInt(count);
  return h("span", { class: "late" }, formatInt(count));
}

// --- the audit line and withheld batches ----------------------------------------------------------------------

/** One line on how far independent auditors vouch for the whole ledger (`/api/v1/chain`'s `audit`): "Independently
 * audited up to block N by K auditors — passed", a warning when they found problems or when a registered auditor's
 * latest attestation does not match the ledger, "Not yet independently audited" before any; with a link to the
 * attestations and their reports. */
export function auditLine(audit) {
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

/** "N batches (M entries)", marked, when an agency withholds batches; "none" otherwise. */
export function withheldCount(counts) {
  if (!counts.batches_withheld) return t("withheld_none");
  return h("span", { class: "badge warn" }, t("withheld_count", { n: formatInt(counts.batches_withheld), entries: formatInt(counts.entries_withheld) }));
}

/** A withheld batch's state: missing (the file may still be published) or impossible (it never can be). */
export function withheldLabel(batch) {
  if (!batch.withheld) return h("span", { class: "badge" }, t("batch_indexed"));
  return h("span", { class: "badge warn" }, t(`withheld_${batch.withheld}`));
}

// --- the chain facts ------------------------------------------------------------------------------------------

/** The chain facts anyone can compare with the contract on a node of their own. */
export function chainFacts(chain) {
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

export function renderChainFacts() {
  const list = document.getElementById("chain-facts");
  if (list && state.chain) list.replaceChildren(...chainFacts(state.chain).childNodes);
}
