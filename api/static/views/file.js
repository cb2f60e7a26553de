// #/file, #/file/{agency} — a citizen files a request with an agency. The key is made in this browser from a fresh
// receipt code (../filing.js, ../receipt.js); the browser does the small proof of work, signs, and posts the filing
// with its content. The ledger gets only codes and hashes; the text, place, photos and contact details are kept by
// this service for the agency asked. The code is shown once, and never sent: the API sees only the key's address.
// Then the filing as the ledger has it: its seq, when the answer is due, and the receipt page that shows its case.
//
// The receipt view reuses the code's one showing (codeOnce) for a claimed receipt, and the filing's facts
// (filingFacts) for a receipt whose filing awaits its answer.

import * as api from "../api.js";
import { h, newId } from "../dom.js";
import { formatInt, localName, t } from "../i18n.js";
import { cached, MAX_LIST, navigate } from "../state.js";
import { code, enc, facts, message, pageHeading, proofLink, timeEl } from "../ui.js";

// filing.js (and the cryptography it vendors) is loaded with this view only
let filingLibrary = null;
export function filingLib() {
  filingLibrary ??= import("../filing.js");
  return filingLibrary;
}

const DISTRICT = /^[!-~]{1,32}$/;
const DEGREES = /^-?[0-9]{1,3}(\.[0-9]{1,10})?$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const POLL_MS = 2000;
const POLL_FOR_MS = 10 * 60 * 1000;

// In memory only, never in storage. `draft` and `photos` survive a redraw (a language switch); `prepared` is the
// signed filing last sent, sent again unchanged after a failure that may not have been one (the API then answers
// "duplicate" with the submission it took); `filed` is the filing taken, with its code until the citizen confirms
// having written it down, and for the link to its receipt page afterwards.
const session = { draft: {}, photos: [], prepared: null, filed: null };

// A code on screen and not yet confirmed written down would be lost with the page: the browser asks before it goes.
// (Moving between the page's views is not leaving it: the code is shown again until confirmed.)
window.addEventListener("beforeunload", (event) => {
  if (document.querySelector(".code-once")) event.preventDefault();
});

/** The length of text in characters (code points), as the API counts it. */
const length = (text) => [...text].length;

export async function fileView({ args: [agencyArg], params }) {
  const heading = t("file_title");
  const [policy, agencyPage] = await Promise.all([cached("filing-policy", {}), cached("agencies", { limit: MAX_LIST })]);
  const agencies = agencyPage.items;
  if (session.filed) {
    if (!session.filed.confirmed) {
      return { title: heading, node: [pageHeading(heading), filedCodeOnce()] };
    }
    const panel = filedPanel(agencies);
    return { title: heading, node: [pageHeading(heading), panel.node], after: panel.poll };
  }
  const intro = [pageHeading(heading), h("p", { class: "lead" }, t("file_intro")), privacyNote()];
  if (!policy.domain) return { title: heading, node: [...intro, message(t("file_no_chain"), "error")] };
  if (agencyArg !== undefined && agencyArg !== session.draft.agency) {
    session.draft = { ...session.draft, agency: agencyArg, commitment: "" };
  }
  // a desk's pairing link (`civic-ledger intake pair`): the service and district filled in, filed as at the counter —
  // still with a key made here, on the citizen's own phone
  if (params && agencyArg !== undefined) {
    for (const name of ["commitment", "district"]) {
      if (params.get(name) && !session.draft[name]) session.draft[name] = params.get(name);
    }
    if (params.get("channel") === "counter") session.draft.channel = "counter";
  }
  const agencyId = session.draft.agency || "";
  const known = agencies.find((a) => a.agency_id === agencyId);
  const commitments = known ? await openCommitments(agencyId) : [];
  const node = [...intro];
  if (agencyId && !known) node.push(message(t("file_unknown_agency", { agency: agencyId }), "error"));
  const lib = await filingLib();
  node.push(filingForm(lib, policy, agencies, known ? agencyId : "", commitments));
  return { title: heading, node };
}

/** The commitments a request can be filed under: the agency's, not retired. */
async function openCommitments(agencyId) {
  const page = await cached("commitments", { agency_id: agencyId, limit: MAX_LIST });
  return page.items.filter((c) => !c.retired);
}

