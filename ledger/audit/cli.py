"""``civic-audit``: audit a Civic Ledger from its chain (and, optionally, its public API), independently.

It reads only the JSON-RPC node and the public API — never the service's database — and recomputes every figure
from chain data. Exit code 0: every check passed; 1: findings; 2: the audit could not run (unreachable node or API,
wrong chain, no contract at the address) or a check could not complete. ``civic-audit monitor …`` is the continuous
mode (``ledger.audit.monitor``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Only light imports here: the compiler is started before the rest of the auditor (web3, SQLAlchemy, …) loads.
from ledger.audit.errors import CannotAudit
from ledger.audit.rpc import Rpc
from ledger.errors import LedgerError

STAGES = {"logs": "reading the contract's logs (blocks)", "headers": "reading block headers",
          "batches": "reading and checking batch files", "rebuild": "rebuilding state from the entries"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="civic-audit", description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 all checks pass, 1 findings, 2 the audit could not run. "
        "`civic-audit monitor --help`: the continuous mode.",
    )
    _arguments(p, monitor=False)
    from ledger.audit.attest import add_arguments

    add_arguments(p)
    return p


def monitor_parser() -> argparse.ArgumentParser:
    from ledger.audit.monitor import DEFAULT_FULL_EVERY, DEFAULT_INTERVAL, EVERY_ROUND, FULL_ONLY

    p = argparse.ArgumentParser(
        prog="civic-audit monitor",
        description="Follow the ledger continuously, in rounds: each reads only the blocks added since the last (the "
        "state kept in --state DIR, so a restart resumes), checks that the new entries continue the verified log, "
        "updates the rebuilt state with them alone, draws every sample again from a fresh secret seed (published in "
        "the round's report), spreads its API requests over the round, follows reorganisations, and stops at the "
        "first finding with an alert. docs/audit-guide.md, \"Monitor mode\".",
        epilog=f"Checks run every round: {', '.join(EVERY_ROUND)}; in full rounds only (the first, then every "
        f"--full-every rounds): {', '.join(FULL_ONLY)}. Exit codes: 1 at the first finding (after the alert: the "
        "round's JSON report in DIR/reports, one CRITICAL log line, the webhook), 2 when the monitor cannot run (or "
        "--max-failures rounds in a row could not), 0 when --rounds are done clean or on SIGINT/SIGTERM.",
    )
    _arguments(p, monitor=True)
    p.add_argument("--state", required=True, type=Path, metavar="DIR",
                   help="where the monitor keeps what it has read and verified (one directory per ledger)")
    p.add_argument("--interval", type=_seconds, default=DEFAULT_INTERVAL, metavar="S",
                   help=f"seconds from the start of a round to the next (default {DEFAULT_INTERVAL:g})")
    p.add_argument("--rounds", type=_positive, default=None, metavar="N",
                   help="stop after N rounds (default: run until interrupted)")
    p.add_argument("--webhook", type=_url, default=None, metavar="URL",
                   help="POST a JSON alert here on the first finding (a failing webhook is logged, never fatal)")
    p.add_argument("--spread", type=_seconds, default=None, metavar="S",
                   help="spread a round's API requests over S seconds, with random pauses (default: the interval; "
                   "0: no pauses)")
    p.add_argument("--full-every", type=_positive, default=DEFAULT_FULL_EVERY, metavar="K",
                   help=f"run every check every K rounds (default {DEFAULT_FULL_EVERY}): the full comparison of the "
                   "API's entries, exports, agencies, commitments and case views, with its position and lag, reads "
                   "the whole ledger from the API; the other rounds run the checks of new data and the drawn samples")
    p.add_argument("--max-failures", type=_positive, default=3, metavar="N",
                   help="give up (exit 2) after N rounds in a row that could not run (default 3)")
    return p


def _arguments(p: argparse.ArgumentParser, *, monitor: bool) -> None:
    """The arguments of the one-shot audit; the monitor's are those that make sense for it (no --to-block: it
    follows the head; no --seed: each round draws a fresh one)."""
    p.add_argument("--rpc-url", required=True, help="JSON-RPC URL of a node of the ledger's chain")
    p.add_argument("--contract", required=True, help="address of the CivicLedger contract")
    p.add_argument("--api", default=None, metavar="URL", help="base URL of the public API to cross-check")
    p.add_argument("--batches", default=None, metavar="DIR_OR_URL",
                   help="where batch files are published: a directory of <file hash>.csv files, or a public API's "
                   "base URL (GET /api/v1/batches/{seq}/file); default: the API given with --api")
    p.add_argument("--chain-id", type=int, default=None, help="the chain id expected (another one: exit 2)")
    p.add_argument("--from-block", type=int, default=None, help="first block to read logs from (default: deployment)")
    if not monitor:
        p.add_argument("--to-block", type=int, default=None, help="audit the ledger as of this block (default: latest)")
    latest = " (the latest round's)" if monitor else ""
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help=f"write the JSON report{latest} here")
    p.add_argument("--html", type=Path, default=None, metavar="PATH",
                   help=f"write the self-contained HTML report{latest} here")
    sample = p.add_mutually_exclusive_group()
    sample.add_argument("--case-sample", type=_count, default=1000, metavar="N",
                        help="fetch at most N cases one by one from the API, drawn at random (all when there are no "
                        "more; default 1000)")
    sample.add_argument("--confidence", type=_probability, default=None, metavar="P",
                        help="fetch as many cases as it takes to catch, with probability P (e.g. 0.99), a lie in at "
                        "least one of K case views (--assume-lies); docs/audit-guide.md has the formula")
    p.add_argument("--assume-lies", type=_positive, default=1, metavar="K",
                   help="the number of lied-about case views --confidence assumes (default 1: the hardest to catch)")
    if not monitor:
        p.add_argument("--seed", type=_seed, default=None, metavar="N",
                       help="draw every sample of the API from this seed (default: a secret random one, printed in "
                       "the report at the end): replays an earlier run's samples")
    p.add_argument("--max-lag-blocks", type=_count, default=50, metavar="N",
                   help="an API more than N blocks behind the audited block is a finding (default 50)")
    p.add_argument("--max-lag-seconds", type=_count, default=600, metavar="S",
                   help="an API whose first unindexed block is more than S seconds of block time older than the "
                   "audited block is a finding (default 600)")
    p.add_argument("--no-compile", action="store_true",
                   help="do not compile the sources (the contract-code check is then reported skipped)")
    p.add_argument("--build-cache", default=None, metavar="DIR",
                   help="where verified contract builds are kept (default $XDG_CACHE_HOME/civic-ledger/builds)")
    p.add_argument("--no-build-cache", action="store_true", help="compile afresh every run; keep no build")
    p.add_argument("--max-response-bytes", type=_positive, default=64 << 20, metavar="N",
                   help="the largest API answer read whole (default 64 MiB)")
    p.add_argument("--max-export-bytes", type=_positive, default=4 << 30, metavar="N",
                   help="the largest bulk export or batch file read (default 4 GiB)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar" + ("; the log says only what goes wrong" if monitor else ""))


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = _count(text)
    if value >= 2**64:
        raise argparse.ArgumentTypeError(f"a seed is below 2**64, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds is finite and not negative, got {text}")
    return value


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text[:80]!r}")
    return text


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a confidence is strictly between 0 and 1 (e.g. 0.99), got {value}")
    return value


def _preflight(args: argparse.Namespace) -> str | None:
    """Why the audit cannot run, found cheaply (node unreachable, wrong chain) before the compiler is started."""
    rpc = Rpc(args.rpc_url, timeout=args.timeout)
    try:
        chain_id = int(rpc.call("eth_chainId", []), 16)
    except (CannotAudit, LedgerError, ValueError, TypeError) as exc:
        return str(exc)
    finally:
        rpc.close()
    if args.chain_id is not None and chain_id != args.chain_id:
        return (f"wrong chain: the node at {rpc.where} serves chain id {chain_id}, but the audit expects "
                f"{args.chain_id}")
    return None


def _config(args: argparse.Namespace) -> Any:
    """The audit's settings from the command line."""
    from ledger.audit.context import AuditConfig

    seed = getattr(args, "seed", None)
    return AuditConfig(
        rpc_url=args.rpc_url, contract=args.contract, api_url=args.api, batches=args.batches,
        from_block=args.from_block, to_block=getattr(args, "to_block", None), chain_id=args.chain_id,
        case_sample=args.case_sample, compile=not args.no_compile, timeout=args.timeout, confidence=args.confidence,
        assume_lies=args.assume_lies, max_lag_blocks=args.max_lag_blocks, max_lag_seconds=args.max_lag_seconds,
        build_cache=args.build_cache, use_build_cache=not args.no_build_cache,
        max_response_bytes=args.max_response_bytes, max_export_bytes=args.max_export_bytes,
        **({} if seed is None else {"seed": seed}),
    )


