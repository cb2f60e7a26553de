// A citizen's filing, made in the browser: the request's content in its one canonical form and the hash the ledger
// records of it, the Filing record signed with a key made here from a fresh receipt code, the small proof of work the
// service asks of a filer, a printed receipt's claim signed by both keys, and photos made small enough to send.
//
// Implements exactly what ledger/filings.py defines (tests/api/test_filing_js.py runs both and compares):
//   canonical    = JSON of the content's non-empty fields and "format": "civic-filing/1", keys sorted (by code point),
//                  no spaces, characters as they are: only '"', '\' and control characters escaped
//                  (FilingContent.canonical: json.dumps(ensure_ascii=False, sort_keys=True, separators=(",", ":")))
//   contentHash  = keccak256(salt ‖ utf8(canonical))                    (FilingContent.content_hash)
//   work digest  = sha256("civic-ledger/filing-work/v1" ‖ receipt address (20 bytes) ‖ nonce (8 bytes, big-endian)),
//                  the first nonce whose digest starts with `bits` zero bits (work_digest, do_work)
// The keys, the EIP-712 hashing and the signing are receipt.js's; the receipt code never leaves this page — only the
// key's address and signatures do.

import * as receipt from "./receipt.js";
import { sha256 } from "./vendor/noble-hashes/sha256.js";

/** The canonical content's format tag (ledger.filings.CONTENT_FORMAT). */
export const CONTENT_FORMAT = "civic-filing/1";
/** What the proof of work hashes first (ledger.filings.WORK_DOMAIN). */
export const WORK_DOMAIN = "civic-ledger/filing-work/v1";
/** A photo is sent at most this many pixels on its longer side... */
export const PHOTO_MAX_SIDE = 1600;
/** ...and at most this many bytes: three of them, in base64, stay under the API's 4.5 MiB body. */
export const PHOTO_MAX_BYTES = 2 ** 20;
/** The content's text fields, in the order the page and the canonical form know them. */
const TEXT_FIELDS = ["address", "lat", "long", "media_url"];

const encoder = new TextEncoder();

/** Why content cannot be made canonical: `field` names where (e.g. "description", "contact.phone"). */
export class ContentError extends Error {
  constructor(field, text) {
    super(`${field}: ${text}`);
    this.field = field;
  }
}

// --- the canonical content ------------------------------------------------------------------------------------------

/** Compare two strings by Unicode code point, as Python sorts str (UTF-16 order differs above U+FFFF). */
function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const diff = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (diff) return diff;
  }
  return x.length - y.length;
}

/** `text` as a JSON string. JSON.stringify escapes exactly what Python's json.dumps(ensure_ascii=False) does ('"',
 * '\', \b \f \n \r \t, other control characters as \u00xx in lower case), except lone surrogates, which Python cannot
 * encode as UTF-8 and the API refuses: refused here too. */
function jsonString(text, field) {
  if (typeof text !== "string") throw new ContentError(field, "not text");
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)) {
    throw new ContentError(field, "not valid Unicode text (it has a lone surrogate)");
  }
  return JSON.stringify(text);
}

/** JSON text with keys sorted by code point and no spaces. Objects are written key by key, never by JSON.stringify:
 * it puts integer-like keys ("10", "9") first, in numeric order, where Python sorts them as text. */