function privacyNote() {
  const id = newId("privacy");
  return h(
    "section",
    { class: "privacy-note", "aria-labelledby": id },
    h("h2", { id }, t("file_privacy_title")),
    h(
      "ul",
      {},
      h("li", {}, h("strong", {}, t("file_privacy_ledger_label")), " ", t("file_privacy_ledger")),
      h("li", {}, h("strong", {}, t("file_privacy_agency_label")), " ", t("file_privacy_agency")),
      h("li", {}, h("strong", {}, t("file_privacy_you_label")), " ", t("file_privacy_you")),
    ),
  );
}

// --- the form -------------------------------------------------------------------------------------------------------

/** A labelled control with its hint and its error line: {node, control, fail(text), clear()}. */
function field(label, control, { hint = null, wide = true, extra = null } = {}) {
  const ids = { hint: newId("hint"), error: newId("error") };
  control.id ||= newId(control.name || "field");
  const hintNode = hint ? h("p", { id: ids.hint, class: "hint" }, hint) : null;
  const error = h("p", { id: ids.error, class: "field-error", hidden: true });
  const described = () => [hint ? ids.hint : null, error.hidden ? null : ids.error].filter(Boolean).join(" ");
  if (hint) control.setAttribute("aria-describedby", ids.hint);
  const node = h("div", { class: wide ? "field wide" : "field" }, h("label", { for: control.id }, label), control, extra, hintNode, error);
  const item = {
    node,
    control,
    fail(text) {
      error.textContent = text;
      error.hidden = false;
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", described());
    },
    clear() {
      error.hidden = true;
      control.removeAttribute("aria-invalid");
      const still = described();
      if (still) control.setAttribute("aria-describedby", still);
      else control.removeAttribute("aria-describedby");
    },
  };
  // a problem shown at a field goes once the reader changes the field
  control.addEventListener("input", () => {
    if (!error.hidden) item.clear();
  });
  return item;
}

function commitmentOptions(commitments, chosen) {
  return [
    h("option", { value: "" }, commitments.length ? t("file_choose_commitment") : t("file_no_commitments")),
    ...commitments.map((c) => h("option", { value: c.commitment_id, selected: c.commitment_id === chosen }, localName(c, c.commitment_id))),
  ];
}

