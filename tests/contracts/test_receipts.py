"""Receipts, ratings and disputes on chain: only the receipt key can rate or dispute, once, after closing.

Runs on both backends against the shared world of ``tests/conftest.py`` (rolled back after each test). A receipt
case has an id with its top bit set (``RECEIPT_CASE_FLAG``); its receipt key is derived from a code as the citizen's
page derives it (``ledger.receipts``).
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_keys import keys

from ledger import receipts
from ledger.chain.contract import Ledger
from ledger.encoding import ZERO32, keccak, running_hash
from ledger.errors import ContractReverted
from ledger.records import (
    CaseAction,
    Dispute,
    EntryKind,
    Rating,
    Receipt,
    ReceiptCaseStatus,
    short_code,
    text_hash,
)
from tests.support.receipts import CODE, close, dispute, open_with_receipt, rate, receipt_case_id, state
from tests.support.reverts import refused
from tests.support.world import World

SECP256K1_N = receipts.SECP256K1_N


# ------------------------------------------------------------------ receipts


def test_a_receipt_is_recorded_once_and_only_for_a_flagged_case(world: World) -> None:
    case_id = open_with_receipt(world, "one")
    tracked = state(world, case_id)
    assert tracked.receipt == receipts.address(CODE) and tracked.status is ReceiptCaseStatus.OPEN
    entry = world.ledger.entries()[-1]
    assert entry.kind is EntryKind.RECEIPT_ISSUED and entry.actor == world.signer.address
    assert entry.record == Receipt(
        case_id=case_id, receipt=receipts.address(CODE), occurred_at=entry.record.occurred_at
    )

    again = Receipt(case_id=case_id, receipt=receipts.address(receipts.new_code()), occurred_at=world.now())
    refused("CaseAlreadyHasReceipt", world.ledger.write, world.signer, again)
    assert state(world, case_id).receipt == receipts.address(CODE)

    plain = keccak(b"no flag")
    plain = bytes([plain[0] & 0x7F]) + plain[1:]
    unflagged = Receipt.model_construct(case_id=plain, receipt=receipts.address(CODE), occurred_at=world.now())
    refused("InvalidReceipt", world.ledger.write, world.signer, unflagged)
    zero = Receipt.model_construct(case_id=receipt_case_id("z"), receipt="0x" + "00" * 20, occurred_at=world.now())
    refused("InvalidReceipt", world.ledger.write, world.signer, zero)


def test_receipts_are_agency_scoped_and_batched(world: World) -> None:
    case_id = open_with_receipt(world, "scoped")
    # the other agency's receipt for the same id is its own case, not this one
    world.ledger.write(
        world.other_signer,
        Receipt(case_id=case_id, receipt=receipts.address(receipts.new_code()), occurred_at=world.now()),
    )
    assert state(world, case_id).receipt == receipts.address(CODE)
    codes = [receipts.new_code() for _ in range(3)]
    batch = [Receipt(case_id=receipt_case_id(f"b{i}"), receipt=receipts.address(c), occurred_at=world.now())
             for i, c in enumerate(codes)]
    world.ledger.issue_receipts(world.signer, batch)
    assert [state(world, r.case_id).receipt for r in batch] == [receipts.address(c) for c in codes]
    refused("EmptyBatch", world.ledger.issue_receipts, world.signer, [])


def test_a_relayed_receipt_issue_is_checked_like_any_relayed_record(world: World) -> None:
    record = Receipt(case_id=receipt_case_id("relayed"), receipt=receipts.address(CODE), occurred_at=world.now())
    deadline = world.now() + 3600
    signature = world.ledger.sign(world.signer, record, deadline)
    world.ledger.relay(world.relayer, record, world.signer.address, deadline, signature)
    assert state(world, record.case_id).receipt == receipts.address(CODE)


# ------------------------------------------------------------------- ratings


def test_rating_after_closing_by_the_receipt_key_once(world: World) -> None:
    case_id = open_with_receipt(world, "rated")
    err = refused("InvalidReceiptCaseStatus", rate, world, case_id)  # before closing
    assert err.error_args["status"] == ReceiptCaseStatus.OPEN
    close(world, case_id)
    before = world.ledger.entry_count()
    receipt = rate(world, case_id, 5)
    entry = world.ledger.entries()[-1]
    assert entry.seq == before and entry.kind is EntryKind.CASE_RATED
    assert entry.actor == receipts.address(CODE) and entry.record.score == 5
    assert running_hash(e.entry_hash for e in world.ledger.entries()) == world.ledger.running_hash()
    assert state(world, case_id).rated
    refused("AlreadyRated", rate, world, case_id, 1)
    assert receipt["gasUsed"] < 80_000


def test_a_rating_not_signed_by_the_receipt_is_refused(world: World) -> None:
    case_id = open_with_receipt(world, "forged")
    close(world, case_id)
    # the agency's own signing key cannot rate its case, nor can any other key
    refused("InvalidReceiptSignature", rate, world, case_id, 5, bytes(world.signer.key))
    refused("InvalidReceiptSignature", rate, world, case_id, 5, receipts.private_key(receipts.new_code()))
    # a genuine signature over another score, case or agency does not carry over
    record = Rating(agency_id=world.agency_id, case_id=case_id, score=2)
    signature = world.ledger.sign_citizen(receipts.private_key(CODE), record)
    for tampered in (record.model_copy(update={"score": 5}), record.model_copy(update={"comment_hash": keccak(b"x")}),
                     record.model_copy(update={"agency_id": world.other_agency_id})):
        with pytest.raises(ContractReverted):
            world.ledger.submit_citizen(world.relayer, tampered, signature)
    # the high-s twin of the genuine signature is refused; the genuine one is accepted
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    refused("InvalidReceiptSignature", world.ledger.submit_citizen, world.relayer, record, twin)
    world.ledger.submit_citizen(world.relayer, record, signature)
    assert state(world, case_id).rated


def test_a_rating_signed_for_another_deployment_is_refused(world: World) -> None:
    case_id = open_with_receipt(world, "domain")
    close(world, case_id)
    twin = Ledger.deploy(world.chain, world.governance)
    record = Rating(agency_id=world.agency_id, case_id=case_id, score=3)
    signature = twin.sign_citizen(receipts.private_key(CODE), record)
    refused("InvalidReceiptSignature", world.ledger.submit_citizen, world.relayer, record, signature)


def test_scores_outside_one_to_five_and_cases_without_receipt_are_refused(world: World) -> None:
    case_id = open_with_receipt(world, "scores")
    close(world, case_id, CaseAction.WITHDRAWN)
    refused("InvalidScore", rate, world, case_id, 0)
    refused("InvalidScore", rate, world, case_id, 6)
    rate(world, case_id, 1)  # a withdrawn case can be rated too: any closing
    world.ledger.write(world.signer, world.opened("plain"))
    plain = world.opened("plain").case_id
    close(world, plain)
    refused("CaseHasNoReceipt", rate, world, plain)


# ------------------------------------------------------------------ disputes


def test_dispute_then_the_agency_answers(world: World) -> None:
    case_id = open_with_receipt(world, "disputed")
    refused("InvalidReceiptCaseStatus", dispute, world, case_id)  # open: nothing to dispute
    close(world, case_id)
    refused("StaleClosure", dispute, world, case_id, 2)
    refused("InvalidReceiptSignature", dispute, world, case_id, 1, bytes(world.signer.key))
    dispute(world, case_id)
    assert state(world, case_id).disputed
    assert world.ledger.entries()[-1].kind is EntryKind.CASE_DISPUTED
    refused("AlreadyDisputed", dispute, world, case_id)

    # the agency stands by the fulfilment, with a reason; the case stays fulfilled
    world.ledger.write(world.signer, world.update("x", CaseAction.DISPUTE_REJECTED, case_id=case_id,
                                                  details_hash=text_hash("lamp tested working")))
    tracked = state(world, case_id)
    assert not tracked.disputed and tracked.status is ReceiptCaseStatus.FULFILLED
    refused("CaseNotDisputed", world.ledger.write, world.signer,
            world.update("x", CaseAction.DISPUTE_REJECTED, case_id=case_id))
    # the answered dispute cannot be replayed from its calldata: one dispute per closure
    assert state(world, case_id).disputed_closure == 1
    refused("AlreadyDisputed", dispute, world, case_id)

    # disputed again: the agency reopens; the old closure's dispute cannot be replayed after the next fulfilment
    signature_record = Dispute(agency_id=world.agency_id, case_id=case_id, closure=1)
    signature = world.ledger.sign_citizen(receipts.private_key(CODE), signature_record)
    world.ledger.write(world.signer, world.update("x", CaseAction.REOPENED, case_id=case_id))
    assert state(world, case_id).status is ReceiptCaseStatus.OPEN
    refused("InvalidReceiptCaseStatus", world.ledger.write, world.signer,
            world.update("x", CaseAction.REOPENED, case_id=case_id))
    close(world, case_id)
    assert state(world, case_id).closures == 2
    refused("StaleClosure", world.ledger.submit_citizen, world.relayer, signature_record, signature)
    dispute(world, case_id, 2)


def test_only_a_fulfilment_can_be_disputed_and_only_a_receipt_case_answered(world: World) -> None:
    case_id = open_with_receipt(world, "rejected")
    close(world, case_id, CaseAction.REJECTED)
    err = refused("InvalidReceiptCaseStatus", dispute, world, case_id)
    assert err.error_args["status"] == ReceiptCaseStatus.CLOSED_UNFULFILLED
    refused("InvalidReceiptCaseStatus", world.ledger.write, world.signer,
            world.update("x", CaseAction.FULFILLED, case_id=case_id))  # closed already
    world.ledger.write(world.signer, world.opened("plain"))
    refused("CaseNotDisputed", world.ledger.write, world.signer,
            world.update("plain", CaseAction.DISPUTE_REJECTED))


# ------------------------------------------------------------ rectifications


def rectify(world: World, case_id: bytes, report: str = "") -> Any:
    event = world.update("x", CaseAction.RECTIFIED, case_id=case_id,
                         details_hash=text_hash(report) if report else ZERO32)
    return world.ledger.write(world.signer, event)


def test_a_rectification_answers_a_rating_and_moves_nothing(world: World) -> None:
    """差评整改: the agency answers the holder's (bad) rating with a Rectified event, its report hashed. The receipt
    case's tracked state stays as it was: the fulfilment can still be disputed, and the dispute answered."""
    case_id = open_with_receipt(world, "rectified")
    close(world, case_id)
    rate(world, case_id, 1)
    before, count = state(world, case_id), world.ledger.entry_count()
    report = "the lamp was replaced with an LED one; the street's lamps are now checked weekly"
    receipt = rectify(world, case_id, report)
    entry = world.ledger.entries()[-1]
    assert entry.seq == count and entry.kind is EntryKind.CASE_EVENT and entry.actor == world.signer.address
    assert entry.record.action is CaseAction.RECTIFIED and entry.record.details_hash == text_hash(report)
    assert running_hash(e.entry_hash for e in world.ledger.entries()) == world.ledger.running_hash()
    assert state(world, case_id) == before
    assert receipt["gasUsed"] < 40_000  # a case event and one storage read

    dispute(world, case_id)
    assert state(world, case_id).disputed
    world.ledger.write(world.signer, world.update("x", CaseAction.DISPUTE_REJECTED, case_id=case_id))
    assert not state(world, case_id).disputed and state(world, case_id).status is ReceiptCaseStatus.FULFILLED


