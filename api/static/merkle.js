// A batched record's Merkle proof, checked in the browser exactly as ledger.batches.verify_proof and the contract's
// verifyBatchEntry check it: OpenZeppelin's standard Merkle tree over (uint256 index, bytes32 recordHash),
//   leaf = keccak256(keccak256(abi.encode(index, recordHash)))
//   node = keccak256 of the two children, the smaller first (bytewise)
// and the proof leads from the leaf to the root anchored on chain (tests/api/test_batches.py runs this in Node and
// compares it with the Python module). keccak256 is noble-hashes' (vendored, as receipt.js uses it).

import { keccak_256 } from "./vendor/noble-hashes/sha3.js";

/** 0x-hex to bytes (an Error for anything else). */
export function hexToBytes(hex) {
  const match = /^0x((?:[0-9a-fA-F]{2})*)$/.exec(String(hex));
  if (!match) throw new Error(`not 0x-hex: ${hex}`);
  const digits = match[1];
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function compare(a, b) {
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The leaf of entry `index` (its position in the batch) with this record hash (0x-hex). */
export function leafHash(index, recordHash) {
  const word = new Uint8Array(32);
  let rest = BigInt(index);
  for (let i = 31; i >= 0 && rest > 0n; i -= 1) {
    word[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return keccak_256(keccak_256(concat(word, hexToBytes(recordHash))));
}

/** The root the proof (0x-hex sibling hashes, from the leaf up) leads to, as 0x-hex. */
export function rootOf(index, recordHash, proof) {
  let node = leafHash(index, recordHash);
  for (const siblingHex of proof) {
    const sibling = hexToBytes(siblingHex);
    node = keccak_256(compare(node, sibling) < 0 ? concat(node, sibling) : concat(sibling, node));
  }
  return bytesToHex(node);
}

/** Whether the proof leads from (index, recordHash) to `root`. */
export function verifyProof(root, index, recordHash, proof) {
  return rootOf(index, recordHash, proof) === String(root).toLowerCase();
}