function filingForm(lib, policy, agencies, agencyId, commitments) {
  const draft = session.draft;
  const limits = policy.content;
  const text = (name, attrs = {}) => h("input", { name, type: "text", value: draft[name] || "", ...attrs });
  const agency = field(
    t("col_agency"),
    h(
      "select",
      { name: "agency", required: true },
      h("option", { value: "" }, t("choose_agency")),
      agencies.map((a) => h("option", { value: a.agency_id, selected: a.agency_id === agencyId }, localName(a, a.agency_id))),
    ),
    { wide: false },
  );
  const commitment = field(
    t("file_commitment"),
    h("select", { name: "commitment", required: true, disabled: !agencyId }, commitmentOptions(commitments, draft.commitment)),
    { wide: false, hint: t("file_commitment_hint") },
  );
  const district = field(t("district"), text("district", { autocomplete: "off", spellcheck: "false", autocapitalize: "characters", maxlength: "32", required: true }), {
    wide: false,
    hint: t("file_district_hint"),
  });
  const description = field(
    t("file_description"),
    h("textarea", { name: "description", rows: "5", maxlength: String(limits.max_description), required: true }, draft.description || ""),
    { hint: t("file_description_hint", { n: formatInt(limits.max_description) }) },
  );
  const address = field(t("file_address"), text("address", { maxlength: String(limits.max_field), autocomplete: "street-address" }), { hint: t("file_address_hint") });
  const lat = field(t("file_lat"), text("lat", { inputmode: "decimal", autocomplete: "off", maxlength: "16" }), { wide: false });
  const long = field(t("file_long"), text("long", { inputmode: "decimal", autocomplete: "off", maxlength: "16" }), { wide: false });
  const locate = h("button", { type: "button", class: "secondary" }, t("file_locate"));
  const locateStatus = h("p", { class: "hint", role: "status" });
  locate.addEventListener("click", () => {
    if (!navigator.geolocation) {
      locateStatus.textContent = t("file_locate_unavailable");
      return;
    }
    locateStatus.textContent = t("file_locating");
    navigator.geolocation.getCurrentPosition(
      (position) => {
        lat.control.value = position.coords.latitude.toFixed(6);
        long.control.value = position.coords.longitude.toFixed(6);
        saveDraft();
        locateStatus.textContent = t("file_located");
      },
      () => {
        locateStatus.textContent = t("file_locate_failed");
      },
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });
  const point = h(
    "fieldset",
    { class: "point" },
    h("legend", {}, t("file_point")),
    h("p", { class: "hint" }, t("file_point_hint")),
    h("div", { class: "field-row" }, lat.node, long.node),
    h("div", { class: "buttons" }, locate),
    locateStatus,
  );

  const photoInput = h("input", { name: "photos", type: "file", accept: "image/*", multiple: true });
  const photos = field(t("file_photos", { n: formatInt(limits.max_photos) }), photoInput, { hint: t("file_photos_hint") });
  const photoList = h("ul", { class: "photo-list", "aria-label": t("file_photos_chosen") });
  const drawPhotos = () => {
    photoList.replaceChildren(
      ...session.photos.map((photo, index) => {
        const remove = h("button", { type: "button", class: "secondary" }, t("file_photo_remove"));
        remove.addEventListener("click", () => {
          session.photos.splice(index, 1);
          drawPhotos();
          photoInput.focus();
        });
        return h(
          "li",
          {},
          photo.thumbnail,
          h("span", {}, t("file_photo_line", { n: index + 1, kb: formatInt(Math.ceil(photo.size / 1024)), w: photo.width, h: photo.height })),
          remove,
        );
      }),
    );
    photoList.hidden = !session.photos.length;
  };
  photoInput.addEventListener("change", async () => {
    photos.clear();
    const files = [...photoInput.files];
    photoInput.value = "";
    for (const file of files) {
      if (session.photos.length >= limits.max_photos) {
        photos.fail(t("file_photos_too_many", { n: formatInt(limits.max_photos) }));
        break;
      }
      try {
        const photo = await lib.readPhoto(file, { maxBytes: Math.min(lib.PHOTO_MAX_BYTES, limits.max_photo_bytes) });
        photo.thumbnail = await thumbnail(photo, t("file_photo_alt", { n: session.photos.length + 1 }));
        session.photos.push(photo);
      } catch (error) {
        photos.fail(t(error.kind === "too_large" ? "file_photo_too_large" : "file_photo_unreadable", { name: file.name }));
      }
    }
    drawPhotos();
  });
  drawPhotos();

  const phone = field(t("file_phone"), h("input", { name: "phone", type: "tel", value: draft.phone || "", autocomplete: "tel", maxlength: String(limits.max_field) }), { wide: false });
  const email = field(t("file_email"), h("input", { name: "email", type: "email", value: draft.email || "", autocomplete: "email", maxlength: String(limits.max_field) }), { wide: false });
  const contact = h(
    "fieldset",
    { class: "contact" },
    h("legend", {}, t("file_contact")),
    h("p", { class: "contact-note" }, h("strong", {}, t("file_contact_note"))),
    h("div", { class: "field-row" }, phone.node, email.node),
  );

  const button = h("button", { type: "submit" }, t("file_send"));
  const progress = h("progress", { max: "1", value: "0", "aria-label": t("file_work_label") });
  const progressBox = h("div", { class: "work-progress", hidden: true }, progress);
  const out = h("p", { class: "form-outcome", tabindex: "-1", hidden: true });
  const form = h(
    "form",
    { class: "filing-form", "aria-label": t("file_title"), novalidate: true },
    h("div", { class: "field-row" }, agency.node, commitment.node, district.node),
    description.node,
    address.node,
    point,
    photos.node,
    photoList,
    contact,
    h("p", { class: "hint" }, t("file_before_send")),
    h("div", { class: "buttons" }, button),
    progressBox,
    out,
  );

  const controls = { agency, commitment, district, description, address, lat, long, photos, phone, email };
  function saveDraft() {
    for (const [name, item] of Object.entries(controls)) if (name !== "photos") session.draft[name] = item.control.value;
  }
  form.addEventListener("input", saveDraft);
  agency.control.addEventListener("change", async () => {
    saveDraft();
    session.draft.commitment = "";
    const chosen = agency.control.value;
    commitment.control.disabled = true;
    commitment.control.replaceChildren(h("option", { value: "" }, t("loading")));
    const list = chosen ? await openCommitments(chosen).catch(() => []) : [];
    if (agency.control.value !== chosen) return; // changed again meanwhile
    commitment.control.replaceChildren(...commitmentOptions(list, ""));
    commitment.control.disabled = !chosen;
  });

  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    saveDraft();
    const checked = checkForm(controls, limits);
    if (!checked) return;
    busy = true;
    button.setAttribute("aria-disabled", "true");
    try {
      await send(lib, policy, checked, { out, progress, progressBox, commitmentName: commitment.control.selectedOptions[0]?.textContent || checked.commitmentId });
    } finally {
      busy = false;
      button.removeAttribute("aria-disabled");
      progressBox.hidden = true;
    }
  });
  return form;
}

