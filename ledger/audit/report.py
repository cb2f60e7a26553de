"""The audit's outputs: a JSON report, a self-contained HTML report (inline CSS and SVG charts: it opens without a
network), and a summary table for the terminal."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ledger.audit.model import AuditReport, CheckResult, Finding, Status

STATUS_STYLE = {Status.PASS: "bold green", Status.FAIL: "bold red", Status.SKIPPED: "yellow",
                Status.NOT_APPLICABLE: "dim"}
STATUS_COLOUR = {"pass": "#1a7f37", "fail": "#cf222e", "skipped": "#9a6700", "not_applicable": "#6e7781"}


def report_bytes(report: AuditReport) -> bytes:
    """The JSON report's exact bytes: what ``--json`` writes, and what an attestation's report hash is the keccak256
    of (``ledger.audit.attest``)."""
    return (json.dumps(report.to_dict(), indent=1, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_json(report: AuditReport, path: Path) -> None:
    path.write_bytes(report_bytes(report))


def _counts(result: CheckResult, limit: int = 4) -> str:
    shown = [f"{k.replace('_', ' ')} {v:,}" for k, v in list(result.counts.items())[:limit]]
    return ", ".join(shown)


#: the columns of the per-agency batch findings (``stats["withheld_by_agency"]``, filled by ``batches_complete``)
WITHHELD_COLUMNS = (
    ("batches", "batches withheld"), ("entries", "entries withheld"), ("not_published", "file not published (yet)"),
    ("never_match", "can never match"), ("hidden_receipt_events", "receipt case events hidden in batches"),
)


def withheld_by_agency(report: AuditReport) -> dict[str, dict[str, int]]:
    """Per agency, the batch findings against it: batches withheld (of which not published yet, and never matching),
    their entries, and receipt case events hidden in batches."""
    return report.stats.get("withheld_by_agency") or {}


def print_summary(report: AuditReport, console: Console, *, findings_per_check: int = 10) -> None:
    t = report.target
    console.print(
        f"[bold]Civic Ledger audit[/] of {t['contract']} on chain {t['chain_id']} at block {t['block_number']} "
        f"({t['entry_count']:,} entries){' against ' + t['api'] if t.get('api') else ''}"
    )
    table = Table(title="Checks", title_justify="left", show_lines=False)
    for column in ("check", "status", "findings", "warnings", "what was looked at", "s"):
        table.add_column(column, justify="right" if column in ("findings", "warnings", "s") else "left")
    for r in report.checks:
        table.add_row(
            r.title, Text(r.status.value.replace("_", " "), style=STATUS_STYLE[r.status]),
            f"{r.finding_total():,}", f"{len(r.warnings) + r.warnings_omitted:,}", _counts(r), f"{r.seconds:.2f}",
        )
    console.print(table)
    if t.get("seed") is not None:
        console.print(f"samples drawn from seed {t['seed']} (replay them with --seed {t['seed']})", highlight=False)
    for r in report.checks:
        if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE):
            note = escape(r.notes[-1]) if r.notes else r.status.value
            console.print(f"[{STATUS_STYLE[r.status]}]{r.name}[/]: {note}")
    withheld = withheld_by_agency(report)
    if withheld:
        console.print("\n[bold red]Against the agencies[/] that anchored the batches (batches_complete):")
        for agency, v in withheld.items():
            shown = ", ".join(f"{label} {v.get(key, 0):,}" for key, label in WITHHELD_COLUMNS if v.get(key))
            console.print(f"  • [cyan]{escape(agency)}[/]: {escape(shown)}", highlight=False)
    for r in report.checks:
        if not r.findings:
            continue
        console.print(f"\n[bold red]{r.name}[/]: {r.finding_total():,} finding(s)")
        for f in r.findings[:findings_per_check]:
            # messages and values quote what was found (paths, API answers), already cut (ledger.audit.model.quoted):
            # plain Text, never read as markup, so "[bold red]" shows as written
            line = Text.assemble("  • ", (f.where, "cyan"), ": ", f.message)
            if f.expected is not None or f.actual is not None:
                line.append(f" (expected {json.dumps(f.expected, default=str, ensure_ascii=False)}, found "
                            f"{json.dumps(f.actual, default=str, ensure_ascii=False)})", style="dim")
            console.print(line, highlight=False)
        if r.finding_total() > findings_per_check:
            console.print(f"  … and {r.finding_total() - findings_per_check:,} more (see the JSON or HTML report)")
    for error in report.errors:
        console.print(f"[bold yellow]could not complete[/]: {escape(error)}")
    s = report.summary()
    verdict = {0: "[bold green]PASS[/]", 1: "[bold red]FAIL[/]", 2: "[bold yellow]INCOMPLETE[/]"}[report.exit_code]
    console.print(
        f"\n{verdict}: {s['pass']} passed, {s['fail']} failed, {s['skipped']} skipped, {s['not_applicable']} not "
        f"applicable; {s['findings']:,} finding(s), {s['warnings']:,} warning(s) in {report.seconds:.1f} s"
    )


# --- HTML ---------------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin:12px 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.verdict{font-size:20px;font-weight:700}.muted{color:#656d76}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
details summary{cursor:pointer;color:#0969da}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{STATUS_COLOUR[status]}">{_e(status.replace("_", " "))}</span>'


def bar_chart(title: str, data: Sequence[tuple[str, float]], *, colour: str = "#0969da", width: int = 520,
              height: int = 220, max_labels: int = 12) -> str:
    """A vertical bar chart as inline SVG (no script, no external resource)."""
    left, bottom, top = 44, 40, 24
    inner_w, inner_h = width - left - 10, height - bottom - top
    peak = max((v for _, v in data), default=0) or 1
    n = max(1, len(data))
    step = inner_w / n
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px">',
        f'<text x="{left}" y="15" font-size="13" font-weight="600">{_e(title)}</text>',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" stroke="#8c959f"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{_e(f"{peak:,.0f}")}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" font-size="10" text-anchor="end">0</text>',
    ]
    every = max(1, -(-len(data) // max_labels))
    for i, (label, value) in enumerate(data):
        h = inner_h * value / peak
        x = left + i * step + (step - bar) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{top + inner_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{_e(label)}: {_e(f'{value:,.0f}')}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + inner_h + 14}" font-size="10" text-anchor="middle">'
                f"{_e(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(title: str, data: Sequence[tuple[str, float]], *, colour: str = "#0969da", width: int = 520,
               unit: str = "") -> str:
    """A horizontal bar chart as inline SVG, for named categories (checks, agencies) whose labels are long."""
    label_w, row_h, top = 150, 20, 26
    inner_w = width - label_w - 60
    height = top + row_h * max(1, len(data)) + 6
    peak = max((v for _, v in data), default=0) or 1
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px">',
        f'<text x="0" y="15" font-size="13" font-weight="600">{_e(title)}</text>',
    ]
    for i, (label, value) in enumerate(data):
        y = top + i * row_h
        w = inner_w * value / peak
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row_h - 6}" fill="{colour}">'
            f"<title>{_e(label)}: {_e(f'{value:,.1f}'.rstrip('0').rstrip('.'))}{_e(unit)}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{_e(f'{value:,.1f}'.rstrip('0').rstrip('.'))}{_e(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _findings_table(items: Sequence[Finding]) -> str:
    rows = []
    for f in items:
        extra = ""
        if f.expected is not None or f.actual is not None:
            extra = (f'<div class="muted mono">expected {_e(json.dumps(f.expected, default=str))} · found '
                     f"{_e(json.dumps(f.actual, default=str))}</div>")
        against = f'<div class="muted">against agency {_e(f.agency)}</div>' if f.agency else ""
        rows.append(
            f'<tr><td class="num">{_e(f.seq)}</td><td class="mono">{_e(f.tx_hash)}</td><td class="num">'
            f"{_e(f.log_index)}</td><td>{_e(f.subject)}{against}</td><td>{_e(f.message)}{extra}</td></tr>"
        )
    return ("<table><tr><th>seq</th><th>transaction</th><th>log</th><th>about</th><th>what is wrong</th></tr>"
            + "".join(rows) + "</table>")


def render_html(report: AuditReport) -> str:
    t = report.target
    s = report.summary()
    stats = report.stats
    verdict = {0: ("PASS", "pass"), 1: ("FAIL", "fail"), 2: ("INCOMPLETE", "skipped")}[report.exit_code]
    when = datetime.fromtimestamp(report.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    block_time = datetime.fromtimestamp(t["block_time"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = [
        ("chain id", t["chain_id"]), ("contract", t["contract"]), ("node", t["rpc"]),
        ("audited block", f"{t['block_number']} ({t['block_hash']}) at {block_time}"),
        ("entries (contract's count)", f"{t['entry_count']:,}"), ("running hash (contract)", t["running_hash"]),
        ("public API", t.get("api") or "not given"), ("batch files", t.get("batches") or "not given"),
        ("audit started", when), ("duration", f"{report.seconds:.2f} s"), ("tool", report.tool),
        ("samples drawn from seed", t.get("seed") if t.get("seed") is not None else "not recorded"),
    ]
    out = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        f"<title>Civic Ledger audit: {_e(verdict[0])}</title><style>{_CSS}</style></head><body><main>",
        "<h1>Civic Ledger — independent audit</h1>",
        '<p class="muted">Read from the chain and the public API only; every figure recomputed from chain data.</p>',
        f'<div class="card"><span class="verdict" style="color:{STATUS_COLOUR[verdict[1]]}">{verdict[0]}</span> '
        f"— {s['pass']} passed, {s['fail']} failed, {s['skipped']} skipped, {s['not_applicable']} not applicable; "
        f"{s['findings']:,} finding(s), {s['warnings']:,} warning(s).</div>",
        '<div class="card"><table>',
        *(f"<tr><th>{_e(k)}</th><td class=\"mono\">{_e(v)}</td></tr>" for k, v in facts),
        "</table></div>",
        "<h2>Checks</h2><div class=\"card\"><table><tr><th>check</th><th>status</th><th>findings</th>"
        "<th>warnings</th><th>what was looked at</th></tr>",
    ]
    for r in report.checks:
        counts = ", ".join(f"{_e(k.replace('_', ' '))}: {v:,}" for k, v in r.counts.items())
        out.append(
            f'<tr><td><a href="#{_e(r.name)}">{_e(r.title)}</a></td><td>{_badge(r.status.value)}</td>'
            f'<td class="num">{r.finding_total():,}</td><td class="num">{len(r.warnings) + r.warnings_omitted:,}</td>'
            f"<td>{counts}</td></tr>"
        )
    out.append("</table></div>")
    withheld = withheld_by_agency(report)
    if withheld:
        out.append(
            '<div class="card"><h3>Batch findings against the agencies that anchored them</h3>'
            '<p class="muted">A withheld batch is counted in the log but none of its events is applied; one whose file '
            "is not published may still be read once it is, one that can never match never will.</p><table><tr>"
            "<th>agency</th>" + "".join(f"<th>{_e(label)}</th>" for _, label in WITHHELD_COLUMNS) + "</tr>"
            + "".join(
                f"<tr><td>{_e(agency)}</td>"
                + "".join(f'<td class="num">{v.get(key, 0):,}</td>' for key, _ in WITHHELD_COLUMNS) + "</tr>"
                for agency, v in withheld.items()
            ) + "</table></div>"
        )
    if report.errors:
        out.append('<div class="card"><h3>Checks that could not complete</h3><ul>'
                   + "".join(f"<li>{_e(x)}</li>" for x in report.errors) + "</ul></div>")

    charts = [hbar_chart("Findings per check", [(r.name, r.finding_total()) for r in report.checks], colour="#cf222e")]
    if withheld:
        charts.append(hbar_chart("Entries in withheld batches, per agency",
                                 [(a, v.get("entries", 0)) for a, v in withheld.items()], colour="#cf222e"))
    per_day = stats.get("entries_per_day") or {}
    if per_day:
        charts.append(bar_chart("Entries recorded per day (block time, UTC)", [(d[5:], n) for d, n in per_day.items()]))
    latency = stats.get("latency_histogram") or {}
    if latency:
        charts.append(bar_chart("Recording latency of case events (block time − claimed time)",
                                list(latency.items()), colour="#8250df"))
    shares = stats.get("late_share_by_agency") or {}
    if shares:
        charts.append(hbar_chart("Case events recorded more than 24 h late, per agency",
                                 [(a, 100 * v["share"]) for a, v in shares.items()], colour="#bf8700", unit=" %"))
    holds = stats.get("holds_by_agency") or {}
    if holds:
        charts.append(hbar_chart("Holds per agency (of which late: after 80 % of the deadline)",
                                 [(f"{a} ({v['late']} late)", v["holds"]) for a, v in holds.items()], colour="#1a7f37"))
    scores = stats.get("rating_distribution") or {}
    if any(scores.values()):
        charts.append(bar_chart("Ratings by score (1 worst, 5 best)", list(scores.items()), colour="#0969da"))
    disputes = {a: v for a, v in (stats.get("disputes_by_agency") or {}).items() if v["disputes"]}
    if disputes:
        charts.append(hbar_chart(
            "Disputes per agency (answered late, or unanswered past the 10-day deadline)",
            [(f"{a} ({v['late']} late, {v['overdue']} unanswered)", v["disputes"]) for a, v in disputes.items()],
            colour="#cf222e",
        ))
    out.append('<h2>Charts</h2><div class="charts">'
               + "".join(f'<div class="card">{c}</div>' for c in charts) + "</div>")

    out.append("<h2>Details</h2>")
    for r in report.checks:
        out.append(f'<div class="card" id="{_e(r.name)}"><h3>{_e(r.title)} {_badge(r.status.value)}</h3>'
                   f'<p class="muted">{_e(r.description)}</p>')
        if r.notes:
            out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
        if r.findings:
            out.append(f"<h3>{r.finding_total():,} finding(s)</h3>" + _findings_table(r.findings))
            if r.findings_omitted:
                out.append(f'<p class="muted">… and {r.findings_omitted:,} more (not listed)</p>')
        if r.warnings:
            out.append(f"<details><summary>{len(r.warnings) + r.warnings_omitted:,} warning(s)</summary>"
                       + _findings_table(r.warnings) + "</details>")
        out.append("</div>")
    thresholds = t.get("thresholds") or {}
    out.append('<h2>Thresholds</h2><div class="card"><table>'
               + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in thresholds.items())
               + "</table></div></main></body></html>\n")
    return "".join(out)


def write_html(report: AuditReport, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