function jsonText(value, field) {
  if (typeof value === "string") return jsonString(value, field);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new ContentError(field, "not a whole number");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map((item, i) => jsonText(item, `${field}.${i}`)).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((key) => `${jsonString(key, field)}:${jsonText(value[key], field ? `${field}.${key}` : key)}`).join(",")}}`;
  }
  throw new ContentError(field, "not text, a number, a list or an object");
}

/** The content as the API takes it (ledger.filings.FilingContent): only its non-empty fields, a photo as its
 * {media_type, sha256, size}. `content` has the same fields: description, address, lat, long, attributes (code →
 * answers), media_url, contact (email, phone, …), attachments. */
export function compactContent(content) {
  const out = { description: content.description };
  for (const name of TEXT_FIELDS) if (content[name]) out[name] = content[name];
  const attributes = content.attributes || {};
  if (Object.keys(attributes).length) {
    out.attributes = Object.fromEntries(Object.entries(attributes).map(([code, values]) => [code, [...values]]));
  }
  const contact = Object.fromEntries(Object.entries(content.contact || {}).filter(([, value]) => value));
  if (Object.keys(contact).length) out.contact = contact;
  const attachments = content.attachments || [];
  if (attachments.length) {
    out.attachments = attachments.map((a) => ({ media_type: a.media_type, sha256: a.sha256, size: a.size }));
  }
  return out;
}

/** The JSON text the content hash is made of (FilingContent.canonical), byte for byte. */
export function canonicalContent(content) {
  if (typeof content.description !== "string" || !content.description.trim()) {
    throw new ContentError("description", "the request says what is wrong (it is empty)");
  }
  return jsonText({ format: CONTENT_FORMAT, ...compactContent(content) }, "");
}

/** keccak256(salt ‖ utf8(canonical content)): the filing's contentHash, 0x-hex (FilingContent.content_hash). */
export function contentHash(salt, content) {
  return receipt.saltedTextHash(salt, canonicalContent(content));
}

// --- the filing and the claim, signed -------------------------------------------------------------------------------

/** The Filing record as the EIP-712 message its key signs, from the API's shape of it ({agency_id, commitment_id,
 * district, channel, content_hash, receipt}). */
export function filingMessage(filing) {
  return {
    agencyId: receipt.codeBytes32(filing.agency_id),
    commitmentId: receipt.codeBytes32(filing.commitment_id),
    district: receipt.codeBytes32(filing.district),
    channel: filing.channel,
    contentHash: filing.content_hash,
    receipt: filing.receipt,
  };
}

/** Sign a filing with the key of `code` in the filings module's `domain`: {digest, signature, receipt}. */
export function signFiling(code, domain, filing) {
  return receipt.signRecord(code, domain, "Filing", filingMessage(filing));
}

/** The body of POST /api/v1/receipt-claims: the printed code's case moved to the key of `newCode`, the ReceiptClaim
 * signed by both keys in the filings module's `domain` (the printed key shows the claimant holds the printed code, the
 * new key that it consents). */
export function claimBody(printedCode, newCode, domain, { agencyId, caseId }) {
  const message = { agencyId: receipt.codeBytes32(agencyId), caseId, receipt: receipt.address(newCode) };
  return {
    agency_id: agencyId,
    case_id: caseId,
    receipt: message.receipt,
    signature: receipt.signRecord(printedCode, domain, "ReceiptClaim", message).signature,
    new_key_signature: receipt.signRecord(newCode, domain, "ReceiptClaim", message).signature,
  };
}

// --- the proof of work ----------------------------------------------------------------------------------------------

/** The bytes hashed for `address`, with room for the nonce at the end. */
function workInput(address) {
  const prefix = encoder.encode(WORK_DOMAIN);
  const input = new Uint8Array(prefix.length + 20 + 8);
  input.set(prefix);
  input.set(receipt.fromHex(address, 20), prefix.length);
  return input;
}

function setNonce(input, nonce) {
  const view = new DataView(input.buffer, input.byteOffset + input.length - 8, 8);
  view.setUint32(0, Math.floor(nonce / 2 ** 32));
  view.setUint32(4, nonce >>> 0);
}

function startsWithZeroBits(digest, bits) {
  let i = 0;
  for (; bits >= 8; bits -= 8, i += 1) if (digest[i] !== 0) return false;
  return bits === 0 || digest[i] >> (8 - bits) === 0;
}

/** sha256(WORK_DOMAIN ‖ address ‖ nonce) (ledger.filings.work_digest), 0x-hex. */
export function workDigest(address, nonce) {
  if (!Number.isSafeInteger(nonce) || nonce < 0) throw new Error("the work's nonce is a whole number from 0");
  const input = workInput(address);
  setNonce(input, nonce);
  return receipt.toHex(sha256(input));
}

/** Whether the digest of (`address`, `nonce`) starts with `bits` zero bits (ledger.filings.work_done). */
export function workDone(address, nonce, bits) {
  return startsWithZeroBits(receipt.fromHex(workDigest(address, nonce)), bits);
}

/** Let the page draw and answer the reader between slices of work. */
function yieldToPage() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The first nonce whose work digest for `address` starts with `bits` zero bits (ledger.filings.do_work), found in
 * slices of about `sliceMs` (a few thousand hashes each), yielding to the page between them. `onProgress({done,
 * expected})` is told after each slice (`expected`: 2^bits hashes, on average); `signal` (an AbortSignal) stops it. */
export async function doWork(address, bits, { onProgress = null, signal = null, sliceMs = 16 } = {}) {
  const input = workInput(address);
  const expected = 2 ** bits;
  let nonce = 0;
  for (;;) {
    const started = performance.now();
    do {
      for (let end = nonce + 1024; nonce < end; nonce += 1) {
        setNonce(input, nonce);
        if (startsWithZeroBits(sha256(input), bits)) {
          if (onProgress) onProgress({ done: nonce + 1, expected, found: true });
          return nonce;
        }
      }
    } while (performance.now() - started < sliceMs);
    if (onProgress) onProgress({ done: nonce, expected, found: false });
    await yieldToPage();
    if (signal && signal.aborted) throw signal.reason || new DOMException("stopped", "AbortError");
  }
}

// --- photos ---------------------------------------------------------------------------------------------------------

/** Why a photo cannot be sent: `kind` is "unreadable" (not a picture this browser can open) or "too_large". */
export class PhotoError extends Error {
  constructor(kind) {
    super(kind === "unreadable" ? "not a picture this browser can read" : "the picture stays too large to send");
    this.kind = kind;
  }
}

function canvasBlob(canvas, type, quality) {
  return new Promise((resolve) => canvas.toBlob(resolve, type, quality));
}

/** Lower-case hex SHA-256 of bytes (a photo's ledger.filings.Attachment.sha256). */
export function sha256Hex(bytes) {
  return receipt.toHex(sha256(bytes)).slice(2);
}

/** A picture file made ready to send: decoded (turned upright as its camera recorded), drawn at most `maxSide` pixels
 * on its longer side on a white background, and encoded as JPEG under `maxBytes` (lower quality, then smaller, until
 * it fits). Re-encoding drops everything else the file carried, such as where it was taken. Gives {media_type, bytes,
 * sha256, size, width, height}; a PhotoError when it cannot. */
export async function readPhoto(file, { maxSide = PHOTO_MAX_SIDE, maxBytes = PHOTO_MAX_BYTES } = {}) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    throw new PhotoError("unreadable");
  }
  try {
    let scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
    for (let attempt = 0; attempt < 6; attempt += 1, scale *= 0.75) {
      const width = Math.max(1, Math.round(bitmap.width * scale));
      const height = Math.max(1, Math.round(bitmap.height * scale));
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext("2d");
      context.fillStyle = "#ffffff"; // a transparent picture's clear parts, white rather than JPEG's black
      context.fillRect(0, 0, width, height);
      context.drawImage(bitmap, 0, 0, width, height);
      for (const quality of [0.85, 0.72, 0.6]) {
        const blob = await canvasBlob(canvas, "image/jpeg", quality);
        if (!blob) throw new PhotoError("unreadable");
        if (blob.size <= maxBytes) {
          const bytes = new Uint8Array(await blob.arrayBuffer());
          return { media_type: "image/jpeg", bytes, sha256: sha256Hex(bytes), size: bytes.length, width, height };
        }
      }
    }
    throw new PhotoError("too_large");
  } finally {
    bitmap.close();
  }
}

/** Bytes as base64 (a photo in the API's body). */
export function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// --- the whole filing -----------------------------------------------------------------------------------------------

/** What GET /api/v1/filing-policy says, checked against what this page implements. */
function checkPolicy(policy) {
  if (!policy.domain) throw new Error("this site is not connected to a ledger");
  if (policy.content.format !== CONTENT_FORMAT || policy.work.domain !== WORK_DOMAIN) {
    throw new Error("this page is older than the service: reload it");
  }
}

/** A filing ready to send: a fresh receipt code, a random salt, the content's hash, the Filing signed by the code's
 * key, and the proof of work; {code, body} — `body` is POST /api/v1/filings's, which carries the key's address and
 * never the code. `photos` are readPhoto's. */
export async function prepareFiling({ policy, agencyId, commitmentId, district, channel, content, photos = [], onProgress = null, signal = null }) {
  checkPolicy(policy);
  const code = receipt.newCode();
  const address = receipt.address(code);
  const salt = receipt.newSalt();
  const full = compactContent({ ...content, attachments: photos });
  const filing = {
    agency_id: agencyId,
    commitment_id: commitmentId,
    district,
    channel,
    content_hash: contentHash(salt, full),
    receipt: address,
  };
  const { signature } = signFiling(code, policy.domain, filing);
  const work = await doWork(address, policy.work.bits, { onProgress, signal });
  const body = {
    filing,
    signature,
    salt,
    content: full,
    photos: photos.map((photo) => ({ media_type: photo.media_type, data: base64(photo.bytes) })),
    work,
  };
  return { code, body };
}
