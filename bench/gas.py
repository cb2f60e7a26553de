"""Gas per ledger entry on a local anvil: single, batched and relayed writes, a Merkle batch's anchor, citizens'
receipts, ratings and disputes, and citizens' filings with the agency's answers and receipt claims (the filings
module) (a benchmark, not a test).

Run: python bench/gas.py  — prints a table, then one JSON line of the figures.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import receipts
from ledger.chain.contract import Chain, Ledger
from ledger.dev.node import AnvilNode
from ledger.encoding import keccak
from ledger.records import (
    RECEIPT_CASE_FLAG,
    AgencyRegistration,
    Attestation,
    AuditVerdict,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    DeadlineUnit,
    Dispute,
    Filing,
    FilingAnswer,
    FilingDecision,
    HolidayCalendar,
    Rating,
    Receipt,
    ReceiptClaim,
    short_code,
    text_hash,
)

BATCH = 100


def main() -> None:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        governance, signer, relayer = chain.new_account(), chain.new_account(), chain.new_account()
        ledger = Ledger.deploy(chain, governance)
        agency = short_code("BENCH-AGENCY")
        ledger.register_agency(
            governance,
            AgencyRegistration(agency_id=agency, jurisdiction=short_code("CN-SH"), name_zh="测", name_en="B"),
        )
        ledger.authorize_signer(governance, agency, signer.address)

        def now() -> int:
            return int(chain.w3.eth.get_block("latest")["timestamp"])

        commitment_id = short_code("STREETLIGHT-48H")
        commitment = Commitment(
            commitment_id=commitment_id, service_code=short_code("STREETLIGHT"), name_zh="路灯维修",
            name_en="Streetlight repair", deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS, target_bps=9500,
            valid_from=now(), terms_hash=text_hash("terms"), occurred_at=now(),
        )
        rows: dict[str, int] = {}
        rows["commitment published"] = ledger.write(signer, commitment)["gasUsed"]
        counter = iter(range(10**9))

        def opened() -> CaseEvent:
            # A case without a receipt has the top bit of its id clear (ledger.importer.case_id_for): the ledger
            # tracks nothing for it, so it pays nothing for receipts.
            case_id = keccak(b"case%d" % next(counter))
            return CaseEvent(
                case_id=bytes([case_id[0] & ~RECEIPT_CASE_FLAG & 0xFF]) + case_id[1:], action=CaseAction.OPENED,
                occurred_at=now(),
                commitment_id=commitment_id, district=short_code("PUDONG"), channel=2,
                details_hash=text_hash("details"),
            )

        def later(event: CaseEvent, action: CaseAction) -> CaseEvent:
            return CaseEvent(case_id=event.case_id, action=action, occurred_at=now(), details_hash=text_hash("d"))

        first = opened()
        rows["single: case opened"] = ledger.write(signer, first)["gasUsed"]
        rows["single: case fulfilled"] = ledger.write(signer, later(first, CaseAction.FULFILLED))["gasUsed"]

        opens = [opened() for _ in range(BATCH)]
        rows[f"batch of {BATCH}: opened, per entry"] = ledger.write_batch(signer, opens)["gasUsed"] // BATCH
        updates = [later(e, CaseAction.ACCEPTED) for e in opens]
        rows[f"batch of {BATCH}: later events, per entry"] = ledger.write_batch(signer, updates)["gasUsed"] // BATCH
        # A case's usual life: opened, accepted, fulfilled — one open for two later events.
        mixed: list[CaseEvent] = []
        while len(mixed) < BATCH:
            e = opened()
            mixed += [e, later(e, CaseAction.ACCEPTED), later(e, CaseAction.FULFILLED)]
        mixed = mixed[:BATCH]
        rows[f"batch of {BATCH}: case lives (1 open : 2 later), per entry"] = (
            ledger.write_batch(signer, mixed)["gasUsed"] // BATCH
        )

        deadline = now() + 3600
        relayed = opened()
        rows["relayed: case opened"] = ledger.relay(
            relayer, relayed, signer.address, deadline, ledger.sign(signer, relayed, deadline)
        )["gasUsed"]
        relayed_batch = [opened() for _ in range(BATCH)]
        rows[f"relayed batch of {BATCH}: opened, per entry"] = (
            ledger.relay(
                relayer, relayed_batch, signer.address, deadline, ledger.sign(signer, relayed_batch, deadline)
            )["gasUsed"]
            // BATCH
        )
        rows["correction"] = ledger.write(
            signer, Correction(target_seq=3, reason_hash=text_hash("wrong time"), occurred_at=now())
        )["gasUsed"]
        from datetime import date

        calendar = HolidayCalendar.from_dates(
            2026,
            [date(2026, 1, 1), date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5), date(2026, 10, 6)],
            [date(2026, 9, 27), date(2026, 10, 10)],
            now(),
        )
        rows["holiday calendar (5 holidays, 2 workdays)"] = ledger.write(signer, calendar)["gasUsed"]
        # One anchoring transaction whatever the batch's size (target: at most 60,000); the root and file hash are
        # those of some batch of 1,000 events, which the contract never reads.
        rows["batch anchored (root, 1,000 entries, file hash)"] = ledger.anchor_batch(
            signer, keccak(b"root"), 1_000, keccak(b"file")
        )["gasUsed"]

        # Receipts: a case opened with one has the top bit of its id set; the receipt is its own entry.
        def receipt_case() -> tuple[CaseEvent, str]:
            event = opened()
            flagged = bytes([event.case_id[0] | RECEIPT_CASE_FLAG]) + event.case_id[1:]
            return event.model_copy(update={"case_id": flagged}), receipts.new_code()

        def receipt(event: CaseEvent, code: str) -> Receipt:
            return Receipt(case_id=event.case_id, receipt=receipts.address(code), occurred_at=now())

        first_receipt_case, first_code = receipt_case()
        rows["single: receipt case opened"] = ledger.write(signer, first_receipt_case)["gasUsed"]
        rows["single: receipt issued"] = ledger.write(signer, receipt(first_receipt_case, first_code))["gasUsed"]
        rows["single: receipt case fulfilled"] = ledger.write(
            signer, later(first_receipt_case, CaseAction.FULFILLED)
        )["gasUsed"]
        cases = [receipt_case() for _ in range(BATCH)]
        ledger.write_batch(signer, [event for event, _ in cases])
        rows[f"batch of {BATCH}: receipts issued, per entry"] = (
            ledger.issue_receipts(signer, [receipt(event, code) for event, code in cases])["gasUsed"] // BATCH
        )
        rows[f"batch of {BATCH}: receipt cases fulfilled, per entry"] = (
            ledger.write_batch(signer, [later(event, CaseAction.FULFILLED) for event, _ in cases])["gasUsed"] // BATCH
        )
        plain = [opened() for _ in range(BATCH)]
        ledger.write_batch(signer, plain)
        rows[f"batch of {BATCH}: plain cases fulfilled, per entry"] = (
            ledger.write_batch(signer, [later(event, CaseAction.FULFILLED) for event in plain])["gasUsed"] // BATCH
        )

        # Citizens sign with the receipt key; a relayer pays. A rating with a comment (its hash), a dispute with a
        # reason (its hash), and the agency's answer.
        rating = Rating(agency_id=agency, case_id=first_receipt_case.case_id, score=4,
                        comment_hash=text_hash("quick and polite"))
        key = receipts.private_key(first_code)
        rows["rating (relayed, receipt-signed)"] = ledger.submit_citizen(
            relayer, rating, ledger.sign_citizen(key, rating)
        )["gasUsed"]
        disputed, code = cases[0]
        dispute = Dispute(agency_id=agency, case_id=disputed.case_id, closure=1, reason_hash=text_hash("still dark"))
        rows["dispute (relayed, receipt-signed)"] = ledger.submit_citizen(
            relayer, dispute, ledger.sign_citizen(receipts.private_key(code), dispute)
        )["gasUsed"]
        rows["single: dispute answered (rejected, with reason)"] = ledger.write(
            signer, later(disputed, CaseAction.DISPUTE_REJECTED)
        )["gasUsed"]

        # Citizens' filings (the filings module): a request signed with a key made on the citizen's own device,
        # relayed; the agency accepts it (its case opens, bound to the filer's key) or rejects it with a reason. The
        # holder of a printed receipt claims it: moves it to a key of their own, signed with the printed key.
        def filing(code: str) -> Filing:
            return Filing(agency_id=agency, commitment_id=commitment_id, district=short_code("PUDONG"), channel=4,
                          content_hash=text_hash("salt:the lamp at gate 3 is dark"), receipt=receipts.address(code))

        def file() -> tuple[int, int]:
            """A filing with a fresh key: (its seq, its gas)."""
            code = receipts.new_code()
            record = filing(code)
            seq = ledger.entry_count()
            tx = ledger.submit_filing(relayer, record, ledger.sign_filing(receipts.private_key(code), record))
            return seq, tx["gasUsed"]

        accepted, rows["filing (relayed, filer-signed)"] = file()
        rows["filing accepted (the agency's answer; its case opens)"] = ledger.answer_filing(
            signer, FilingAnswer(filing_seq=accepted, decision=FilingDecision.ACCEPTED)
        )["gasUsed"]
        rejected, _ = file()
        rows["filing rejected (out of scope, reason hashed)"] = ledger.answer_filing(
            signer,
            FilingAnswer(filing_seq=rejected, decision=FilingDecision.OUT_OF_SCOPE, reason_hash=text_hash("not ours")),
        )["gasUsed"]
        printed_case, printed_code = cases[1]
        claimant_code = receipts.new_code()
        receipt_claim = ReceiptClaim(
            agency_id=agency, case_id=printed_case.case_id, receipt=receipts.address(claimant_code)
        )
        rows["receipt claimed (relayed, signed with the printed key and the new one)"] = ledger.submit_claim(
            relayer, receipt_claim, ledger.sign_filing(receipts.private_key(printed_code), receipt_claim),
            ledger.sign_filing(receipts.private_key(claimant_code), receipt_claim),
        )["gasUsed"]

        # An auditor's signed checkpoint of the block before the latest, sent by the auditor itself.
        auditor = chain.new_account()
        ledger.authorize_auditor(governance, auditor.address)
        block = chain.w3.eth.get_block(chain.w3.eth.block_number - 1)
        attestation = Attestation(
            block_number=block["number"], block_hash=bytes(block["hash"]),
            entry_count=ledger.entry_count(block["number"]), running_hash=ledger.running_hash(block["number"]),
            report_hash=text_hash("report"), verdict=AuditVerdict.PASSED, findings=0,
        )
        rows["audit attestation (auditor-signed)"] = ledger.record_attestation(
            auditor, attestation, auditor.address, ledger.sign_attestation(auditor.key, attestation)
        )["gasUsed"]

    width = max(len(k) for k in rows)
    print(f"{'entry':<{width}}  gas")
    for name, gas in rows.items():
        print(f"{name:<{width}}  {gas:>7,}")
    figures = {
        "single_entry_gas": rows["single: case opened"],
        "single_later_event_gas": rows["single: case fulfilled"],
        "batched_entry_gas": rows[f"batch of {BATCH}: opened, per entry"],
        "batched_later_event_gas": rows[f"batch of {BATCH}: later events, per entry"],
        "batched_case_life_gas": rows[f"batch of {BATCH}: case lives (1 open : 2 later), per entry"],
        "relayed_entry_gas": rows["relayed: case opened"],
        "relayed_batched_entry_gas": rows[f"relayed batch of {BATCH}: opened, per entry"],
        "anchor_gas": rows["batch anchored (root, 1,000 entries, file hash)"],
        "receipt_gas": rows["single: receipt issued"],
        "receipt_batched_gas": rows[f"batch of {BATCH}: receipts issued, per entry"],
        "rating_gas": rows["rating (relayed, receipt-signed)"],
        "dispute_gas": rows["dispute (relayed, receipt-signed)"],
        "dispute_answer_gas": rows["single: dispute answered (rejected, with reason)"],
        "attestation_gas": rows["audit attestation (auditor-signed)"],
        "filing_gas": rows["filing (relayed, filer-signed)"],
        "filing_accept_gas": rows["filing accepted (the agency's answer; its case opens)"],
        "filing_reject_gas": rows["filing rejected (out of scope, reason hashed)"],
        "receipt_claim_gas": rows["receipt claimed (relayed, signed with the printed key and the new one)"],
        # what closing a case costs more when it has a receipt (the ledger tracks its state for ratings, disputes)
        "receipt_close_extra_gas": rows["single: receipt case fulfilled"] - rows["single: case fulfilled"],
        "receipt_close_extra_batched_gas": (
            rows[f"batch of {BATCH}: receipt cases fulfilled, per entry"]
            - rows[f"batch of {BATCH}: plain cases fulfilled, per entry"]
        ),
        "batch_size": BATCH,
        "node": "anvil 1.7.1",
        "machine": f"{platform.machine()} {platform.system()}",
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