/** A small picture of a photo on a canvas (the page's policy allows no image from a blob: URL). */
async function thumbnail(photo, label) {
  const side = 96;
  const scale = Math.min(1, side / Math.max(photo.width, photo.height));
  const canvas = h("canvas", { role: "img", "aria-label": label, class: "photo-thumb" });
  canvas.width = Math.max(1, Math.round(photo.width * scale));
  canvas.height = Math.max(1, Math.round(photo.height * scale));
  try {
    const bitmap = await createImageBitmap(new Blob([photo.bytes], { type: photo.media_type }));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
  } catch {
    // the photo was read once already; a thumbnail that cannot be drawn stays blank
  }
  return canvas;
}

/** The form's values checked as the API will check them, each problem shown at its field (the first focused);
 * null when there is one. */
function checkForm(controls, limits) {
  for (const item of Object.values(controls)) item.clear();
  const value = (name) => controls[name].control.value.trim();
  const problems = [];
  const fail = (name, text) => problems.push([name, text]);
  if (!value("agency")) fail("agency", t("agency_required"));
  else if (!value("commitment")) fail("commitment", t("file_commitment_required"));
  if (!DISTRICT.test(value("district"))) fail("district", t("file_district_invalid"));
  const description = value("description");
  if (!description) fail("description", t("file_description_required"));
  else if (length(description) > limits.max_description) fail("description", t("file_too_long", { n: formatInt(limits.max_description) }));
  for (const name of ["address", "phone", "email"]) {
    if (length(value(name)) > limits.max_field) fail(name, t("file_too_long", { n: formatInt(limits.max_field) }));
  }
  if (value("email") && !EMAIL.test(value("email"))) fail("email", t("file_email_invalid"));
  const lat = value("lat");
  const long = value("long");
  if (Boolean(lat) !== Boolean(long)) fail(lat ? "long" : "lat", t("file_point_both"));
  for (const [name, limit, text] of [["lat", 90, lat], ["long", 180, long]]) {
    if (text && (!DEGREES.test(text) || Math.abs(Number(text)) > limit)) fail(name, t(`file_${name}_invalid`));
  }
  if (problems.length) {
    for (const [name, text] of problems) controls[name].fail(text);
    controls[problems[0][0]].control.focus();
    return null;
  }
  const contact = {};
  if (value("phone")) contact.phone = value("phone");
  if (value("email")) contact.email = value("email");
  return {
    agencyId: value("agency"),
    commitmentId: value("commitment"),
    district: value("district"),
    content: { description, address: value("address"), lat, long, contact },
    photos: [...session.photos],
  };
}

function showOutcome(node, text, kind) {
  node.textContent = text;
  node.className = `form-outcome message ${kind}`;
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  node.hidden = false;
  if (kind !== "note") node.focus();
}

/** Whether a failure may not have been one, or may pass later unchanged: then the same signed filing is sent again
 * (the key has not been used, or the API answers "duplicate" with what it took). */
export function retryable(error) {
  return error.status === 0 || error.status >= 500 || ["rate_limited", "filing_queue_full", "filing_budget_exhausted"].includes(error.code);
}

/** What a refusal of POST /filings (or, with `prefixes` ["claim_refusal", "filing_refusal"], of POST
 * /receipt-claims) means, in the reader's language: the first of the prefixes with a text for the code. */
export function filingRefusalText(error, prefixes = ["filing_refusal"]) {
  if (error.status === undefined) return t("filing_refusal_other", { message: error.message });
  if (error.status === 0) return t("filing_refusal.network");
  const extra = (error.body && error.body.error) || {};
  for (const prefix of error.code ? prefixes : []) {
    const key = `${prefix}.${error.code}`;
    const text = t(key, { bits: extra.work_bits ?? "", message: error.message });
    if (text !== key) return text;
  }
  return t("filing_refusal_other", { message: error.message });
}

