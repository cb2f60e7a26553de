"""A hostile agency with a valid key, against the contract: each attempt is refused, and afterwards governance can
still revoke any key, the other agency can still write and citizens can still rate.

Runs on both backends against the shared world of ``tests/conftest.py`` (rolled back after each test). The
service-side containment of the same agency (withheld batch files, relayer budgets) is tested with the indexer, the
API and the relay.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from ledger import receipts
from ledger.batches import MAX_ENTRIES
from ledger.encoding import keccak
from ledger.records import CaseAction, Receipt
from tests.support.nodes import set_code
from tests.support.receipts import CODE, close, open_with_receipt, rate, receipt_case_id, state
from tests.support.reverts import refused
from tests.support.world import World

UINT64_MAX = 2**64 - 1
#: runtime code of a contract that answers every call with ERC-1271's magic value 0x1626ba7e ("valid signature"):
#: PUSH4 0x1626ba7e, PUSH1 0xe0, SHL, PUSH1 0, MSTORE, PUSH1 0x20, PUSH1 0, RETURN
APPROVE_EVERYTHING = bytes.fromhex("631626ba7e60e01b60005260206000f3")


def others_unharmed(world: World, name: str) -> None:
    """The other agency writes, governance revokes and re-authorises its key, and a citizen rates a closed case."""
    before = world.ledger.entry_count()
    world.ledger.write(world.other_signer, world.update(name, CaseAction.ACCEPTED))
    world.ledger.revoke_signer(world.governance, world.other_signer.address)
    world.ledger.authorize_signer(world.governance, world.other_agency_id, world.other_signer.address)
    case_id = open_with_receipt(world, f"{name}-citizen")
    close(world, case_id)
    rate(world, case_id)
    assert state(world, case_id).rated
    assert world.ledger.entry_count() == before + 7


def test_agency_anchoring_a_count_near_the_limit_cannot_freeze_the_ledger(world: World) -> None:
    """v1 accepted anchorBatch(root, 2^64 - 1 - entryCount, …): every later write overflowed, the ledger was dead."""
    count = world.ledger.entry_count()
    root, file_hash = keccak(b"garbage root"), keccak(b"no such file")
    for hostile in (UINT64_MAX - count, UINT64_MAX, MAX_ENTRIES + 1):
        err = refused("BatchTooLarge", world.ledger.anchor_batch, world.signer, root, hostile, file_hash)
        assert err.error_args["count"] == hostile and err.error_args["maximum"] == MAX_ENTRIES
    assert world.ledger.entry_count() == count
    # the published maximum itself is accepted (a garbage root: the service withholds it, the chain counts it)
    world.ledger.anchor_batch(world.signer, root, MAX_ENTRIES, file_hash)
    assert world.ledger.entry_count() == count + MAX_ENTRIES
    others_unharmed(world, "after-maximal-batch")


def test_the_batch_limit_is_the_services(world: World) -> None:
    # published by the filings module (the ledger has no room left under EIP-170 for its constants' getters)
    assert world.ledger.filings.functions.MAX_BATCH_ENTRIES().call() == MAX_ENTRIES


def test_signature_made_for_one_agency_is_void_after_the_key_moves_to_another(world: World) -> None:
    """v1: a record signed while the key wrote for agency A was accepted after governance moved the key to B, and
    attributed to B."""
    ledger, key = world.ledger, world.signer
    record = world.update("moved", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    for_a = ledger.sign(key, record, deadline)
    ledger.revoke_signer(world.governance, key.address)
    ledger.authorize_signer(world.governance, world.other_agency_id, key.address)
    refused("InvalidSignature", ledger.relay, world.relayer, record, key.address, deadline, for_a)
    # signed for B now, it is B's
    for_b = ledger.sign(key, record, deadline)
    receipt = ledger.relay(world.relayer, record, key.address, deadline, for_b)
    (event,) = ledger.contract.events.CaseUpdated().process_receipt(receipt)
    assert bytes(event["args"]["agencyId"]) == world.other_agency_id


def test_signature_for_another_agency_than_the_keys_is_refused(world: World) -> None:
    record = world.update("claims-other", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    forged = world.ledger.sign(world.signer, record, deadline, agency_id=world.other_agency_id)
    refused("InvalidSignature", world.ledger.relay, world.relayer, record, world.signer.address, deadline, forged)


def test_agency_issuing_a_receipt_to_a_contract_is_refused(world: World) -> None:
    """A "receipt" held by a contract (an ERC-1271 wallet the agency controls) could approve any rating."""
    case_id = receipt_case_id("contract-receipt")
    world.ledger.write(world.signer, world.opened("contract-receipt", case_id=case_id))
    receipt = Receipt(case_id=case_id, receipt=world.ledger.address, occurred_at=world.now())
    err = refused("ReceiptKeyIsContract", world.ledger.write, world.signer, receipt)
    assert err.error_args["receipt"].lower() == world.ledger.address.lower()
    assert state(world, case_id).status == 0  # no receipt: nobody can rate it


def test_receipt_address_given_code_later_still_needs_the_receipt_keys_own_signature(world: World) -> None:
    """Code put at a receipt address after it was issued (EIP-7702 delegation, or a node's setCode) does not make
    ERC-1271 answers count: ratings are checked by ECDSA alone."""
    if world.chain.embedded:
        pytest.skip("eth-tester cannot put code at an address")
    case_id = open_with_receipt(world, "code-later")
    close(world, case_id)
    set_code(world.chain, receipts.address(CODE), APPROVE_EVERYTHING)
    refused("InvalidReceiptSignature", rate, world, case_id, 5, Account.create().key)
    rate(world, case_id)  # the citizen's own key still works
    assert state(world, case_id).rated


def test_agency_issuing_a_receipt_to_another_agencys_receipt_key_is_refused(world: World) -> None:
    """The water agency issues its citizen a receipt; the roads agency (hostile) issues a receipt for a case of its
    own to the very same receipt address (public in the log, or seen in the pool). A key names one case: the second
    issue reverts, and the contract says where the key was issued."""
    citizen = receipts.address(CODE)
    world.ledger.write(world.other_signer, world.commitment())
    water_case = receipt_case_id("water-case")
    world.ledger.write(world.other_signer, world.opened("water-case", case_id=water_case))
    world.ledger.write(world.other_signer, Receipt(case_id=water_case, receipt=citizen, occurred_at=world.now()))
    roads_case = receipt_case_id("roads-hijack")
    world.ledger.write(world.signer, world.opened("roads-hijack", case_id=roads_case))
    hijack = Receipt(case_id=roads_case, receipt=citizen, occurred_at=world.now())
    err = refused("ReceiptKeyAlreadyUsed", world.ledger.write, world.signer, hijack)
    issued = world.ledger.receipt_issuance(citizen)
    assert issued is not None and err.error_args["seq"] == issued[0]
    assert world.ledger.receipt_case(world.agency_id, roads_case).status == 0


def test_agency_cannot_move_another_agencys_receipt_case_by_reusing_its_case_id(world: World) -> None:
    """Receipt cases are keyed by (agency, case id): the hostile agency opening, closing and reopening a case with
    the same id as another agency's receipt case, and issuing it a receipt, leaves the other agency's tracked state
    alone (no way to make a citizen's case look fulfilled, nor to eat its dispute)."""
    citizen = receipts.address(CODE)
    world.ledger.write(world.other_signer, world.commitment())
    case = receipt_case_id("shared-id")
    world.ledger.write(world.other_signer, world.opened("shared-id", case_id=case))
    world.ledger.write(world.other_signer, Receipt(case_id=case, receipt=citizen, occurred_at=world.now()))
    before = world.ledger.receipt_case(world.other_agency_id, case)
    world.ledger.write(world.signer, world.opened("shared-id", case_id=case))
    world.ledger.write(world.signer, Receipt(case_id=case, receipt=receipts.address(receipts.new_code()),
                                             occurred_at=world.now()))
    world.ledger.write(world.signer, world.update("shared-id", CaseAction.FULFILLED, case_id=case))
    assert world.ledger.receipt_case(world.other_agency_id, case) == before
    assert world.ledger.receipt_case(world.agency_id, case).receipt != citizen
