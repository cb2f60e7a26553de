// #/receipt, #/receipt/{CODE} — a citizen's receipt: their case, and their rating or dispute, signed in this browser
// with the key the code derives (../receipt.js) and posted to the API. The code stays in the URL fragment, which
// browsers never send; only the key's address is asked for.
//
// A receipt the agency printed can be made the holder's own (a claim: a new code made here, the case moved to its key,
// signed by both keys); whether it was claimed away, or used, before the holder came is said plainly. A code whose
// filing awaits the agency's answer shows that filing until its case opens.

import * as api from "../api.js";
import { h, newId } from "../dom.js";
import { formatInt, formatTime, localName, t } from "../i18n.js";
import { cached, MAX_LIST, navigate, state } from "../state.js";
import { code, facts, feedLink, message, pageHeading, proofLink, row, table, timeEl } from "../ui.js";
import { caseResult } from "./case.js";
import { codeOnce, filingFacts, filingLib, filingRefusalText, retryable } from "./file.js";

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
    // no case has this key: it may be a filing's, awaiting the agency's answer
    const filing = (await api.get("filings", { receipt: address })).items[0];
    const found = filing ? await filingSection(filing) : h("section", { class: "case-result" }, message(t("receipt_not_found"), "error"));
    return { title: heading, node: [...intro, receiptForm(lib, receiptCode), found] };
  }
  const [agencies, binding] = await Promise.all([cached("agencies", { limit: MAX_LIST }), bindingKind(view)]);
  const agency = agencies.items.find((a) => a.agency_id === view.agency_id) || { agency_id: view.agency_id };
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
        [t(binding === "receipt_claimed" ? "receipt_claimed_at" : "receipt_issued"), h("span", {}, timeEl(view.receipt.issued_at), " ", proofLink(view.receipt.proof.seq))],
      ]),
      h("p", { class: "hint" }, t("receipt_privacy")),
      feedLink(`receipts/${view.receipt.address}`, t("feed_case")),
      result,
      claimSection(lib, receiptCode, view, binding),
      feedbackSection(lib, receiptCode, view, binding === "receipt_claimed" ? view.receipt.proof.seq : null),
      h("p", { class: "back" }, h("a", { href: "#/receipt" }, t("receipt_other"))),
    ],
  };
}

/** How the receipt's key came to hold the case — "receipt_issued" (printed by the agency), "filing_answered" (the
 * citizen's own filing), "receipt_claimed" (a printed receipt claimed) — from the kind of the entry that bound it;
 * null when the index does not have that entry yet. */
async function bindingKind(view) {
  if (view.feedback.source_reason === "index_lacks_receipt") return null;
  try {
    return (await cached(`entries/${view.receipt.proof.seq}`, {})).kind;
  } catch {
    return null;
  }
}

/** A filing made with this code's key, as the ledger has it: awaiting its answer, or answered. */
async function filingSection(filing) {
  const commitments = await cached("commitments", { agency_id: filing.agency_id, limit: MAX_LIST }).catch(() => ({ items: [] }));
  const commitment = commitments.items.find((c) => c.commitment_id === filing.commitment_id);
  const agencies = await cached("agencies", { limit: MAX_LIST });
  const agency = agencies.items.find((a) => a.agency_id === filing.agency_id) || { agency_id: filing.agency_id };
  const answer = filing.answer;
  const note = !answer ? "filing_note_awaiting" : answer.decision === "accepted" ? "filing_note_accepted" : "filing_note_rejected";
  return h(
    "section",
    { class: "case-result filing-result", "aria-labelledby": "filing-heading" },
    h("h2", { id: "filing-heading", tabindex: "-1" }, t("filing_heading", { seq: filing.seq })),
    facts([[t("col_agency"), localName(agency, agency.agency_id)], ...filingFacts(filing, commitment ? localName(commitment, commitment.commitment_id) : null)]),
    message(t(note, { decision: answer ? t(`filing_decision.${answer.decision}`) : "" }), answer && answer.decision !== "accepted" ? "error" : "note"),
  );
}

// --- making a printed receipt one's own ------------------------------------------------------------------------------

// Claims made on this page, by printed code, in memory only: the signed claim is sent again unchanged after a failure
// that may not have been one, and the new code stays on screen (a language switch redraws the view) until the holder
// confirms writing it down.
const claims = new Map();

/** What was done with the case's receipt before `beforeSeq` (a claim's entry; none: up to now), as lines for people. */
function usesBefore(fb, beforeSeq = Infinity) {
  const uses = [];
  if (fb.rating && fb.rating.proof.seq < beforeSeq) {
    uses.push(h("li", {}, t("claim_used_rating", { score: formatInt(fb.rating.score), time: formatTime(fb.rating.rated_at) }), " ", proofLink(fb.rating.proof.seq)));
  } else if (fb.rated && !fb.rating && beforeSeq === Infinity) {
    uses.push(h("li", {}, t("claim_used_rated")));
  }
  for (const d of fb.disputes) {
    if (d.proof.seq < beforeSeq) uses.push(h("li", {}, t("claim_used_dispute", { time: formatTime(d.disputed_at) }), " ", proofLink(d.proof.seq)));
  }
  if (beforeSeq === Infinity && fb.submissions.length) uses.push(h("li", {}, t("claim_used_pending")));
  return uses;
}

/** The plain statement that the receipt was used before the claim (or before now), or null when it was not. */
function usedWarning(uses, claimed) {
  if (!uses.length) return null;
  return h(
    "div",
    { class: "message error used-before" },
    h("p", {}, h("strong", {}, t(claimed ? "claim_used_before_claim" : "claim_used_before"))),
    h("ul", {}, uses),
    h("p", {}, t(claimed ? "claim_used_before_claim_why" : "claim_used_before_why")),
  );
}

