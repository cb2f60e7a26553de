"""A chain scenario with every filing rule the index and the auditor implement (:func:`write_filings`), on the
primitives of ``tests.support.filings`` with keys named as the scenario's parts: filings
accepted (then fulfilled, rated, disputed and answered), rejected for each reason, left unanswered; receipts the
agency printed and their holders claimed (one used by the printed key before its claim); an agency's correction
aimed at its own acceptance (never applied). Filers' keys derive from codes made here from the filing's name, as the
citizen's page makes a key; filings and claims are signed with them and relayed, as the API does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger import receipts
from ledger.encoding import keccak
from ledger.records import (
    CaseAction,
    CaseEvent,
    Channel,
    Correction,
    Dispute,
    FilingDecision,
    Rating,
    Receipt,
    filed_case_id,
    text_hash,
)
from tests.support import filings
from tests.support.world import World


def code_of(name: str) -> str:
    """A key code of its own for each name (deterministic, so runs are repeatable)."""
    digest = keccak(b"filing-code:" + name.encode())
    return receipts.format_code("".join(receipts.ALPHABET[b % 32] for b in digest[:20]))


def printed_case_id(name: str) -> bytes:
    """A receipt case id the agency chose for a case it opened and printed a code for (top bit set)."""
    raw = bytearray(keccak(b"printed-case:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


@dataclass
class Filed:
    """What :func:`write_filings` wrote, for the tests to look up: entry seqs by name, filings' seqs by name, and
    the case ids of accepted filings and printed receipts."""

    seqs: dict[str, int] = field(default_factory=dict)
    filings: dict[str, int] = field(default_factory=dict)
    cases: dict[str, bytes] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The address of the key named `name` (a filer's, a printed receipt's, a claimant's)."""
        return receipts.address(code_of(name))


def file(world: World, name: str, *, channel: Channel = Channel.WEB) -> int:
    """A citizen files request `name` with a key of their own (:func:`code_of` `name`), relayed; the filing's seq."""
    return filings.file(world, code_of(name), channel=channel,
                        content_hash=text_hash(f"salt:{name}:the request's text"))


def answer(world: World, filing_seq: int, decision: FilingDecision, *, duplicate_of: bytes | None = None) -> int:
    """The agency answers a filing with its key (a rejection with a reason of its own); the answer's seq."""
    changes: dict[str, Any] = {} if duplicate_of is None else {"duplicate_of": duplicate_of}
    if decision != FilingDecision.ACCEPTED:
        changes["reason_hash"] = text_hash(f"reason:{filing_seq}:{decision.name}")
    filings.answer(world, filing_seq, decision, **changes)
    return world.ledger.entry_count() - 1


def event(world: World, case_id: bytes, action: CaseAction) -> int:
    world.ledger.write(world.signer, CaseEvent(case_id=case_id, action=action, occurred_at=world.now(),
                                               details_hash=text_hash(f"{case_id.hex()}:{action.name}")))
    return world.ledger.entry_count() - 1


def rate(world: World, case_id: bytes, key_name: str, score: int) -> int:
    record = Rating(agency_id=world.agency_id, case_id=case_id, score=score, comment_hash=text_hash(key_name))
    world.ledger.submit_citizen(world.relayer, record,
                                world.ledger.sign_citizen(receipts.private_key(code_of(key_name)), record))
    return world.ledger.entry_count() - 1


def claim(world: World, case_id: bytes, printed: str, own: str) -> int:
    """The holder of the printed key `printed` moves the case's receipt to the key `own`; the claim's seq."""
    filings.claim(world, case_id, receipts.address(code_of(own)), receipts.private_key(code_of(printed)),
                  receipt_key=receipts.private_key(code_of(own)))
    return world.ledger.entry_count() - 1


def write_filings(world: World, checkpoint: Callable[[str], None] = lambda stage: None) -> Filed:
    """The scenario (see the module docstring). `checkpoint(stage)` is called between stages, e.g. to sync an index
    part way, so that answers arrive in later syncs than their filings."""
    f = Filed()
    ledger, signer = world.ledger, world.signer
    for name in ("accepted", "disputed", "duplicate", "out-of-scope", "spam", "unanswered"):
        f.filings[name] = file(world, name, channel=Channel.APP if name == "disputed" else Channel.WEB)
    checkpoint("filed")
    for name in ("accepted", "disputed"):
        f.seqs[f"{name} answer"] = answer(world, f.filings[name], FilingDecision.ACCEPTED)
        f.cases[name] = filed_case_id(f.filings[name])
    f.seqs["duplicate answer"] = answer(world, f.filings["duplicate"], FilingDecision.DUPLICATE,
                                        duplicate_of=f.cases["accepted"])
    f.seqs["out-of-scope answer"] = answer(world, f.filings["out-of-scope"], FilingDecision.OUT_OF_SCOPE)
    f.seqs["spam answer"] = answer(world, f.filings["spam"], FilingDecision.SPAM)
    checkpoint("answered")
    # The accepted cases run their course with ordinary case events; their filers rate and dispute.
    for name in ("accepted", "disputed"):
        event(world, f.cases[name], CaseAction.ACCEPTED)
        f.seqs[f"{name} fulfilled"] = event(world, f.cases[name], CaseAction.FULFILLED)
    f.seqs["accepted rated"] = rate(world, f.cases["accepted"], "accepted", 5)
    record = Dispute(agency_id=world.agency_id, case_id=f.cases["disputed"], closure=1,
                     reason_hash=text_hash("still broken"))
    ledger.submit_citizen(world.relayer, record,
                          ledger.sign_citizen(receipts.private_key(code_of("disputed")), record))
    f.seqs["disputed dispute"] = ledger.entry_count() - 1
    f.seqs["disputed answer to dispute"] = event(world, f.cases["disputed"], CaseAction.REOPENED)
    # The agency tries to void its acceptance: refused (the clock started at filing, and stays started).
    ledger.write(signer, Correction(target_seq=f.seqs["accepted answer"], reason_hash=text_hash("undo"),
                                    occurred_at=world.now()))
    f.seqs["void acceptance"] = ledger.entry_count() - 1
    checkpoint("filed cases")
    # Printed receipts: the agency opens the case and prints the code. One holder claims before anything is
    # rated; the other finds their printed key already used (the agency rated with it) and claims all the same.
    for name in ("printed", "printed-used"):
        case_id = f.cases[name] = printed_case_id(name)
        ledger.write(signer, world.opened(name, case_id=case_id, channel=Channel.COUNTER))
        ledger.write(signer, Receipt(case_id=case_id, receipt=f.key(name), occurred_at=world.now()))
        f.seqs[f"{name} receipt"] = ledger.entry_count() - 1
        f.seqs[f"{name} fulfilled"] = event(world, case_id, CaseAction.FULFILLED)
    f.seqs["printed claim"] = claim(world, f.cases["printed"], "printed", "printed-own")
    f.seqs["printed rated"] = rate(world, f.cases["printed"], "printed-own", 4)
    f.seqs["printed-used rated"] = rate(world, f.cases["printed-used"], "printed-used", 5)
    f.seqs["printed-used claim"] = claim(world, f.cases["printed-used"], "printed-used", "printed-used-own")
    checkpoint("claims")
    return f