def test_a_rectification_of_a_case_nobody_rated_is_refused(world: World) -> None:
    case_id = open_with_receipt(world, "unrated")
    err = refused("CaseNotRated", rectify, world, case_id)  # open, so not rated
    assert (err.error_args["agencyId"], err.error_args["caseId"]) == (world.agency_id, case_id)
    close(world, case_id)
    refused("CaseNotRated", rectify, world, case_id)  # closed, but its holder has not rated it
    assert state(world, case_id).status is ReceiptCaseStatus.FULFILLED and not state(world, case_id).rated
    # a case without a receipt can never be rated: an id without the flag, or one with it but no receipt issued
    plain = keccak(b"rectify plain")
    plain = bytes([plain[0] & 0x7F]) + plain[1:]
    world.ledger.write(world.signer, world.opened("plain", case_id=plain))
    refused("CaseNotRated", rectify, world, plain)
    flagged = receipt_case_id("rectify no receipt")
    world.ledger.write(world.signer, world.opened("flagged", case_id=flagged))
    refused("CaseNotRated", rectify, world, flagged)


def test_rectifications_in_a_batch_of_events_are_checked_alike(world: World) -> None:
    """A batch of events (``recordCaseEvents``, direct or relayed) checks each as a single event is checked."""
    rated = open_with_receipt(world, "batch rated")
    unrated = open_with_receipt(world, "batch unrated", receipts.new_code())  # a key serves one case
    close(world, rated)
    close(world, unrated)
    rate(world, rated, 2)
    count = world.ledger.entry_count()
    answer = world.update("x", CaseAction.RECTIFIED, case_id=rated, details_hash=text_hash("report"))
    refused("CaseNotRated", world.ledger.write_batch, world.signer,
            [answer, world.update("x", CaseAction.RECTIFIED, case_id=unrated)])
    until = world.now() + 3600
    batch = [answer, world.update("x", CaseAction.RECTIFIED, case_id=unrated)]
    signature = world.ledger.sign(world.signer, batch, until)
    refused("CaseNotRated", world.ledger.relay, world.relayer, batch, world.signer.address, until, signature)
    assert world.ledger.entry_count() == count
    world.ledger.write_batch(world.signer, [answer, answer])  # the contract takes it again: the fold judges that
    assert world.ledger.entry_count() == count + 2 and state(world, rated).status is ReceiptCaseStatus.FULFILLED


