// #/receipt, #/receipt/{CODE} — a citizen's receipt: their case, and their rating or dispute, signed in this browser
// with the key the code derives (../receipt.js) and posted to the API. The code stays in the URL fragment, which
// browsers never send; only the key's address is asked for.

import * as api from "../api.js";
import { h, newId } from "../dom.js";
import { formatInt, formatTime, t } from "../i18n.js";
import { cached, MAX_LIST, navigate, state } from "../state.js";
import { code, facts, message, pageHeading, proofLink, row, table, timeEl } from "../ui.js";
import { caseResult } from "./case.js";

// receipt.js (and the cryptography it vendors) is loaded only when a receipt is looked up
let receiptLibrary = null;
function receiptLib() {
  receiptLibrary ??= import("../receipt.js");
  return receiptLibrary;
}

function codeErrorText(error) {
  if (error && error.kind === "characters") return t("code_bad_characters", { chars: error.detail });
  if (error && error.kind === "length") return t("code_bad_length", { n: error.detail });
  return t("code_invalid");
}

export async function receiptView({ args: [codeText] }) {
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
