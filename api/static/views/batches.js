// #/batches, #/batch/{seq} — the Merkle-anchored batches, and one batch with its file.

import { h } from "../dom.js";
import { formatInt, t } from "../i18n.js";
import { cached, MAX_LIST } from "../state.js";
import { code, enc, facts, message, pageHeading, row, table, timeEl, withheldLabel } from "../ui.js";

function batchFileLink(batch) {
  return batch.file_available
    ? h("a", { href: batch.file_url, download: "" }, t("batch_file_link"))
    : h("span", { class: "badge warn" }, t("batch_file_missing"));
}

export async function batchesView() {
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

export async function batchView({ args: [seqText] }) {
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