def monitor_main(argv: list[str]) -> int:
    """``civic-audit monitor``: see :mod:`ledger.audit.monitor`."""
    import logging

    args = monitor_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("civic-audit")
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    try:
        problem = _preflight(args)
        if problem is not None:
            logger.error("the monitor cannot run: %s", problem)
            return 2
        from ledger.audit.monitor import Monitor, MonitorOptions

        options = MonitorOptions(
            state=args.state, interval=args.interval, rounds=args.rounds, webhook=args.webhook, spread=args.spread,
            full_every=args.full_every, max_failures=args.max_failures, json=args.json, html=args.html,
        )
        return Monitor(_config(args), options).run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["monitor"]:
        return monitor_main(argv[1:])
    args = parser().parse_args(argv)
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    problem = _preflight(args)
    if problem is not None:
        err.print(f"[bold red]could not run the audit[/]: {problem}", highlight=False)
        return 2
    build: Any = None
    if not args.no_compile:
        from ledger.audit.build import BackgroundBuild

        build = BackgroundBuild(Path(args.build_cache) if args.build_cache else None,
                                use_cache=not args.no_build_cache)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from ledger.audit.report import print_summary, write_html, write_json
    from ledger.audit.runner import run_audit

    out = Console()
    from ledger.audit import attest

    auditor = None
    if attest.wants_attestation(args):
        try:
            auditor = attest.load_auditor_key(args)  # before the audit: a wrong password costs nothing
            if args.to_block is None:
                args.to_block = attest.attestable_block(args.rpc_url, args.chain_id)
        except LedgerError as exc:
            err.print(f"[bold red]cannot attest[/]: {exc}", highlight=False)
            return 2
    config = _config(args)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=args.quiet,
    )
    tasks: dict[str, TaskID] = {}

    def report_progress(stage: str, done: int, total: int) -> None:
        key = "checks" if stage.startswith("check") or stage == "done" else stage
        if key not in tasks:
            tasks[key] = progress.add_task(STAGES.get(key, "running the checks"), total=total)
        description = STAGES.get(key) or (stage if stage != "done" else "checks done")
        progress.update(tasks[key], completed=done, total=total, description=description)

    try:
        with progress:
            report = run_audit(config, progress=report_progress, compiled=build)
    except CannotAudit as exc:
        err.print(f"[bold red]could not run the audit[/]: {exc}", highlight=False)
        return 2
    except LedgerError as exc:
        err.print(f"[bold red]could not run the audit[/]: {exc}", highlight=False)
        return 2
    print_summary(report, out)
    try:
        if args.json is not None:
            write_json(report, args.json)
            out.print(f"JSON report: {args.json}")
        if args.html is not None:
            write_html(report, args.html)
            out.print(f"HTML report: {args.html}")
    except OSError as exc:
        err.print(f"[bold red]cannot write the report[/]: {exc}")
        return 2
    if auditor is not None:
        try:
            published = attest.publish(report, auditor, rpc_url=args.rpc_url, contract=args.contract,
                                       chain_id=args.chain_id, api_url=args.api, timeout=args.timeout)
        except LedgerError as exc:
            err.print(f"[bold red]not attested[/]: {exc}", highlight=False)
            return 2
        a = published.attestation
        out.print(f"attested block {a.block_number}: {a.verdict.name.lower()}, {a.findings} findings, signed by "
                  f"{auditor.address}, recorded in block {published.block_number} (tx {published.tx_hash}); report "
                  f"{published.report_hash}: {published.report_upload}", highlight=False)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
