// The citizen page: a hash router over the public JSON API.
//   #/                              agency scorecards (filters in the query: from, to, district, channel, as_of)
//   #/rankings                      agencies or commitments ranked by a figure (?by, figure and the same filters)
//   #/agency/{agency}               an agency, its keys and its commitments
//   #/commitment/{agency}/{id}      a commitment, its versions, figures and on-time trend
//   #/case, #/case/{agency}/{id}    case lookup and a case's events with their proofs
//   #/receipt, #/receipt/{CODE}     a citizen's receipt: their case, and their rating or dispute (the code stays in
//                                   the URL fragment, which browsers never send; only the key's address is asked for);
//                                   a printed receipt made the holder's own (a claim)
//   #/file, #/file/{agency}         file a request with an agency: a key made in the browser, only hashes on the ledger
//   #/proof/{seq}                   one entry's proof, checkable against any node
//   #/log                           the raw entry log, a page at a time (batch anchors marked)
//   #/batches, #/batch/{seq}        Merkle-anchored batches, and one batch with its file
//   #/audits                        independent audits: registered auditors, their attestations and reports
//
// Each view is a module in views/ (its render function takes the route's { args, params } and gives { title, node,
// after? }); their small building blocks are in ui.js, and what they share with the router (the API's answers, the
// page's state, navigate) in state.js. This file keeps the router and the page shell.

import * as api from "./api.js";
import { h } from "./dom.js";
import { lang, setLang, t } from "./i18n.js";
import { setRender, state, takePendingFocus } from "./state.js";
import { message, pageHeading, renderChainFacts } from "./ui.js";
import { agencyView } from "./views/agency.js";
import { auditsView } from "./views/audits.js";
import { batchesView, batchView } from "./views/batches.js";
import { caseView } from "./views/case.js";
import { commitmentView } from "./views/commitment.js";
import { fileView } from "./views/file.js";
import { logView } from "./views/log.js";
import { proofView } from "./views/proof.js";
import { rankingsView } from "./views/rankings.js";
import { receiptView } from "./views/receipt.js";
import { scorecardsView } from "./views/scorecards.js";

const main = document.getElementById("main");

function notFound() {
  const heading = t("not_found_title");
  return { title: heading, node: [pageHeading(heading), h("p", {}, t("not_found_text")), h("p", {}, h("a", { href: "#/" }, t("go_home")))] };
}

// --- router ---------------------------------------------------------------------------------------------------

const ROUTES = [
  [/^\/$/, scorecardsView],
  [/^\/rankings$/, rankingsView],
  [/^\/agency\/([^/]+)$/, agencyView],
  [/^\/commitment\/([^/]+)\/([^/]+)$/, commitmentView],
  [/^\/case(?:\/([^/]+)\/([^/]+))?$/, caseView],
  [/^\/receipt(?:\/([^/]+))?$/, receiptView],
  [/^\/file(?:\/([^/]+))?$/, fileView],
  [/^\/proof\/(\d+)$/, proofView],
  [/^\/log$/, logView],
  [/^\/batches$/, batchesView],
  [/^\/batch\/(\d+)$/, batchView],
  [/^\/audits$/, auditsView],
];

function currentRoute() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const mark = raw.indexOf("?");
  const path = mark < 0 ? raw : raw.slice(0, mark);
  const params = new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1));
  const notFoundRoute = { path, params, view: async () => notFound(), args: [] };
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    try {
      return { path, params, view, args: match.slice(1).filter((a) => a !== undefined).map(decodeURIComponent) };
    } catch {
      return notFoundRoute; // a malformed %-escape
    }
  }
  return notFoundRoute;
}

/** Draw the view of the current hash; then focus the element `focus` selects (none: the focus stays where it is). */
async function render({ focus = null } = {}) {
  state.renderToken += 1;
  const token = state.renderToken;
  const hash = window.location.hash;
  const route = currentRoute();
  if (route.path !== "/log") state.log = null;
  updateNav(route.path);
  main.setAttribute("aria-busy", "true");
  const loading = window.setTimeout(() => {
    if (token === state.renderToken) main.replaceChildren(h("p", { class: "loading" }, t("loading")));
  }, 150);
  let result;
  try {
    result = await route.view({ args: route.args, params: route.params });
  } catch (error) {
    result = error.status === 404 ? notFound() : {
      title: t("error_title"),
      node: [
        pageHeading(t("error_title")),
        message(t("load_error", { message: error.message }), "error"),
        h("p", {}, h("button", { type: "button", onclick: () => render({ focus: "h1" }) }, t("retry"))),
      ],
    };
  } finally {
    window.clearTimeout(loading);
  }
  if (token !== state.renderToken) return;
  main.replaceChildren(...[result.node].flat(Infinity).filter(Boolean));
  main.dataset.drawn = hash; // which view is on screen (for scripts and tests driving the page)
  main.removeAttribute("aria-busy");
  document.title = `${result.title} · ${t("site_name")}`;
  if (result.after) result.after();
  const target = focus && (main.querySelector(focus) || main.querySelector("h1"));
  if (target) {
    target.focus({ preventScroll: true });
    if (target.matches("h1")) window.scrollTo(0, 0);
    else target.scrollIntoView({ block: "nearest" });
  }
}

// the navigation's section of each view (by the path's start; the first that matches); the rest are the scorecards'
const NAV_SECTIONS = [
  ["/case", "/case"],
  ["/rankings", "/rankings"],
  ["/receipt", "/receipt"],
  ["/file", "/file"],
  ["/log", "/log"],
  ["/batch", "/log"],
  ["/proof", null],
  ["/audits", null],
];

function updateNav(path) {
  const match = NAV_SECTIONS.find(([prefix]) => path.startsWith(prefix));
  const section = match ? match[1] : "/";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- the page shell: language, static strings, chain facts ----------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang();
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  for (const button of document.querySelectorAll("[data-lang]")) button.setAttribute("aria-pressed", String(button.dataset.lang === lang()));
  renderChainFacts();
}

async function loadChain() {
  try {
    state.chain = await api.get("chain");
    renderChainFacts();
  } catch {
    // the footer stays empty; the views report their own errors
  }
}

function start() {
  setRender(render);
  applyLanguage();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      if (button.dataset.lang === lang()) return;
      setLang(button.dataset.lang);
      applyLanguage();
      render();  // the focus stays on the button
    });
  }
  // The skip link must not change the hash: the hash is the router's.
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
    main.scrollIntoView();
  });
  window.addEventListener("hashchange", () => render({ focus: takePendingFocus() }));
  loadChain();
  render();
}

start();