def test_the_dispute_window_closes(world: World) -> None:
    if world.chain.embedded:
        pytest.skip("eth-tester's clock cannot be moved forward by a month here")
    case_id = open_with_receipt(world, "late")
    close(world, case_id)
    window, response = world.ledger.dispute_windows()
    assert (window, response) == (30 * 86_400, 10 * 86_400)
    world.chain.w3.provider.make_request("evm_increaseTime", [window + 1])
    world.chain.w3.provider.make_request("evm_mine", [])
    refused("DisputeWindowClosed", dispute, world, case_id)


def test_closing_events_of_cases_without_receipt_cost_no_storage_read(world: World) -> None:
    """Unflagged cases never touch receipt storage: their closing costs what it did before receipts existed."""
    world.ledger.write(world.signer, world.opened("cheap"))
    flagged = open_with_receipt(world, "dear")
    cheap = world.ledger.write(world.signer, world.update("cheap", CaseAction.FULFILLED))["gasUsed"]
    dear = world.ledger.write(world.signer, world.update("x", CaseAction.FULFILLED, case_id=flagged))["gasUsed"]
    assert dear - cheap > 2_000  # the flagged case reads and writes its tracked state
    assert cheap < 40_000
    assert short_code("SH-ROADS") == world.agency_id
    assert keys.PrivateKey(receipts.private_key(CODE)).public_key.to_checksum_address() == receipts.address(CODE)
