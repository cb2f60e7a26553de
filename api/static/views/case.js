// #/case, #/case/{agency}/{id} — case lookup, and a case's events with their proofs (the receipt view shows a case the
// same way).

import { h, newId } from "../dom.js";
import { actionLabel, channelLabel, formatDuration, formatInt, localName, statusLabel, t } from "../i18n.js";
import { cached, MAX_LIST, navigate, state } from "../state.js";
import { code, enc, facts, message, pageHeading, proofLink, row, table, timeEl } from "../ui.js";

const LATE_SECONDS = 86400;
const CASE_ID = /^0x[0-9a-fA-F]{64}$/;

export async function caseView({ args: [agencyId, caseId] }) {
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

export function caseResult(kase, agency) {
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
      [t("response_due"), given(kase.response_due) ? timeEl(kase.response_due) : null],
      [t("responded_at"), given(kase.response_due) || given(kase.responded_at) ? doneBy(kase.responded_at, kase.response_due, "not_responded") : null],
      [t("due_at"), kase.due_at ? timeEl(kase.due_at) : null],
      [t("closed_at"), kase.closed_at ? timeEl(kase.closed_at) : null],
      [t("hold_time"), kase.hold_seconds ? formatDuration(kase.hold_seconds) : null],
      [t("fulfil_time"), kase.fulfil_seconds !== null ? formatDuration(kase.fulfil_seconds) : null],
      [t("on_time_q"), onTime],
      // set for a case rated 1 or 2 only (a bad rating, which the agency must rectify: ledger.cases, "Rectification")
      [t("rectification_due"), given(kase.rectification_due) ? timeEl(kase.rectification_due) : null],
      [t("rectified_at"), given(kase.rectification_due) ? doneBy(kase.rectified_at, kase.rectification_due, "not_rectified") : null],
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

function given(value) {
  return value !== null && value !== undefined;
}

/** When something due at `due` was done (`at`) and whether in time — by the due time, as ledger.metrics counts it —
 * or that it is not done yet (`notYet`, its words), and whether past its due time now. */
function doneBy(at, due, notYet) {
  if (given(at)) {
    if (!given(due)) return timeEl(at);
    const inTime = at <= due;
    return h("span", {}, timeEl(at), " ", h("span", { class: inTime ? "badge good" : "badge warn" }, t(inTime ? "in_time" : "late_word")));
  }
  const past = given(due) && due < Date.now() / 1000;
  return h("span", {}, t(notYet), past ? [" ", h("span", { class: "badge warn" }, t("past_due"))] : null);
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
