"""Merkle-anchored batches on a local anvil (a benchmark, not a test): gas per entry, throughput, proofs.

Measures
- gas per entry amortised over batches of 1,000 and 10,000 case events (one ``anchorBatch`` transaction each);
- entries batched and anchored per second from Python: from validated case events to an anchored batch — record
  hashes, tree, canonical file and its hash, the file written to the batch store, the earlier-anchoring lookup, the
  anchoring transaction mined — for 100,000 events, the median of three batches (each of other events, so each is
  anchored anew);
- proof size at 10,000 and 100,000 entries, and the time to check a proof off chain (Python) and its gas on chain
  (``verifyBatchEntry``: eth_estimateGas of the view called in a transaction, and without the transaction's 21,000
  and its calldata: what a contract calling it pays).

The figures depend on the machine's load: the JSON line says how many cores it has and its load average at the start.

Run: python bench/batches.py  — prints a table, then one JSON line of the figures.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import batches
from ledger.chain.contract import Chain, Ledger
from ledger.dev.node import AnvilNode
from ledger.encoding import keccak
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    short_code,
    text_hash,
)

BIG = 100_000
RUNS = 3


def case_events(n: int, start: int, now: int) -> list[CaseEvent]:
    """A hotline's day: each case opened then fulfilled (validated records, built before timing starts)."""
    out = []
    commitment, district = short_code("HOTLINE-24H"), short_code("PUDONG")
    details = text_hash("done")
    for i in range(n):
        case_id = keccak(b"bench-case:%d" % (start + i // 2))
        if i % 2 == 0:
            out.append(CaseEvent(case_id=case_id, action=CaseAction.OPENED, occurred_at=now - 3600,
                                 commitment_id=commitment, district=district, channel=2))
        else:
            out.append(CaseEvent(case_id=case_id, action=CaseAction.FULFILLED, occurred_at=now - 60,
                                 details_hash=details))
    return out


def proof_lengths(batch: batches.Batch) -> tuple[int, int]:
    """Shortest and longest proof of the batch: a leaf's depth in the tree (its array position's level)."""
    depths = [(position + 1).bit_length() - 1 for position in batch.tree.position]
    return min(depths), max(depths)


def main() -> None:
    load = os.getloadavg()[0]
    rows: dict[str, str] = {}
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        governance, signer = chain.new_account(), chain.new_account()
        ledger = Ledger.deploy(chain, governance)
        agency = short_code("BENCH-HOTLINE")
        ledger.register_agency(
            governance, AgencyRegistration(agency_id=agency, jurisdiction=short_code("CN-SH"), name_zh="热线",
                                           name_en="Hotline")
        )
        ledger.authorize_signer(governance, agency, signer.address)
        store = batches.BatchStore(Path(tmp))
        now = int(chain.w3.eth.get_block("latest")["timestamp"])

        gas: dict[int, int] = {}
        for n in (1_000, 10_000):
            batch = batches.build_batch(case_events(n, n * 10, now))
            anchored = batches.anchor(ledger, signer, batch, store)
            gas[n] = int(chain.w3.eth.get_transaction_receipt(anchored.tx_hash)["gasUsed"])
            rows[f"anchor a batch of {n:,}: gas in all"] = f"{gas[n]:,}"
            rows[f"anchor a batch of {n:,}: gas per entry"] = f"{gas[n] / n:.2f}"

        builds, anchors, rates = [], [], []
        for run in range(RUNS):
            events = case_events(BIG, 10**7 * (run + 1), now)
            started = time.perf_counter()
            batch = batches.build_batch(events)
            built = time.perf_counter()
            anchored = batches.anchor(ledger, signer, batch, store)
            done = time.perf_counter()
            builds.append(built - started)
            anchors.append(done - built)
            rates.append(BIG / (done - started))
        entries_per_s = statistics.median(rates)
        rows[f"batch {BIG:,} events: build (hashes, tree, file), median of {RUNS}"] = (
            f"{statistics.median(builds):.3f} s")
        rows[f"batch {BIG:,} events: publish + anchor, median of {RUNS}"] = f"{statistics.median(anchors):.3f} s"
        rows[f"entries batched and anchored per second, median of {RUNS} (min, max)"] = (
            f"{entries_per_s:,.0f} ({min(rates):,.0f}, {max(rates):,.0f})")
        rows[f"batch file of {BIG:,} events"] = f"{len(batch.content) / 1e6:.1f} MB"

        big_proof = batch.proof(BIG // 3)
        small = batches.build_batch(events[:10_000])
        assert len(small.proof(1234)) in proof_lengths(small) and len(big_proof) in proof_lengths(batch)
        rounds = 20_000
        t = time.perf_counter()
        for _ in range(rounds):
            ok = batches.verify_proof(batch.root, BIG // 3, batch.record_hashes[BIG // 3], big_proof)
        check_us = (time.perf_counter() - t) / rounds * 1e6
        assert ok and ledger.verify_batch_entry(anchored.seq, BIG // 3, batch.record_hashes[BIG // 3], big_proof)
        call = ledger.filings.functions.verifyBatchEntry(anchored.seq, BIG // 3, batch.record_hashes[BIG // 3],
                                                         big_proof)
        verify_gas = call.estimate_gas()
        calldata = bytes.fromhex(ledger.filings.encode_abi(
            "verifyBatchEntry", [anchored.seq, BIG // 3, batch.record_hashes[BIG // 3], big_proof])[2:])
        verify_exec_gas = verify_gas - 21_000 - sum(16 if byte else 4 for byte in calldata)
        sizes = {n: proof_lengths(b) for n, b in ((10_000, small), (BIG, batch))}
        for n, (shortest, longest) in sizes.items():
            rows[f"proof size at {n:,} entries (shortest, longest)"] = (
                f"{shortest}-{longest} hashes, {32 * shortest}-{32 * longest} bytes")
        rows["proof check off chain (Python)"] = f"{check_us:.1f} µs"
        rows[f"proof check on chain (verifyBatchEntry, {BIG:,} entries): as a transaction"] = f"{verify_gas:,} gas"
        rows["  of which the check itself (no 21,000, no calldata)"] = f"{verify_exec_gas:,} gas"

    width = max(len(k) for k in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps({
        "gas_per_entry_1k": round(gas[1_000] / 1_000, 2),
        "gas_per_entry_10k": round(gas[10_000] / 10_000, 2),
        "anchor_gas_10k": gas[10_000],
        "entries_per_s": round(entries_per_s),
        "proof_bytes_10k": 32 * sizes[10_000][1],
        "proof_bytes_100k": 32 * sizes[BIG][1],
        "proof_check_us": round(check_us, 1),
        "verify_gas": verify_gas,
        "verify_exec_gas": verify_exec_gas,
        "runs": RUNS,
        "node": "anvil 1.7.1",
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores",
        "load_average": round(load, 2),
    }))


if __name__ == "__main__":
    main()
