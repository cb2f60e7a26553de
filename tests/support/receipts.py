"""Receipt cases on chain for the contract tests: a case opened with a receipt (its key derived from :data:`CODE`, as
the citizen's page derives it, ``ledger.receipts``), closed, rated and disputed with that key, and its state as the
contract keeps it (``receiptCase``)."""

from __future__ import annotations

from typing import Any

from ledger import receipts
from ledger.encoding import keccak
from ledger.records import CaseAction, Dispute, Rating, Receipt, text_hash
from tests.support.world import World

CODE = "7KQ2-M9XD-4TPA-0WZC-88RN"


def receipt_case_id(name: str) -> bytes:
    raw = bytearray(keccak(b"receipt-case:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


def open_with_receipt(world: World, name: str, code: str = CODE) -> bytes:
    case_id = receipt_case_id(name)
    world.ledger.write(world.signer, world.opened(name, case_id=case_id))
    world.ledger.write(
        world.signer, Receipt(case_id=case_id, receipt=receipts.address(code), occurred_at=world.now())
    )
    return case_id


def close(world: World, case_id: bytes, action: CaseAction = CaseAction.FULFILLED) -> None:
    world.ledger.write(world.signer, world.update("x", action, case_id=case_id))


def rate(world: World, case_id: bytes, score: int = 4, key: bytes | None = None) -> Any:
    # built without validation, so that the contract's own checks are what refuse a bad score
    record = Rating.model_construct(agency_id=world.agency_id, case_id=case_id, score=score,
                                    comment_hash=text_hash("salt:ok"))
    signature = world.ledger.sign_citizen(key or receipts.private_key(CODE), record)
    return world.ledger.submit_citizen(world.relayer, record, signature)


def dispute(world: World, case_id: bytes, closure: int = 1, key: bytes | None = None) -> Any:
    record = Dispute(agency_id=world.agency_id, case_id=case_id, closure=closure, reason_hash=text_hash("dark"))
    signature = world.ledger.sign_citizen(key or receipts.private_key(CODE), record)
    return world.ledger.submit_citizen(world.relayer, record, signature)


def state(world: World, case_id: bytes) -> Any:
    return world.ledger.receipt_case(world.agency_id, case_id)