async function send(lib, policy, checked, { out, progress, progressBox, commitmentName }) {
  const fingerprint = JSON.stringify([checked.agencyId, checked.commitmentId, checked.district, checked.content, checked.photos.map((p) => p.sha256)]);
  try {
    let prepared = session.prepared && session.prepared.fingerprint === fingerprint ? session.prepared : null;
    if (!prepared) {
      showOutcome(out, t("file_working"), "note");
      progress.value = 0;
      progressBox.hidden = false;
      const made = await lib.prepareFiling({
        policy,
        agencyId: checked.agencyId,
        commitmentId: checked.commitmentId,
        district: checked.district,
        channel: session.draft.channel === "counter" ? policy.channels.counter : policy.channels.web,
        content: checked.content,
        photos: checked.photos,
        onProgress: ({ done, expected }) => {
          // the work ends at a random moment; the bar shows the hashes tried against twice what it takes on average
          progress.value = Math.min(0.99, done / (2 * expected));
          progress.setAttribute("aria-valuetext", t("file_work_progress", { done: formatInt(done), expected: formatInt(expected) }));
        },
      });
      prepared = { fingerprint, ...made };
      session.prepared = prepared;
    }
    progress.value = 1;
    showOutcome(out, t("file_sending"), "note");
    let answer;
    try {
      answer = await api.post("filings", prepared.body);
    } catch (error) {
      if (error.code !== "duplicate" || !error.body || !error.body.id) throw error;
      answer = await api.get(`filings/submissions/${error.body.id}`);
    }
    if (answer.status === "failed") {
      session.prepared = null;
      showOutcome(out, t("relay_failed", { name: answer.error ? answer.error.name : "" }), "error");
      return;
    }
    session.filed = {
      code: prepared.code,
      submission: answer,
      filing: null,
      confirmed: false,
      agencyId: checked.agencyId,
      commitmentName,
    };
    session.prepared = null;
    session.draft = { agency: checked.agencyId };
    session.photos = [];
    navigate(window.location.hash, { focus: ".code-once h2" });
  } catch (error) {
    if (!retryable(error)) session.prepared = null;
    showOutcome(out, filingRefusalText(error), "error");
  }
}

// --- the code, shown once -------------------------------------------------------------------------------------------

/** The receipt code shown this once, large and grouped, with a print button and the reader's confirmation that they
 * wrote it down; `onConfirmed` runs once they have. */
export function codeOnce({ receiptCode, title, intro, onConfirmed }) {
  const headingId = newId("code-once");
  const checkId = newId("written");
  const check = h("input", { id: checkId, type: "checkbox", name: "written-down" });
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const print = h("button", { type: "button", class: "secondary" }, t("code_once_print"));
  print.addEventListener("click", () => {
    document.body.classList.add("printing-code");
    window.addEventListener("afterprint", () => document.body.classList.remove("printing-code"), { once: true });
    window.print();
  });
  const proceed = h("button", { type: "button" }, t("code_once_continue"));
  proceed.addEventListener("click", () => {
    if (!check.checked) {
      error.textContent = t("code_once_confirm_first");
      error.hidden = false;
      check.focus();
      return;
    }
    onConfirmed();
  });
  check.addEventListener("change", () => {
    if (check.checked) error.hidden = true;
  });
  return h(
    "section",
    { class: "code-once", "aria-labelledby": headingId },
    h("h2", { id: headingId, tabindex: "-1" }, title),
    h("p", {}, intro),
    h("p", { class: "code-big", "aria-label": t("code_once_label", { code: receiptCode.split("").join(" ") }) }, h("code", {}, receiptCode.replaceAll("-", " "))),
    h("ul", { class: "code-once-notes" }, h("li", {}, t("code_once_only_you")), h("li", {}, t("code_once_secret")), h("li", {}, t("code_once_lost"))),
    h("div", { class: "buttons" }, print),
    h("div", { class: "check" }, check, h("label", { for: checkId }, t("code_once_written"))),
    error,
    h("div", { class: "buttons" }, proceed),
  );
}

