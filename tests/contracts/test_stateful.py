"""Property-based stateful test: random sequences of ledger calls against a plain Python model.

Hypothesis drives case events (single, batched, relayed), commitments (publish, amend, retire), corrections,
holiday calendars, agency registrations, key authorisations and revocations, nonce cancellations and calls that
must revert — and a hostile agency's moves: Merkle batch anchors with garbage roots and counts up to the type's
limit, and signatures made before governance moved the key to another agency. After every step the ledger must
agree with the model: the entry count only grows and equals the model's, every entry recorded so far is unchanged,
the running hash is the model's, and a call the model predicts to revert reverts with the predicted error and
changes nothing. And nothing froze: governance can still revoke every authorised key, and every authorised key can
still write (both asked with eth_call, which changes nothing).

Runs on anvil only (a fresh deployment on the session node); each example starts from a snapshot and is rolled
back afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ledger.batches import MAX_ENTRIES, batch_hash
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import ZERO32, entry_hash, running_hash
from ledger.errors import ContractReverted
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    DeadlineUnit,
    EntryKind,
    HolidayCalendar,
    Record,
    Retirement,
    SignerChange,
    day_number,
    short_code,
    text_hash,
)
from tests.support.world import World, build_world, case_id

pytestmark = pytest.mark.slow

#: keys the machine plays with: [0] and [1] start authorised for the two agencies, the others are spare
KEY_COUNT = 4
#: agencies: the world's two (registered), and one governance may register during the run
EXTRA_AGENCY = short_code("SH-PARKS")
EXTRA_JURISDICTION = short_code("CN-BJ")
COMMITMENT_IDS = [short_code("STREETLIGHT-48H"), short_code("POTHOLE-5D"), short_code("SIDEWALK-10D")]
CASES = ["alpha", "bravo", "charlie", "delta"]
#: per year: weekdays that may be holidays, and weekend days that may be working days
CALENDAR_DAYS = {
    2025: ([date(2025, 1, 1), date(2025, 5, 1), date(2025, 10, 1)], [date(2025, 1, 26), date(2025, 2, 8)]),
    2026: ([date(2026, 1, 1), date(2026, 5, 1), date(2026, 10, 1)], [date(2026, 1, 4), date(2026, 2, 14)]),
}
FLAWS = [None] * 12 + ["future", "no_district", "intake_on_update", "action_out_of_range"]
#: key choice, leaning on the keys that start authorised so that most writes get past the key check
KEY_INDEX = st.sampled_from([0, 0, 0, 1, 1, 2, 3])

Expected = str | frozenset[str] | None


@dataclass
class Model:
    """What the ledger should hold, kept in plain Python."""

    #: entry hashes in log order, as folded into the running hash (a batch anchor is one, for all its entries)
    entries: list[bytes]
    #: the seq of each of them
    seqs: list[int]
    #: the entry count: a batch anchor advances it by the batch's count
    count: int
    agency_of: dict[str, bytes | None]
    jurisdictions: dict[bytes, bytes]
    commitments: dict[tuple[bytes, bytes], list[Any]] = field(default_factory=dict)  # -> [version, retired]
    calendars: dict[tuple[bytes, int], int] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)


@dataclass
class Env:
    world: World
    keys: list[LocalAccount]
    initial: Model
    #: the block the ledger was deployed in: its log starts there
    first_block: int


@pytest.fixture(scope="module")
def env(anvil_node: AnvilNode) -> Iterator[Env]:
    chain = Chain.connect(anvil_node.url)
    snapshot = chain.snapshot()
    world = build_world(chain)
    keys = [world.signer, world.other_signer, chain.new_account(), chain.new_account()]
    assert len(keys) == KEY_COUNT
    initial = Model(
        entries=[e.entry_hash for e in world.ledger.entries()],
        seqs=[e.seq for e in world.ledger.entries()],
        count=world.ledger.entry_count(),
        agency_of={k.address: None for k in keys} | {
            world.signer.address: world.agency_id,
            world.other_signer.address: world.other_agency_id,
        },
        jurisdictions={world.agency_id: short_code("CN-SH"), world.other_agency_id: short_code("CN-SH")},
        commitments={(world.agency_id, world.commitment_id): [1, False]},
        nonces={k.address: 0 for k in keys},
    )
    assert world.commitment_id == COMMITMENT_IDS[0]
    assert running_hash(initial.entries) == world.ledger.running_hash()
    first_block = min(e.block_number for e in world.ledger.entries())
    yield Env(world, keys, initial, first_block)
    chain.revert(snapshot)


class LedgerMachine(RuleBasedStateMachine):
    env: Env  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.world = self.env.world
        self.ledger = self.world.ledger
        self.keys = self.env.keys
        self.model = copy.deepcopy(self.env.initial)
        self.snapshot = self.world.chain.snapshot()
        self.highest_count = self.model.count
        #: signatures made at some step, relayed at a later one: (key index, agency signed for, nonce, event, sig)
        self.presigned: list[tuple[int, bytes, int, CaseEvent, bytes]] = []
        self.seen: list[bytes] = []  # entry hashes of the log as last read
        self.agencies = [self.world.agency_id, self.world.other_agency_id, EXTRA_AGENCY]
        #: a step is under way and its invariants have not passed yet (teardown then skips its own checks)
        self.unsettled = False

    def teardown(self) -> None:
        try:
            if not self.unsettled:  # otherwise a failure is already on its way out
                self.check_state()
        finally:
            self.world.chain.revert(self.snapshot)

    # ---------------------------------------------------------------------------------------------- helpers

    def now(self) -> int:
        return self.world.now()

    def run(self, action: Callable[[], Any], expected: Expected, signer: str | None = None) -> bool:
        """Run `action`; when the model predicts a revert, it must revert with that error and change nothing."""
        self.unsettled = True
        if expected is None:
            action()
            return True
        with pytest.raises(ContractReverted) as info:
            action()
        names = {expected} if isinstance(expected, str) else set(expected)
        assert info.value.error_name in names, f"expected {names}, got {info.value}"
        # nothing moved: the model is unchanged, and the invariant that follows every step holds the ledger to it
        # (count, every entry, running hash); the signer's nonce is checked here
        if signer is not None:
            assert self.ledger.nonce(signer) == self.model.nonces[signer]
        return False

    def append(self, kind: EntryKind, agency_id: bytes, actor: str, record: Record) -> None:
        self.fold(entry_hash(self.model.count, kind, agency_id, actor, record.struct_hash()))

    def fold(self, entry: bytes, count: int = 1) -> None:
        self.model.entries.append(entry)
        self.model.seqs.append(self.model.count)
        self.model.count += count

    def submit(self, key_index: int, record: Record | list[CaseEvent], relayed: bool, expected: Expected) -> bool:
        """Write `record` as key `key_index`, directly or through the relayer with a signature at the model's nonce."""
        key = self.keys[key_index]
        if relayed:
            deadline = self.now() + 3600
            signature = self.ledger.sign(key, record, deadline, nonce=self.model.nonces[key.address])

            def action() -> Any:
                return self.ledger.relay(self.world.relayer, record, key.address, deadline, signature)

        elif isinstance(record, list):

            def action() -> Any:
                return self.ledger.write_batch(key, record)

        else:

            def action() -> Any:
                return self.ledger.write(key, record)

        ok = self.run(action, expected, key.address if relayed else None)
        if ok and relayed:
            self.model.nonces[key.address] += 1
        return ok

    def unauthorized(self, key_index: int) -> bool:
        return self.model.agency_of[self.keys[key_index].address] is None

    # ------------------------------------------------------------------------------------------- case events

    def build_event(self, spec: tuple[CaseAction, int, int, str | None], now: int) -> CaseEvent:
        action, commitment_index, case_index, flaw = spec
        occurred_at = now + 10**6 if flaw == "future" else now
        fields: dict[str, Any] = dict(case_id=case_id(CASES[case_index]), occurred_at=occurred_at)
        if flaw == "no_district":
            action = CaseAction.OPENED
        if flaw == "intake_on_update" and action is CaseAction.OPENED:
            action = CaseAction.ACCEPTED
        intake = dict(commitment_id=COMMITMENT_IDS[commitment_index], district=short_code("PUDONG"), channel=3)
        if action is CaseAction.OPENED:
            fields.update(intake, action=action)
            if flaw == "no_district":
                fields["district"] = ZERO32
        elif flaw == "intake_on_update":
            fields.update(intake, action=action)
        elif flaw == "action_out_of_range":
            fields["action"] = 0 if case_index % 2 else 12
        else:
            fields["action"] = action
        if flaw is None:
            return CaseEvent(**fields)
        return CaseEvent.model_construct(**{"commitment_id": ZERO32, "district": ZERO32, "channel": 0,
                                            "details_hash": ZERO32, **fields})

    def event_error(self, agency_id: bytes, event: CaseEvent, flaw: str | None) -> str | None:
        """The contract's checks on one case event, in its order."""
        if flaw == "future":
            return "InvalidOccurredAt"
        if event.action == CaseAction.OPENED:
            if flaw == "no_district":
                return "InvalidCaseEvent"
            state = self.model.commitments.get((agency_id, event.commitment_id))
            if state is None:
                return "UnknownCommitment"
            if state[1]:
                return "CommitmentIsRetired"
            return None
        if flaw in ("action_out_of_range", "intake_on_update"):
            return "InvalidCaseEvent"
        if event.action == CaseAction.DISPUTE_REJECTED:
            return "CaseNotDisputed"  # no receipt case here, so never a dispute to answer
        if event.action == CaseAction.RECTIFIED:
            return "CaseNotRated"  # nor a rating
        return None

    event_specs = st.tuples(
        st.sampled_from(list(CaseAction)),
        st.integers(0, len(COMMITMENT_IDS) - 1),
        st.integers(0, len(CASES) - 1),
        st.sampled_from(FLAWS),
    )

    @rule(key=KEY_INDEX, spec=event_specs, relayed=st.booleans())
    def record_case_event(self, key: int, spec: tuple[CaseAction, int, int, str | None], relayed: bool) -> None:
        event = self.build_event(spec, self.now())
        agency_id = self.model.agency_of[self.keys[key].address]
        expected = "UnauthorizedSigner" if agency_id is None else self.event_error(agency_id, event, spec[3])
        if self.submit(key, event, relayed, expected):
            self.append(EntryKind.CASE_EVENT, agency_id, self.keys[key].address, event)

    @rule(
        key=KEY_INDEX,
        specs=st.lists(event_specs, min_size=1, max_size=3),
        relayed=st.booleans(),
    )
    def record_case_events(self, key: int, specs: list[tuple[CaseAction, int, int, str | None]], relayed: bool) -> None:
        now = self.now()
        events = [self.build_event(spec, now) for spec in specs]
        agency_id = self.model.agency_of[self.keys[key].address]
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        else:
            # the batch stops at its first bad event, and none of it is recorded
            expected = next(
                (err for e, s in zip(events, specs, strict=True) if (err := self.event_error(agency_id, e, s[3]))),
                None,
            )
        if self.submit(key, events, relayed, expected):
            for event in events:
                self.append(EntryKind.CASE_EVENT, agency_id, self.keys[key].address, event)

    @rule(key=KEY_INDEX, relayed=st.booleans())
    def record_empty_batch(self, key: int, relayed: bool) -> None:
        if relayed:
            expected: Expected = "EmptyBatch"  # the batch is hashed before the signature is looked at
        elif self.unauthorized(key):
            # both checks fail; which one the direct call reports is the compiler's argument evaluation order
            expected = frozenset({"EmptyBatch", "UnauthorizedSigner"})
        else:
            expected = "EmptyBatch"
        self.submit(key, [], relayed, expected)

    # ------------------------------------------------------------------------------------------- commitments

    @rule(
        key=KEY_INDEX,
        commitment=st.integers(0, len(COMMITMENT_IDS) - 1),
        deadline=st.integers(1, 200),
        unit=st.sampled_from(list(DeadlineUnit)),
        invalid=st.sampled_from([None, None, None, "targetBps", "deadline"]),
        relayed=st.booleans(),
    )
    def publish_commitment(
        self, key: int, commitment: int, deadline: int, unit: DeadlineUnit, invalid: str | None, relayed: bool
    ) -> None:
        now = self.now()
        fields: dict[str, Any] = dict(
            commitment_id=COMMITMENT_IDS[commitment],
            service_code=short_code(f"SVC-{commitment}"),
            name_zh="服务承诺",
            name_en=f"Service {commitment}",
            deadline=deadline,
            deadline_unit=unit,
            target_bps=9000,
            valid_from=now,
            terms_hash=text_hash(f"terms {commitment} {deadline}"),
            occurred_at=now,
        )
        if invalid == "targetBps":
            record = Commitment.model_construct(**{**fields, "target_bps": 10_001})
        elif invalid == "deadline":
            record = Commitment.model_construct(**{**fields, "deadline": 0})
        else:
            record = Commitment(**fields)
        agency_id = self.model.agency_of[self.keys[key].address]
        state = self.model.commitments.get((agency_id, record.commitment_id)) if agency_id else None
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif invalid is not None:
            expected = "InvalidCommitment"
        elif state is not None and state[1]:
            expected = "CommitmentIsRetired"
        else:
            expected = None
        if self.submit(key, record, relayed, expected):
            self.model.commitments.setdefault((agency_id, record.commitment_id), [0, False])[0] += 1
            self.append(EntryKind.COMMITMENT_PUBLISHED, agency_id, self.keys[key].address, record)

    @rule(key=KEY_INDEX, commitment=st.integers(0, len(COMMITMENT_IDS) - 1), relayed=st.booleans())
    def retire_commitment(self, key: int, commitment: int, relayed: bool) -> None:
        record = Retirement(
            commitment_id=COMMITMENT_IDS[commitment], reason_hash=text_hash("superseded"), occurred_at=self.now()
        )
        agency_id = self.model.agency_of[self.keys[key].address]
        state = self.model.commitments.get((agency_id, record.commitment_id)) if agency_id else None
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif state is None:
            expected = "UnknownCommitment"
        elif state[1]:
            expected = "CommitmentIsRetired"
        else:
            expected = None
        if self.submit(key, record, relayed, expected):
            self.model.commitments[(agency_id, record.commitment_id)][1] = True
            self.append(EntryKind.COMMITMENT_RETIRED, agency_id, self.keys[key].address, record)

    # --------------------------------------------------------------------------------- corrections, calendars

    @rule(key=KEY_INDEX, back=st.integers(-2, 12), relayed=st.booleans())
    def record_correction(self, key: int, back: int, relayed: bool) -> None:
        count = self.model.count
        target = max(count - 1 - back, 0)  # back < 0 aims at entries that do not exist yet
        record = Correction(target_seq=target, reason_hash=text_hash(f"void {target}"), occurred_at=self.now())
        agency_id = self.model.agency_of[self.keys[key].address]
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif target >= count:
            expected = "InvalidCorrectionTarget"
        else:
            expected = None
        if self.submit(key, record, relayed, expected):
            self.append(EntryKind.CORRECTION, agency_id, self.keys[key].address, record)

    @rule(
        key=KEY_INDEX,
        year=st.sampled_from(sorted(CALENDAR_DAYS)),
        holidays=st.sets(st.integers(0, 2)),
        workdays=st.sets(st.integers(0, 1)),
        invalid=st.sampled_from([None, None, None, "weekend holiday", "unsorted workdays"]),
        relayed=st.booleans(),
    )
    def publish_holiday_calendar(
        self, key: int, year: int, holidays: set[int], workdays: set[int], invalid: str | None, relayed: bool
    ) -> None:
        weekdays, weekends = CALENDAR_DAYS[year]
        days_off = sorted(day_number(weekdays[i]) for i in holidays)
        days_on = sorted(day_number(weekends[i]) for i in workdays)
        now = self.now()
        if invalid == "weekend holiday":
            days_off = sorted([*days_off, day_number(weekends[0])])
            record = HolidayCalendar.model_construct(
                year=year, holidays=tuple(days_off), workdays=tuple(days_on), occurred_at=now
            )
        elif invalid == "unsorted workdays":
            days_on = [day_number(d) for d in reversed(weekends)]
            record = HolidayCalendar.model_construct(
                year=year, holidays=tuple(days_off), workdays=tuple(days_on), occurred_at=now
            )
        else:
            record = HolidayCalendar(year=year, holidays=tuple(days_off), workdays=tuple(days_on), occurred_at=now)
        agency_id = self.model.agency_of[self.keys[key].address]
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif invalid is not None:
            expected = "InvalidHolidayCalendar"
        else:
            expected = None
        if self.submit(key, record, relayed, expected):
            jurisdiction = self.model.jurisdictions[agency_id]
            self.model.calendars[(jurisdiction, year)] = self.model.calendars.get((jurisdiction, year), 0) + 1
            self.append(EntryKind.HOLIDAY_CALENDAR_PUBLISHED, agency_id, self.keys[key].address, record)

    # ------------------------------------------------------------------------------------------- governance

    @rule(agency=st.integers(0, 2))
    def register_agency(self, agency: int) -> None:
        agency_id = self.agencies[agency]
        record = AgencyRegistration(
            agency_id=agency_id, jurisdiction=EXTRA_JURISDICTION, name_zh="绿化局", name_en="Parks"
        )
        expected = "AgencyAlreadyRegistered" if agency_id in self.model.jurisdictions else None
        gov = self.world.governance
        if self.run(lambda: self.ledger.register_agency(gov, record), expected):
            self.model.jurisdictions[agency_id] = EXTRA_JURISDICTION
            self.append(EntryKind.AGENCY_REGISTERED, agency_id, gov.address, record)

    @rule(key=st.integers(0, KEY_COUNT - 1), agency=st.sampled_from([0, 0, 1, 1, 2]))
    def authorize_signer(self, key: int, agency: int) -> None:
        agency_id, signer = self.agencies[agency], self.keys[key].address
        if agency_id not in self.model.jurisdictions:
            expected: Expected = "UnknownAgency"
        elif self.model.agency_of[signer] is not None:
            expected = "SignerAlreadyAuthorized"
        else:
            expected = None
        gov = self.world.governance
        if self.run(lambda: self.ledger.authorize_signer(gov, agency_id, signer), expected):
            self.model.agency_of[signer] = agency_id
            change = SignerChange(agency_id=agency_id, signer=signer)
            self.append(EntryKind.SIGNER_AUTHORIZED, agency_id, gov.address, change)

    @rule(key=st.integers(0, KEY_COUNT - 1))
    def revoke_signer(self, key: int) -> None:
        signer = self.keys[key].address
        agency_id = self.model.agency_of[signer]
        gov = self.world.governance
        if self.run(lambda: self.ledger.revoke_signer(gov, signer), None if agency_id else "UnauthorizedSigner"):
            self.model.agency_of[signer] = None
            change = SignerChange(agency_id=agency_id, signer=signer)
            self.append(EntryKind.SIGNER_REVOKED, agency_id, gov.address, change)

    @rule(key=KEY_INDEX, victim=st.integers(0, KEY_COUNT - 1))
    def key_tries_to_govern(self, key: int, victim: int) -> None:
        outsider = self.keys[key]
        self.run(
            lambda: self.ledger.authorize_signer(outsider, self.world.agency_id, self.keys[victim].address),
            "AccessControlUnauthorizedAccount",
        )
        self.run(
            lambda: self.ledger.revoke_signer(outsider, self.keys[victim].address), "AccessControlUnauthorizedAccount"
        )

    # --------------------------------------------------------------------------------- nonces and bad relays

    @rule(key=KEY_INDEX, step=st.integers(0, 2))
    def cancel_signatures(self, key: int, step: int) -> None:
        signer = self.keys[key]
        new_nonce = self.model.nonces[signer.address] + step
        expected = None if step > 0 else "NonceNotIncreasing"
        if self.run(lambda: self.ledger.cancel_signatures(signer, new_nonce), expected, signer.address):
            self.model.nonces[signer.address] = new_nonce

    @rule(
        key=KEY_INDEX,
        claimed=st.integers(0, KEY_COUNT - 1),
        attack=st.sampled_from(["expired", "stale nonce", "future nonce", "other signer", "tampered"]),
    )
    def bad_relay(self, key: int, claimed: int, attack: str) -> None:
        """A relayed case event whose signature must not be accepted."""
        signer, claimed_signer = self.keys[key], self.keys[claimed]
        now = self.now()
        event = CaseEvent(case_id=case_id("relayed"), action=CaseAction.ACCEPTED, occurred_at=now)
        submitted, deadline, nonce = event, now + 3600, self.model.nonces[signer.address]
        claimed_address = signer.address
        if attack == "expired":
            deadline = now - 1
        elif attack == "stale nonce":
            nonce -= 1
        elif attack == "future nonce":
            nonce += 1
        elif attack == "other signer":
            claimed_address = claimed_signer.address
        else:
            submitted = event.model_copy(update={"action": CaseAction.FULFILLED})
        if nonce < 0:
            nonce = 2**256 - 1
        signature = self.ledger.sign(signer, event, deadline, nonce=nonce)
        if attack == "expired":
            expected: Expected = "SignatureExpired"
        elif self.model.agency_of[claimed_address] is None:
            expected = "UnauthorizedSigner"
        elif attack == "other signer" and claimed == key:
            expected = None  # not an attack after all: the key claims itself
        else:
            expected = "InvalidSignature"
        ok = self.run(
            lambda: self.ledger.relay(self.world.relayer, submitted, claimed_address, deadline, signature),
            expected,
            signer.address,
        )
        if ok:
            self.model.nonces[signer.address] += 1
            self.append(EntryKind.CASE_EVENT, self.model.agency_of[signer.address], signer.address, event)

    # ------------------------------------------------------------------------------------ a hostile agency

    @rule(
        key=KEY_INDEX,
        count=st.sampled_from(["one", "maximum", "over", "to_limit", "limit", "zero"]),
        garbage_root=st.booleans(),
    )
    def anchor_batch(self, key: int, count: str, garbage_root: bool) -> None:
        """Anchor a batch no file may ever match, of any count up to what would overflow the entry count."""
        n = {
            "one": 1, "maximum": MAX_ENTRIES, "over": MAX_ENTRIES + 1, "to_limit": 2**64 - 1 - self.model.count,
            "limit": 2**64 - 1, "zero": 0,
        }[count]
        root = text_hash(f"garbage {self.model.count}") if garbage_root else ZERO32
        file_hash = text_hash(f"no file {self.model.count}")
        signer = self.keys[key]
        agency_id = self.model.agency_of[signer.address]
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif root == ZERO32 or n == 0:
            expected = "InvalidBatch"
        elif n > MAX_ENTRIES:
            expected = "BatchTooLarge"
        else:
            expected = None
        if self.run(lambda: self.ledger.anchor_batch(signer, root, n, file_hash), expected):
            record_hash = batch_hash(root, n, file_hash)
            self.fold(entry_hash(self.model.count, EntryKind.BATCH_ANCHORED, agency_id, signer.address, record_hash), n)

    @rule(key=KEY_INDEX)
    def presign(self, key: int) -> None:
        """The key signs a case event now, for the agency it writes for now, to be relayed at some later step."""
        signer = self.keys[key]
        agency_id = self.model.agency_of[signer.address] or ZERO32
        nonce = self.model.nonces[signer.address]
        event = CaseEvent(case_id=case_id("presigned"), action=CaseAction.ACCEPTED, occurred_at=self.now())
        signature = self.ledger.sign(signer, event, 2**64, nonce=nonce, agency_id=agency_id)
        self.presigned.append((key, agency_id, nonce, event, signature))

    @rule(data=st.data())
    def relay_presigned(self, data: st.DataObject) -> None:
        """Relay a signature made earlier: void once governance moved the key to another agency (or revoked it)."""
        if not self.presigned:
            return
        key, signed_for, nonce, event, signature = data.draw(st.sampled_from(self.presigned))
        signer = self.keys[key]
        agency_id = self.model.agency_of[signer.address]
        if agency_id is None:
            expected: Expected = "UnauthorizedSigner"
        elif agency_id != signed_for or nonce != self.model.nonces[signer.address]:
            expected = "InvalidSignature"
        else:
            expected = None
        if self.run(
            lambda: self.ledger.relay(self.world.relayer, event, signer.address, 2**64, signature),
            expected,
            signer.address,
        ):
            self.model.nonces[signer.address] += 1
            self.append(EntryKind.CASE_EVENT, agency_id, signer.address, event)

    # ------------------------------------------------------------------------------------------- invariants

    @invariant()
    def history_only_grows_and_running_hash_matches(self) -> None:
        f = self.ledger.contract.functions
        with self.world.chain.w3.batch_requests() as batch:  # one round trip
            batch.add(f.entryCount())
            batch.add(f.runningHash())
            count, head = batch.execute()
        assert count >= self.highest_count
        self.highest_count = count
        assert count == self.model.count
        entries = self.ledger.entries(from_block=self.env.first_block)
        assert [e.seq for e in entries] == self.model.seqs
        hashes = [e.entry_hash for e in entries]
        # every entry seen at the previous step is still there, unchanged, at the same place ...
        assert hashes[: len(self.seen)] == self.seen
        self.seen = hashes
        # ... and every entry is the one the model recorded at that place
        assert hashes == self.model.entries
        assert bytes(head) == running_hash(self.model.entries)
        self.nothing_froze()
        self.unsettled = False

    def nothing_froze(self) -> None:
        """Governance can revoke every authorised key and every authorised key can write, whatever came before."""
        f = self.ledger.contract.functions
        probe = CaseEvent(case_id=case_id("probe"), action=CaseAction.ACCEPTED, occurred_at=self.now())
        for key in self.keys:
            if self.model.agency_of[key.address] is None:
                continue
            f.revokeSigner(key.address).call({"from": self.world.governance.address})
            f.recordCaseEvent(probe.abi_values()).call({"from": key.address})

    def check_state(self) -> None:
        """Keys, nonces, agencies, commitments and calendars as the model has them.

        Once per example, at its end: a wrong nonce or key in the model would also surface at the next relayed or
        agency step. Asked in one batch of JSON-RPC calls.
        """
        f = self.ledger.contract.functions
        jurisdictions = sorted({*self.model.jurisdictions.values()})
        expected: list[Any] = []
        with self.world.chain.w3.batch_requests() as batch:
            for key in self.keys:
                batch.add(f.nonces(key.address))
                batch.add(f.agencyOf(key.address))
                expected += [self.model.nonces[key.address], self.model.agency_of[key.address] or ZERO32]
            for agency_id in self.agencies:
                batch.add(f.agency(agency_id))
                # the world authorised only keys the machine holds
                signers = sum(1 for a in self.model.agency_of.values() if a == agency_id)
                expected.append(
                    [agency_id in self.model.jurisdictions, self.model.jurisdictions.get(agency_id, ZERO32), signers]
                )
                for commitment_id in COMMITMENT_IDS:
                    batch.add(f.commitmentState(agency_id, commitment_id))
                    expected.append(self.model.commitments.get((agency_id, commitment_id), [0, False]))
            for jurisdiction in jurisdictions:
                for year in CALENDAR_DAYS:
                    batch.add(f.holidayCalendarVersion(jurisdiction, year))
                    expected.append(self.model.calendars.get((jurisdiction, year), 0))
            actual = batch.execute()
        assert [list(a) if isinstance(a, (list, tuple)) else a for a in actual] == expected


def test_ledger_agrees_with_model(env: Env) -> None:
    LedgerMachine.env = env
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