/** For a printed receipt: claimed away already (said plainly), or the offer to make it one's own; for a claimed one:
 * the claim, and what the printed code did before it. Null for a filer's own key. */
function claimSection(lib, receiptCode, view, binding) {
  const fb = view.feedback;
  const headingId = newId("claim");
  const section = (title, ...parts) => h("section", { class: "claim", "aria-labelledby": headingId }, h("h2", { id: headingId, tabindex: "-1" }, title), parts);
  if (fb.claimed_by) {
    return section(
      t("claim_away_title"),
      h("p", { class: "message error" }, t("claim_away", { key: fb.claimed_by }), " ", fb.claimed_seq !== null ? proofLink(fb.claimed_seq) : null),
      usedWarning(usesBefore(fb, fb.claimed_seq ?? Infinity), false),
    );
  }
  if (binding === "receipt_claimed") {
    return section(t("claim_held_title"), h("p", {}, t("claim_held"), " ", proofLink(view.receipt.proof.seq)), usedWarning(usesBefore(fb, view.receipt.proof.seq), true));
  }
  if (binding !== "receipt_issued") return null;
  const pending = claims.get(receiptCode);
  if (pending && pending.answer) return section(t("claim_title"), claimedCode(receiptCode, pending));
  const uses = usesBefore(fb);
  const button = h("button", { type: "button" }, t("claim_button"));
  const out = outcome();
  const node = section(t("claim_title"), h("p", {}, t("claim_intro")), usedWarning(uses, false), h("p", {}, t("claim_how")), h("div", { class: "buttons" }, button), out);
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-disabled") === "true") return;
    button.setAttribute("aria-disabled", "true");
    showOutcome(out, t("claim_signing"), "note");
    try {
      let claim = claims.get(receiptCode);
      if (!claim) {
        const [policy, filing] = await Promise.all([api.get("filing-policy"), filingLib()]);
        if (!policy.domain) throw new Error(t("no_chain"));
        const newCode = lib.newCode();
        claim = { newCode, body: filing.claimBody(receiptCode, newCode, policy.domain, { agencyId: view.agency_id, caseId: view.case_id }), uses };
        claims.set(receiptCode, claim);
      }
      let answer;
      try {
        answer = await api.post("receipt-claims", claim.body);
      } catch (error) {
        if (error.code !== "duplicate" || !error.body || !error.body.id) throw error;
        answer = await api.get(`receipt-claims/${error.body.id}`);
      }
      if (answer.status === "failed") {
        claims.delete(receiptCode);
        showOutcome(out, t("relay_failed", { name: answer.error ? answer.error.name : "" }), "error");
        return;
      }
      claim.answer = answer;
      // drawn again: the claim's new code, and nothing more this printed code can do
      navigate(window.location.hash, { focus: ".code-once h3" });
    } catch (error) {
      if (error.status === undefined || !retryable(error)) claims.delete(receiptCode);
      showOutcome(out, filingRefusalText(error, ["claim_refusal", "filing_refusal"]), "error");
    } finally {
      button.removeAttribute("aria-disabled");
    }
  });
  return node;
}

/** The new code of a claim taken, shown once; then the new code's own receipt page. */
function claimedCode(receiptCode, claim) {
  const shown = codeOnce({
    receiptCode: claim.newCode,
    title: t("claim_code_title"),
    intro: t(claim.answer.status === "recorded" ? "claim_code_intro_recorded" : "claim_code_intro", { seq: claim.answer.seq ?? "" }),
    onConfirmed: () => {
      claims.delete(receiptCode);
      navigate(`#/receipt/${claim.newCode}`, { focus: ".case-result h2" });
    },
  });
  // the new code's panel is a part of the claim's section: its heading one level down
  const title = shown.querySelector("h2");
  const h3 = h("h3", { id: title.id, tabindex: "-1" }, title.textContent);
  title.replaceWith(h3);
  const warning = usedWarning(claim.uses, true);
  if (warning) shown.insertBefore(warning, shown.querySelector(".code-big").nextSibling);
  return shown;
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

/** What the holder may do: rate (once, after closing) and dispute (a fulfilment, within the window). `claimSeq`: the
 * claim's entry when this key holds the case by a claim (a rating before it was not the holder's). */
function feedbackSection(lib, receiptCode, view, claimSeq = null) {
  const fb = view.feedback;
  const headingId = newId("feedback");
  const parts = [h("h2", { id: headingId }, t("feedback_title"))];
  const claimed = claims.get(receiptCode);
  if (claimed && claimed.answer) {
    // claimed on this page a moment ago: the new code rates and disputes from now on, whatever the index says yet
    parts.push(message(t("claim_feedback_moved")));
    return h("section", { class: "feedback", "aria-labelledby": headingId }, parts);
  }
  // the index lacks or lags behind this case: what follows is the chain's own state of it
  if (fb.source === "chain") parts.push(message(t(`feedback_source.${fb.source_reason}`)));

  parts.push(h("h3", {}, t("rating_title")));
  if (fb.rating) {
    parts.push(ratingShown(fb.rating, claimSeq !== null && fb.rating.proof.seq < claimSeq));
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

function ratingShown(rating, beforeClaim = false) {
  return h(
    "div",
    { class: "rating-shown" },
    facts([
      [t(beforeClaim ? "rating_before_claim" : "your_rating"), h("strong", {}, h("span", { class: "stars", "aria-hidden": "true" }, "★".repeat(rating.score) + "☆".repeat(5 - rating.score)), " ", scoreText(rating.score), " · ", t(`score.${rating.score}`))],
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
