// The citizen's receipt, in the browser: the code never leaves this page.
//
// Implements exactly what ledger/receipts.py defines (tests/api/test_receipt_js.py runs both and compares):
//   code  = the 20 characters, upper case, I and L read as 1, O as 0, spaces and dashes dropped
//   seed  = PBKDF2-HMAC-SHA256(password = code (ASCII), salt = "civic-ledger/receipt/v1", 2048 iterations, 32 bytes)
//   key   = int(seed) mod (n - 1) + 1        (n: the secp256k1 group order)
// and the EIP-712 typed data a receipt key signs (ledger.chain.contract.citizen_typed_data): a Rating or a Dispute under the
// domain CivicLedger / 1 / chainId / verifyingContract, or a Filing or a ReceiptClaim under the filings module's domain
// (CivicFilings / 1 / chainId / the module's address: GET /api/v1/filing-policy), signed deterministically (RFC 6979),
// low s, v 27 or 28 — the bytes eth-account gives for the same key and record. New codes are made here too
// (ledger.receipts.new_code): a citizen filing a request, or claiming a printed receipt, gets a key nobody else saw.
//
// The cryptography is noble-secp256k1 1.7.1 and noble-hashes 1.2.0, vendored unchanged under ./vendor/ (the npm
// packages pinned in package.json); the page's import map resolves their bare imports to local files.

import * as secp from "./vendor/noble-secp256k1/index.js";
import { hmac } from "./vendor/noble-hashes/hmac.js";
import { pbkdf2 } from "./vendor/noble-hashes/pbkdf2.js";
import { sha256 } from "./vendor/noble-hashes/sha256.js";
import { keccak_256 } from "./vendor/noble-hashes/sha3.js";

// noble-secp256k1 signs synchronously once given an HMAC-SHA256; this one needs no WebCrypto, which browsers offer
// only on https pages.
secp.utils.hmacSha256Sync = (key, ...messages) => hmac(sha256, key, secp.utils.concatBytes(...messages));

export const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford's base32: no I, L, O, U
export const CODE_LENGTH = 20;
const GROUP = 4;
const SALT = "civic-ledger/receipt/v1";
const ITERATIONS = 2048;
const N = secp.CURVE.n;
const READ_AS = { I: "1", L: "1", O: "0" };

const encoder = new TextEncoder();

/** What is wrong with a typed code: `kind` is "characters" (with the offending ones in `detail`) or "length". */
export class CodeError extends Error {
  constructor(kind, detail) {
    super(kind === "characters" ? `a receipt code has only digits and the letters ${ALPHABET.slice(10)}; got '${detail}'` : `a receipt code has ${CODE_LENGTH} characters; got ${detail}`);
    this.kind = kind;
    this.detail = detail;
  }
}

/** The code's 20 characters (ledger.receipts.normalize), or a CodeError. */
export function normalize(code) {
  const cleaned = [...String(code).toUpperCase()]
    .filter((ch) => ch !== " " && ch !== "-" && ch !== "\t")
    .map((ch) => READ_AS[ch] || ch)
    .join("");
  const wrong = [...new Set([...cleaned].filter((ch) => !ALPHABET.includes(ch)))].sort();
  if (wrong.length) throw new CodeError("characters", wrong.join(""));
  if (cleaned.length !== CODE_LENGTH) throw new CodeError("length", cleaned.length);
  return cleaned;
}

/** A fresh receipt code, grouped (ledger.receipts.new_code): 20 characters of the alphabet, each from 5 random bits
 * of the browser's generator (a byte's low 5 bits: 256 is a multiple of 32, so every character is equally likely). */
export function newCode() {
  const random = crypto.getRandomValues(new Uint8Array(CODE_LENGTH));
  return formatCode([...random].map((byte) => ALPHABET[byte & 31]).join(""));
}

/** The code in groups of four, as printed: XXXX-XXXX-XXXX-XXXX-XXXX. */
export function formatCode(code) {
  const plain = normalize(code);
  const groups = [];
  for (let i = 0; i < CODE_LENGTH; i += GROUP) groups.push(plain.slice(i, i + GROUP));
  return groups.join("-");
}

// --- bytes ----------------------------------------------------------------------------------------------------------

export function toHex(bytes) {
  return `0x${secp.utils.bytesToHex(bytes)}`;
}

export function fromHex(text, length = null) {
  const hex = String(text).replace(/^0x/i, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`not hex: ${text}`);
  const bytes = secp.utils.hexToBytes(hex.toLowerCase());
  if (length !== null && bytes.length !== length) throw new Error(`expected ${length} bytes, got ${bytes.length}`);
  return bytes;
}

function bigintToBytes32(value) {
  return secp.utils.hexToBytes(value.toString(16).padStart(64, "0"));
}

function uint256(value) {
  return bigintToBytes32(BigInt(value));
}

const concat = (...parts) => secp.utils.concatBytes(...parts);
const keccak = (...parts) => keccak_256(concat(...parts));

/** keccak256 of UTF-8 text (ledger.records.text_hash). */
export function textKeccak(text) {
  return keccak(encoder.encode(text));
}

// --- the receipt key --------------------------------------------------------------------------------------------------

/** The receipt key (32 bytes) derived from a code (ledger.receipts.private_key). */
export function privateKey(code) {
  const seed = pbkdf2(sha256, encoder.encode(normalize(code)), encoder.encode(SALT), { c: ITERATIONS, dkLen: 32 });
  const number = BigInt(toHex(seed)) % (N - 1n) + 1n;
  return bigintToBytes32(number);
}

