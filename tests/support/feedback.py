"""A chain scenario with every receipt, rating and dispute rule the index implements (:func:`write_feedback`), for
the indexer's tests; it complements ``tests.support.scenario.write_everything`` and runs after it or alone.

Receipt cases have ids with the top bit set (``ledger.records.RECEIPT_CASE_FLAG``); their receipt keys derive from
codes made here from the case's name, as the citizen's page derives them (``ledger.receipts``). Ratings and
disputes are signed with those keys and relayed, as the API does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ledger import receipts
from ledger.encoding import keccak
from ledger.records import (
    CaseAction,
    CaseEvent,
    Correction,
    Dispute,
    Rating,
    Receipt,
    text_hash,
)
from tests.support.world import World


def receipt_case_id(name: str) -> bytes:
    """A case id that can have a receipt (top bit set)."""
    raw = bytearray(keccak(b"feedback-case:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


def plain_case_id(name: str) -> bytes:
    """A case id that cannot have a receipt (top bit clear)."""
    raw = bytearray(keccak(b"feedback-case:" + name.encode()))
    raw[0] &= 0x7F
    return bytes(raw)


def code_of(name: str) -> str:
    """A receipt code of its own for each case name (deterministic, so runs are repeatable)."""
    digest = keccak(b"receipt-code:" + name.encode())
    return receipts.format_code("".join(receipts.ALPHABET[b % 32] for b in digest[:20]))


def rate(world: World, name: str, score: int) -> int:
    """The receipt holder of case `name` rates it (signed with its receipt key, relayed); returns the entry's seq."""
    record = Rating(agency_id=world.agency_id, case_id=receipt_case_id(name), score=score,
                    comment_hash=text_hash(f"salt:{name}"))
    world.ledger.submit_citizen(world.relayer, record,
                                world.ledger.sign_citizen(receipts.private_key(code_of(name)), record))
    return world.ledger.entry_count() - 1


def dispute(world: World, name: str, closure: int) -> int:
    """The receipt holder of case `name` disputes its fulfilment number `closure`; returns the entry's seq."""
    record = Dispute(agency_id=world.agency_id, case_id=receipt_case_id(name), closure=closure,
                     reason_hash=text_hash(f"salt:{name}:{closure}"))
    world.ledger.submit_citizen(world.relayer, record,
                                world.ledger.sign_citizen(receipts.private_key(code_of(name)), record))
    return world.ledger.entry_count() - 1


@dataclass
class Feedback:
    """What :func:`write_feedback` wrote, for the tests to look up."""

    seqs: dict[str, int] = field(default_factory=dict)
    cases: dict[str, bytes] = field(default_factory=dict)

    def receipt(self, name: str) -> str:
        return receipts.address(code_of(name))


def write_feedback(world: World, checkpoint: Callable[[str], None] = lambda stage: None) -> Feedback:
    """Receipts (single, batched, issued before the Opened, issued after the close), ratings, disputes and their
    answers (reopening, rejection, an answer voided by a correction; the second closure of a reopened case disputed
    and left unanswered), a reopened case without a receipt, and corrections aimed at a receipt, a rating and a
    dispute (refused). `checkpoint(stage)` is called between stages,
    e.g. to sync an index part way, so that answers and ratings arrive in later syncs than what they concern."""
    f = Feedback()
    ledger, signer = world.ledger, world.signer

    def last() -> int:
        return ledger.entry_count() - 1

    def cid(name: str) -> bytes:
        f.cases[name] = receipt_case_id(name)
        return f.cases[name]

    def opened(name: str) -> CaseEvent:
        return world.opened(name, case_id=cid(name))

    def event(name: str, action: CaseAction) -> CaseEvent:
        return world.update(name, action, case_id=cid(name), details_hash=text_hash(f"{name}:{action.name}"))

    def receipt(name: str) -> Receipt:
        return Receipt(case_id=cid(name), receipt=f.receipt(name), occurred_at=world.now())

    # Opened, then receipts: one single, three in one batch.
    ledger.write_batch(signer, [opened(n) for n in ("rated", "reopened", "rejected", "voided-answer")])
    ledger.write(signer, receipt("rated"))
    f.seqs["rated receipt"] = last()
    ledger.issue_receipts(signer, [receipt(n) for n in ("reopened", "rejected", "voided-answer")])
    # A receipt recorded before its case's Opened (the contract allows it; the auditor flags it).
    ledger.write(signer, receipt("receipt-first"))
    f.seqs["receipt first"] = last()
    checkpoint("receipts")
    ledger.write(signer, opened("receipt-first"))
    ledger.write_batch(signer, [event(n, CaseAction.FULFILLED)
                                for n in ("rated", "reopened", "rejected", "voided-answer", "receipt-first")])
    f.seqs["rated"] = rate(world, "rated", 5)
    f.seqs["reopened dispute"] = dispute(world, "reopened", 1)
    f.seqs["rejected dispute"] = dispute(world, "rejected", 1)
    f.seqs["voided dispute"] = dispute(world, "voided-answer", 1)
    checkpoint("disputes")
    # Answers: a reopening (then fulfilled again, disputed no more, rated), a rejection, one voided afterwards.
    ledger.write(signer, event("reopened", CaseAction.REOPENED))
    f.seqs["reopened answer"] = last()
    ledger.write(signer, event("rejected", CaseAction.DISPUTE_REJECTED))
    f.seqs["rejected answer"] = last()
    ledger.write(signer, event("voided-answer", CaseAction.DISPUTE_REJECTED))
    f.seqs["voided answer"] = last()
    checkpoint("answers")
    ledger.write(signer, Correction(target_seq=f.seqs["voided answer"], reason_hash=text_hash("not our answer"),
                                    occurred_at=world.now()))
    f.seqs["answer voided"] = last()
    ledger.write(signer, event("reopened", CaseAction.FULFILLED))
    f.seqs["reopened rated"] = rate(world, "reopened", 2)
    # The reopened case's second fulfilment is disputed too (closure 2), and that dispute is left unanswered.
    f.seqs["reopened again"] = dispute(world, "reopened", 2)
    # The agency tries to void what citizens wrote, and the receipt: none of it takes effect.
    for target in ("rated", "rejected dispute", "rated receipt"):
        ledger.write(signer, Correction(target_seq=f.seqs[target], reason_hash=text_hash("we disagree"),
                                        occurred_at=world.now()))
        f.seqs[f"void {target}"] = last()
    checkpoint("corrections")
    # A receipt issued after its case closed (the contract takes it; the auditor flags it).
    ledger.write_batch(signer, [opened("late-receipt"), event("late-receipt", CaseAction.REJECTED)])
    ledger.write(signer, receipt("late-receipt"))
    f.seqs["late receipt"] = last()
    # A case that cannot have a receipt, reopened by the agency on its own, then rejected: no dispute needed.
    plain = plain_case_id("plain-reopened")
    f.cases["plain-reopened"] = plain
    ledger.write_batch(signer, [world.opened("plain-reopened", case_id=plain)] + [
        world.update("plain-reopened", action, case_id=plain)
        for action in (CaseAction.FULFILLED, CaseAction.REOPENED, CaseAction.REJECTED)
    ])
    checkpoint("end")
    return f
