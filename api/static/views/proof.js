// #/proof/{seq} — one entry's proof, checkable against any node; for a batched record, its Merkle proof and a check of
// it in this browser (../merkle.js, loaded when asked for).

import * as api from "../api.js";
import { h } from "../dom.js";
import { formatInt, kindLabel, t } from "../i18n.js";
import { cached, state } from "../state.js";
import { chainFacts, code, enc, facts, message, pageHeading, renderChainFacts, timeEl } from "../ui.js";

export async function proofView({ args: [seqText] }) {
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
        batch ? h("li", {}, t("batch_check_4", { batch: batch.seq, index: batch.index, module: chain.filings_address ?? t("none") })) : null,
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
      const { verifyProof } = await import("../merkle.js");
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
