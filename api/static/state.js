// What the views share with the router and with each other: the API's answers (kept briefly), the page's state, and
// navigate(), which moves to another view. It draws nothing itself; the router (app.js) draws the views.

import * as api from "./api.js";

// lists the page shows whole (agencies, an agency's commitments) are asked for in one page of the API's largest size
export const MAX_LIST = 1000;
// Answers are kept briefly, so switching language redraws at once without asking the server again.
const CACHE_MS = 30_000;

const cache = new Map();
export const state = {
  chain: null,
  // proofs seen with case events, by seq, so the proof view can link back to the case
  caseOfSeq: new Map(),
  // the raw log as loaded so far (kept across a language switch)
  log: null,
  // each render's number: a view whose answers arrive after a newer render started is dropped
  renderToken: 0,
};

export function cached(path, params = {}) {
  const key = `${path}?${new URLSearchParams(params)}`;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.promise;
  const promise = api.get(path, params);
  cache.set(key, { at: Date.now(), promise });
  promise.catch(() => cache.delete(key));
  return promise;
}

/** The chain facts, or null when they cannot be had: the audit line they give is not worth failing a view for. */
export function chainOrNull() {
  return cached("chain", {}).catch(() => null);
}

// --- navigation -----------------------------------------------------------------------------------------------

let pendingFocus = null;
// the router's render (app.js hands it over at start): navigate() draws through it when the hash stays the same
let draw = null;

export function setRender(render) {
  draw = render;
}

/** Go to `hash`; the new view's heading (or the `focus` selector) gets the focus, as a page load would start at the top. */
export function navigate(hash, { focus = "h1" } = {}) {
  if (window.location.hash === hash) {
    draw({ focus });
  } else {
    pendingFocus = focus;
    window.location.hash = hash;
  }
}

/** The focus for the view a hash change brings: what navigate() asked for, else its heading (a link, "back"). */
export function takePendingFocus() {
  const focus = pendingFocus ?? "h1";
  pendingFocus = null;
  return focus;
}
