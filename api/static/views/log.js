// #/log — the raw entry log, a page at a time (batch anchors marked); the pages loaded so far are kept in the page's
// state across a language switch.

import * as api from "../api.js";
import { h } from "../dom.js";
import { formatInt, kindLabel, t } from "../i18n.js";
import { state } from "../state.js";
import { code, message, pageHeading, proofLink, row, table, timeEl } from "../ui.js";

const LOG_PAGE = 50;

export async function logView() {
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
