// #/audits — independent audits: the registered auditors' latest attestations, every attestation, and their reports.

import { h } from "../dom.js";
import { formatInt, t } from "../i18n.js";
import { cached, MAX_LIST } from "../state.js";
import { auditLine, code, message, pageHeading, proofLink, row, table } from "../ui.js";

/** The cells of an attestation in the audits tables: block, verdict, findings, whether it matches, its report. */
function attestationCells(attestation) {
  const matches = attestation.matches_ledger;
  const verdict = attestation.verdict === "passed" ? h("span", { class: "badge" }, t("verdict_passed")) : h("span", { class: "badge warn" }, t("verdict_failed"));
  return [
    [formatInt(attestation.block_number), true],
    [verdict, false],
    [formatInt(attestation.findings), true],
    [matches === null ? t("matches_unknown") : matches ? t("matches_yes") : h("span", { class: "badge warn" }, t("matches_no")), false],
    [attestation.report_available ? h("a", { href: attestation.report_url, type: "application/json" }, t("report_link")) : h("span", { class: "subtle" }, t("report_missing")), false],
  ];
}

export async function auditsView() {
  const [chain, page] = await Promise.all([cached("chain", {}), cached("attestations", { limit: MAX_LIST })]);
  const audit = chain.audit;
  const heading = t("audits_title");
  const attestationColumns = [
    { label: t("col_audited_block"), num: true },
    { label: t("col_verdict") },
    { label: t("col_findings"), num: true },
    { label: t("col_matches") },
    { label: t("col_report") },
  ];
  const current = audit.latest.length
    ? table({
        caption: t("audits_current_caption"),
        columns: [{ label: t("col_auditor") }, ...attestationColumns, { label: t("col_proof") }],
        rows: audit.latest.map(({ auditor, attestation }) =>
          row(
            code(auditor),
            attestation
              ? [...attestationCells(attestation), [proofLink(attestation.seq), false]]
              : [[t("no_attestation"), false], ["", false], ["", false], ["", false], ["", false], ["", false]],
          ),
        ),
        className: "auditors",
      })
    : message(t("audits_no_auditor"));
  const all = page.items.length
    ? table({
        caption: t("audits_all_caption"),
        columns: [{ label: t("col_seq") }, { label: t("col_auditor") }, ...attestationColumns],
        rows: page.items.map((attestation) => row(proofLink(attestation.seq), [[code(attestation.auditor, { short: true }), false], ...attestationCells(attestation)])),
        className: "attestations",
      })
    : message(t("audits_empty"));
  return { title: heading, node: [pageHeading(heading), h("p", { class: "lead" }, t("audits_intro")), auditLine(audit), current, all] };
}