/** EIP-55 checksummed form of a 20-byte address. */
export function checksumAddress(bytes) {
  const hex = secp.utils.bytesToHex(bytes);
  const hash = secp.utils.bytesToHex(keccak_256(encoder.encode(hex)));
  let out = "0x";
  for (let i = 0; i < hex.length; i += 1) out += parseInt(hash[i], 16) >= 8 ? hex[i].toUpperCase() : hex[i];
  return out;
}

/** The address of a private key: the last 20 bytes of keccak256 of the uncompressed public key's coordinates. */
export function addressOfKey(key) {
  const publicKey = secp.getPublicKey(key, false); // 0x04 ‖ x ‖ y
  return checksumAddress(keccak(publicKey.slice(1)).slice(12));
}

/** The address of the key derived from a code: the public commitment recorded on chain (ledger.receipts.address). */
export function address(code) {
  return addressOfKey(privateKey(code));
}

// --- EIP-712 ----------------------------------------------------------------------------------------------------------

const DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
/** The records a receipt key signs, their fields in struct order (ledger.records.Rating, Dispute, Filing and
 * ReceiptClaim). */
export const TYPES = {
  Rating: [
    ["agencyId", "bytes32"],
    ["caseId", "bytes32"],
    ["score", "uint8"],
    ["commentHash", "bytes32"],
  ],
  Dispute: [
    ["agencyId", "bytes32"],
    ["caseId", "bytes32"],
    ["closure", "uint16"],
    ["reasonHash", "bytes32"],
  ],
  Filing: [
    ["agencyId", "bytes32"],
    ["commitmentId", "bytes32"],
    ["district", "bytes32"],
    ["channel", "uint8"],
    ["contentHash", "bytes32"],
    ["receipt", "address"],
  ],
  ReceiptClaim: [
    ["agencyId", "bytes32"],
    ["caseId", "bytes32"],
    ["receipt", "address"],
  ],
};

function encodeType(name) {
  return `${name}(${TYPES[name].map(([field, type]) => `${type} ${field}`).join(",")})`;
}

/** EIP-712 domainSeparator of this ledger: {name, version, chainId, verifyingContract}. */
export function domainSeparator(domain) {
  return keccak(
    textKeccak(DOMAIN_TYPE),
    textKeccak(domain.name),
    textKeccak(domain.version),
    uint256(domain.chainId),
    new Uint8Array(12),
    fromHex(domain.verifyingContract, 20),
  );
}

/** An address as an EIP-712 word: its 20 bytes, left-padded with zeros. */
function addressWord(value) {
  return concat(new Uint8Array(12), fromHex(value, 20));
}

/** EIP-712 hashStruct of a citizen's record given as its message ({agencyId, caseId, score, commentHash}…). */
export function structHash(primaryType, record) {
  const fields = TYPES[primaryType];
  if (!fields) throw new Error(`not a citizen record: ${primaryType}`);
  const words = fields.map(([field, type]) => {
    const value = record[field];
    if (value === undefined || value === null) throw new Error(`${primaryType}.${field} is missing`);
    if (type === "bytes32") return fromHex(value, 32);
    return type === "address" ? addressWord(value) : uint256(value);
  });
  return keccak(textKeccak(encodeType(primaryType)), ...words);
}

/** keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(record)): what the receipt key signs. */
export function digest(domain, primaryType, record) {
  return keccak(new Uint8Array([0x19, 0x01]), domainSeparator(domain), structHash(primaryType, record));
}

/** A 65-byte signature r ‖ s ‖ v (low s, v 27 or 28) of a 32-byte digest, as 0x-hex. */
export function signDigest(key, hash) {
  const [compact, recovery] = secp.signSync(hash, key, { canonical: true, der: false, recovered: true });
  return toHex(concat(compact, new Uint8Array([27 + recovery])));
}

/** Sign a record (TYPES) with the key derived from `code`, under `domain`: {digest, signature, receipt}. */
export function signRecord(code, domain, primaryType, record) {
  const key = privateKey(code);
  const hash = digest(domain, primaryType, record);
  return { digest: toHex(hash), signature: signDigest(key, hash), receipt: addressOfKey(key) };
}

// --- off-chain text -----------------------------------------------------------------------------------------------------

/** A fresh random 32-byte salt (0x-hex): a short comment cannot then be guessed from its hash. */
export function newSalt() {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

/** keccak256(salt ‖ utf8(text)): the hash recorded on chain for a comment or a dispute's reason. */
export function saltedTextHash(salt, text) {
  return toHex(keccak(fromHex(salt, 32), encoder.encode(text)));
}

/** An agency or other code as the bytes32 written on chain: printable ASCII right-padded with zeros, or 0x + 64 hex
 * digits for one that is not (as the API shows such codes). */
export function codeBytes32(text) {
  if (/^0x[0-9a-fA-F]{64}$/.test(text)) return text.toLowerCase();
  const bytes = encoder.encode(text);
  if (!bytes.length || bytes.length > 32 || bytes.some((b) => b < 0x21 || b > 0x7e)) throw new Error(`not a code: ${text}`);
  const out = new Uint8Array(32);
  out.set(bytes);
  return toHex(out);
}

export const ZERO32 = `0x${"00".repeat(32)}`;