function filedCodeOnce() {
  const filed = session.filed;
  return codeOnce({
    receiptCode: filed.code,
    title: t("file_code_title"),
    intro: t("file_code_intro"),
    onConfirmed: () => {
      filed.confirmed = true;
      navigate(window.location.hash, { focus: ".filed h2" });
    },
  });
}

// --- the filing, as the ledger has it -------------------------------------------------------------------------------

/** What the ledger holds of a filing (GET /api/v1/filings/{seq}) and where it stands: [label, value] pairs. */
export function filingFacts(filing, commitmentName = null) {
  const answer = filing.answer;
  let standing;
  if (!answer) standing = h("strong", { class: filing.overdue ? "late" : null }, t(filing.overdue ? "filing_overdue" : "filing_awaiting"));
  else standing = h("span", {}, h("strong", {}, t(`filing_decision.${answer.decision}`)), " ", proofLink(answer.seq));
  return [
    [t("filing_number"), proofLink(filing.seq)],
    [t("file_commitment"), commitmentName || code(filing.commitment_id)],
    [t("district"), code(filing.district)],
    [t("filing_filed_at"), timeEl(filing.filed_at)],
    [t("filing_answer_due"), timeEl(filing.answer_due)],
    [t("status"), standing],
  ];
}

function filedPanel(agencies) {
  const filed = session.filed;
  const headingId = newId("filed");
  const heading = h("h2", { id: headingId, tabindex: "-1" });
  const body = h("div", {});
  const agency = agencies.find((a) => a.agency_id === filed.agencyId) || { agency_id: filed.agencyId };
  const another = h("button", { type: "button", class: "secondary" }, t("file_another"));
  another.addEventListener("click", () => {
    session.filed = null;
    navigate(`#/file/${enc(filed.agencyId)}`);
  });
  const node = h(
    "section",
    { class: "filed", "aria-labelledby": headingId },
    heading,
    body,
    h("p", {}, h("a", { href: `#/receipt/${filed.code}`, class: "receipt-link" }, t("file_receipt_link"))),
    h("p", { class: "hint" }, t("file_receipt_link_hint")),
    h("div", { class: "buttons" }, another),
  );
  const draw = () => {
    const submission = filed.submission;
    const recorded = submission.status === "recorded";
    heading.textContent = t(recorded ? "file_recorded_title" : "file_pending_title");
    const parts = [];
    if (submission.status === "failed") {
      parts.push(message(t("relay_failed", { name: submission.error ? submission.error.name : "" }), "error"));
    } else if (filed.filing) {
      parts.push(facts([[t("col_agency"), localName(agency, agency.agency_id)], ...filingFacts(filed.filing, filed.commitmentName)]));
      parts.push(h("p", {}, t("file_due_note")));
    } else {
      parts.push(
        facts([
          [t("filing_number"), recorded ? proofLink(submission.seq) : h("span", {}, t("file_seq_pending"))],
          [t("col_agency"), localName(agency, agency.agency_id)],
          [t("file_commitment"), filed.commitmentName],
          [t("filing_answer_due"), h("span", {}, t("file_due_pending"))],
        ]),
      );
    }
    body.replaceChildren(...parts);
  };
  draw();
  const started = Date.now();
  // the submission until it is recorded, then the filing once the public index has it (a list, so that "not yet"
  // is an empty page rather than a failed request)
  const poll = async () => {
    if (!node.isConnected || Date.now() - started > POLL_FOR_MS || filed.filing) return;
    const before = JSON.stringify([filed.submission, filed.filing]);
    try {
      if (!["recorded", "failed"].includes(filed.submission.status)) {
        filed.submission = await api.get(`filings/submissions/${filed.submission.id}`);
      }
      if (filed.submission.status === "recorded") {
        const page = await api.get("filings", { receipt: filed.submission.receipt });
        filed.filing = page.items.find((item) => item.seq === filed.submission.seq) || null;
      }
    } catch (error) {
      if (error.status !== 0 && error.status < 500) return; // an answer that will not change: stop asking
    }
    if (node.isConnected && JSON.stringify([filed.submission, filed.filing]) !== before) draw();
    if (filed.submission.status !== "failed") window.setTimeout(poll, POLL_MS);
  };
  return { node, poll: () => window.setTimeout(poll, filed.submission.status === "recorded" ? 0 : POLL_MS) };
}
