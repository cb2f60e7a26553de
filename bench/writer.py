"""Entries written per second through the writer (outbox → batched transactions → receipts) to a local anvil.

Run: python bench/writer.py [--entries 20000] [--batch-size 500] [--synchronous FULL]

Sustained: a producer submits case events in chunks (as an intake system would) while the writer's background thread
flushes by size or time; the clock runs from the first submit until the last entry is recorded on chain (receipt
seen, seq stored in the outbox). Case lives are realistic: each case is opened, accepted and fulfilled (one open for
two later events). Also measured: one durable submit() at a time (one disk sync each), and a flush of entries that
are already in the outbox. Prints a table, then one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import AgencyKey
from ledger.dev.node import AnvilNode, anvil_binary
from ledger.encoding import keccak
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    DeadlineUnit,
    short_code,
    text_hash,
)
from ledger.writer.outbox import Outbox, OutboxState
from ledger.writer.sender import Writer

COMMITMENT_ID = short_code("STREETLIGHT-48H")


def case_lives(count: int, start: int, occurred_at: int) -> list[CaseEvent]:
    """`count` case events: opened, accepted, fulfilled for case after case."""
    events: list[CaseEvent] = []
    n = start
    while len(events) < count:
        case_id = keccak(b"bench-case-%d" % n)
        n += 1
        events.append(CaseEvent(case_id=case_id, action=CaseAction.OPENED, occurred_at=occurred_at,
                                commitment_id=COMMITMENT_ID, district=short_code("PUDONG"), channel=2,
                                details_hash=text_hash("details")))
        for action in (CaseAction.ACCEPTED, CaseAction.FULFILLED):
            events.append(CaseEvent(case_id=case_id, action=action, occurred_at=occurred_at,
                                    details_hash=text_hash("d")))
    return events[:count]


def setup(chain: Chain) -> tuple[Ledger, AgencyKey]:
    governance = chain.new_account()
    signer = AgencyKey.wrap(chain.new_account())
    ledger = Ledger.deploy(chain, governance)
    agency = short_code("BENCH-AGENCY")
    ledger.register_agency(
        governance, AgencyRegistration(agency_id=agency, jurisdiction=short_code("CN-SH"), name_zh="测", name_en="B")
    )
    ledger.authorize_signer(governance, agency, signer.address)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    ledger.write(signer, Commitment(
        commitment_id=COMMITMENT_ID, service_code=short_code("STREETLIGHT"), name_zh="路灯维修",
        name_en="Streetlight repair", deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS, target_bps=9500,
        valid_from=now, terms_hash=text_hash("terms"), occurred_at=now,
    ))
    return ledger, signer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=20_000, help="entries in the sustained run")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=100, help="entries per submit_many call in the sustained run")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"], help="outbox disk sync mode")
    parser.add_argument("--single", type=int, default=1_000, help="entries submitted one durable submit() at a time")
    args = parser.parse_args(argv)

    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        ledger, signer = setup(chain)
        start_count = ledger.entry_count()
        outbox = Outbox(Path(tmp) / "outbox.db", synchronous=args.synchronous)
        writer = Writer(ledger, signer, outbox, batch_size=args.batch_size, flush_interval=0.2)
        occurred_at = int(time.time())

        # Warm up (first estimate, connection, recovery) outside the clock.
        writer.submit_many(case_lives(30, 10**8, occurred_at))
        writer.flush()

        # 1. Sustained: producer submits in chunks while the background thread flushes by size or time.
        events = case_lives(args.entries, 0, occurred_at)
        stats_before = (writer.stats.signed, writer.stats.estimates)
        writer.start()
        t0 = time.perf_counter()
        for i in range(0, len(events), args.chunk):
            writer.submit_many(events[i : i + args.chunk])
        t_submitted = time.perf_counter() - t0
        writer.stop(flush=True)
        sustained_s = time.perf_counter() - t0
        transactions = writer.stats.signed - stats_before[0]
        estimates = writer.stats.estimates - stats_before[1]

        # 2. One durable submit() per entry (a disk sync each), then one flush.
        single = case_lives(args.single, 10**7, occurred_at)
        t0 = time.perf_counter()
        for event in single:
            writer.submit(event)
        single_submit_s = time.perf_counter() - t0
        writer.flush()

        # 3. Flush only: entries already in the outbox.
        backlog = case_lives(min(args.entries, 10_000), 2 * 10**7, occurred_at)
        writer.submit_many(backlog)
        t0 = time.perf_counter()
        writer.flush()
        flush_s = time.perf_counter() - t0

        counts = outbox.counts()
        on_chain = ledger.entry_count() - start_count
        expected = 30 + len(events) + len(single) + len(backlog)
        writer.close()
        outbox.close()

    entries_per_s = len(events) / sustained_s
    rows = [
        (f"sustained: submit (chunks of {args.chunk}) + background flush", len(events), sustained_s),
        ("  of which submitting", len(events), t_submitted),
        (f"one durable submit() per entry ({args.synchronous} sync)", len(single), single_submit_s),
        ("flush of a backlog already in the outbox", len(backlog), flush_s),
    ]
    print(f"writer benchmark — anvil {anvil_version()}, {platform.machine()} {platform.system()}, "
          f"{os.cpu_count()} cores, batch {args.batch_size}, outbox synchronous={args.synchronous}")
    print(f"{'measurement':<55} {'entries':>8} {'seconds':>8} {'entries/s':>10}")
    for name, count, seconds in rows:
        print(f"{name:<55} {count:>8,} {seconds:>8.2f} {count / seconds:>10,.0f}")
    print(f"transactions {transactions}, gas estimates {estimates}; on chain {on_chain:,} of {expected:,} submitted; "
          f"outbox {', '.join(f'{s.value} {n}' for s, n in counts.items())}")
    ok = on_chain == expected and counts[OutboxState.RECORDED] == expected
    print(json.dumps({
        "entries_per_s": round(entries_per_s, 1),
        "entries": len(events),
        "seconds": round(sustained_s, 3),
        "batch_size": args.batch_size,
        "transactions": transactions,
        "submit_chunk": args.chunk,
        "single_submit_per_s": round(len(single) / single_submit_s, 1),
        "backlog_flush_per_s": round(len(backlog) / flush_s, 1),
        "synchronous": args.synchronous,
        "all_recorded_once": ok,
        "anvil": anvil_version(),
        "cpus": os.cpu_count(),
    }))
    return 0 if ok else 1


def anvil_version() -> str:
    try:
        out = subprocess.run([anvil_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.split()[2] if len(out.split()) > 2 else "unknown"


if __name__ == "__main__":
    sys.exit(main())
