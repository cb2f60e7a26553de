"""Indexer sync speed on a local anvil (a benchmark, not a test): entries per second from an empty store.

Run: python bench/indexer.py [--entries N] [--batch 500] [--store URL] — fills a fresh anvil with case events in
large ``recordCaseEvents`` batches (not measured), then times one full ``Indexer.sync()`` into an empty store
(SQLite file by default; ``--store postgresql://…`` for PostgreSQL). Prints a table, then one JSON line.
Target: at least 10,000 entries/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount

from ledger.chain.contract import Chain, Ledger
from ledger.dev.node import AnvilNode
from ledger.encoding import keccak
from ledger.index.sync import Indexer
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    DeadlineUnit,
    short_code,
    text_hash,
)
from ledger.store.db import open_store

TARGET = 10_000
_CASE_EVENTS_TYPE = "(bytes32,uint8,uint64,bytes32,bytes32,uint8,bytes32)[]"
_RECORD_CASE_EVENTS = keccak(f"recordCaseEvents({_CASE_EVENTS_TYPE})".encode())[:4]


def setup(chain: Chain) -> tuple[Ledger, LocalAccount, bytes]:
    """A fresh ledger with one agency, its key and one commitment (3 entries): what the fill writes under."""
    governance, signer = chain.new_account(), chain.new_account()
    ledger = Ledger.deploy(chain, governance)
    agency = short_code("BENCH-AGENCY")
    ledger.register_agency(
        governance,
        AgencyRegistration(agency_id=agency, jurisdiction=short_code("CN-SH"), name_zh="测", name_en="Bench"),
    )
    ledger.authorize_signer(governance, agency, signer.address)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    commitment_id = short_code("STREETLIGHT-48H")
    ledger.write(
        signer,
        Commitment(commitment_id=commitment_id, service_code=short_code("STREETLIGHT"), name_zh="路灯维修",
                   name_en="Streetlight repair", deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS,
                   target_bps=9500, valid_from=now, terms_hash=text_hash("terms"), occurred_at=now),
    )
    return ledger, signer, commitment_id


def fill(chain: Chain, ledger: Ledger, signer: LocalAccount, commitment_id: bytes, entries: int, batch: int) -> int:
    """Write about `entries` case events: each case opened, accepted, then fulfilled (some put on hold first),
    spread over batches so that later events meet their cases in later blocks, as in real traffic."""
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    districts = [short_code(f"D{i:02d}") for i in range(16)]
    sender = _Sender(chain, ledger, signer)
    written, case_no = 0, 0
    open_cases: list[tuple[bytes, int]] = []  # (case id, next step)
    while written < entries:
        events: list[CaseEvent] = []
        # Half of each batch advances earlier cases, half opens new ones.
        advancing, open_cases = open_cases[: batch // 2], open_cases[batch // 2 :]
        for case_id, step in advancing:
            action = (CaseAction.ACCEPTED, CaseAction.ON_HOLD, CaseAction.RESUMED, CaseAction.FULFILLED)[step]
            if step == 0 and case_id[0] % 4:  # three cases in four skip the hold
                open_cases.append((case_id, 3))
            events.append(CaseEvent(case_id=case_id, action=action, occurred_at=now, details_hash=text_hash("d")))
            if step < 3 and not (step == 0 and case_id[0] % 4):
                open_cases.append((case_id, step + 1))
        while len(events) < batch:
            case_id = keccak(b"bench-case-%d" % case_no)
            case_no += 1
            events.append(
                CaseEvent(case_id=case_id, action=CaseAction.OPENED, occurred_at=now, commitment_id=commitment_id,
                          district=districts[case_no % 16], channel=1 + case_no % 6, details_hash=text_hash("d"))
            )
            open_cases.append((case_id, 0))
        sender.send(events)
        written += len(events)
    sender.finish()
    return written


class _Sender:
    """Sends recordCaseEvents transactions back to back, signed locally with increasing nonces, and waits only for
    the last one: far faster than one estimate-send-wait round trip per batch (Ledger.write_batch)."""

    def __init__(self, chain: Chain, ledger: Ledger, signer: LocalAccount) -> None:
        self.chain, self.ledger, self.signer = chain, ledger, signer
        self.nonce = chain.w3.eth.get_transaction_count(signer.address, "pending")
        self.gas_price = chain.w3.eth.gas_price * 2
        self.last: bytes | None = None

    def send(self, events: list[CaseEvent]) -> None:
        # eth_abi directly: web3's contract-call encoding costs a quarter of a second per 500 events
        data = _RECORD_CASE_EVENTS + abi_encode([_CASE_EVENTS_TYPE], [[e.abi_values() for e in events]])
        tx = {
            "to": self.ledger.address, "data": data, "nonce": self.nonce,
            "chainId": self.chain.chain_id, "gas": 12_000 * len(events) + 100_000, "gasPrice": self.gas_price,
        }
        self.nonce += 1
        signed = self.signer.sign_transaction(tx)
        self.last = self.chain.w3.eth.send_raw_transaction(signed.raw_transaction)

    def finish(self) -> None:
        if self.last is not None:
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(self.last, timeout=600)
            if receipt["status"] != 1:
                raise RuntimeError("a benchmark batch reverted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="case events to write (default 100,000)")
    parser.add_argument("--batch", type=int, default=500, help="case events per transaction (default 500)")
    parser.add_argument("--store", default=None, help="store URL (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()

    with AnvilNode(extra_args=["--gas-limit", "100000000"]) as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        ledger, signer, commitment_id = setup(chain)
        started = time.perf_counter()
        written = fill(chain, ledger, signer, commitment_id, args.entries, args.batch)
        fill_seconds = time.perf_counter() - started
        if ledger.entry_count() != written + 3:  # + agency, signer and commitment: nothing lost
            raise RuntimeError(f"expected {written + 3} entries on chain, found {ledger.entry_count()}")

        url = args.store or f"sqlite:///{Path(tmp) / 'index.sqlite3'}"
        store = open_store(url)
        indexer = Indexer(chain, ledger.address, store, confirmations=12)
        report = indexer.sync()
        store.close()

    entries = report.entries
    rate = report.entries_per_s
    rows = [
        ("entries indexed", f"{entries:,}"),
        ("case events written (not timed)", f"{written:,} in {fill_seconds:.1f} s"),
        ("blocks", f"{report.from_block:,}–{report.to_block:,}"),
        ("log ranges", f"{report.ranges:,}"),
        ("sync time", f"{report.seconds:.2f} s"),
        ("entries/s", f"{rate:,.0f}"),
        ("target", f"≥ {TARGET:,} entries/s: {'met' if rate >= TARGET else 'NOT met'}"),
        ("store", store.dialect),
        ("machine", f"{platform.machine()} {platform.system()}, Python {platform.python_version()}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'indexer sync':<{width}}  value")
    print(f"{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(
        json.dumps(
            {
                "entries_per_s": round(rate, 1),
                "entries": entries,
                "seconds": round(report.seconds, 3),
                "ranges": report.ranges,
                "store": store.dialect,
                "target_entries_per_s": TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
