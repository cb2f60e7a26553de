"""Every external function of CivicLedger and every revert path, through the public Python API.

Each test runs on both backends (eth-tester and anvil) against the shared world of ``tests/conftest.py``: two
agencies (``SH-ROADS`` with ``world.signer``, ``SH-WATER`` with ``world.other_signer``), both in jurisdiction
``CN-SH``, and one commitment of ``SH-ROADS`` (``world.commitment_id``). The world is rolled back after each test.

Records the Python models would refuse are built with ``Model.model_construct(...)`` so that the contract's own
checks are what refuses them. Reverts are caught at gas estimation, so a refused write sends no transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from ledger import receipts
from ledger.batches import build_batch
from ledger.chain.contract import Ledger, LoggedEntry, TransactionFailed
from ledger.encoding import ZERO32, entry_hash, keccak, running_hash
from ledger.errors import ContractReverted
from ledger.records import (
    UINT64_MAX,
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Correction,
    DeadlineUnit,
    Dispute,
    EntryKind,
    HolidayCalendar,
    Rating,
    Receipt,
    Record,
    Retirement,
    day_number,
    short_code,
    text_hash,
)
from tests.support.attestations import checkpoint
from tests.support.filings import accept, claim, domain_separator, file
from tests.support.world import World, case_id, head

ZERO_ADDRESS = "0x" + "00" * 20
JURISDICTION = short_code("CN-SH")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# ----------------------------------------------------------------- helpers


def reverted(call: Callable[[], Any], error_name: str, **expected_args: Any) -> ContractReverted:
    """Run `call`, which must revert with the custom error `error_name` carrying `expected_args`."""
    with pytest.raises(ContractReverted) as info:
        call()
    error = info.value
    assert error.error_name == error_name, f"expected {error_name}, got {error}"
    for name, value in expected_args.items():
        actual = error.error_args[name]
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:  # an address
            assert to_checksum_address(actual) == to_checksum_address(value), f"{name}: {actual} != {value}"
        else:
            assert actual == value, f"{name}: {actual!r} != {value!r}"
    return error


def broken(record: Record, **changes: Any) -> Record:
    """A copy of `record` with `changes`, skipping the Python model's validation."""
    return type(record).model_construct(**{**dict(record), **changes})


def struct_of(record: Record) -> dict[str, Any]:
    """The record as the contract's struct (Solidity field names, ABI values), arrays as lists."""
    return {name: value for (_, name, _), value in zip(record.FIELDS, record.abi_values(), strict=True)}


def event_struct(value: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in dict(value).items()}


def events(ledger: Ledger, receipt: Any, name: str) -> list[Any]:
    return [e["args"] for e in getattr(ledger.contract.events, name)().process_receipt(receipt, errors=DISCARD)]


def only_event(ledger: Ledger, receipt: Any, name: str) -> Any:
    found = events(ledger, receipt, name)
    assert len(found) == 1, f"expected one {name} event, got {len(found)}"
    return found[0]


def last_entry(world: World) -> LoggedEntry:
    entries = world.ledger.entries()
    assert entries, "the ledger has no entries"
    return entries[-1]


def same_address(a: str, b: str) -> bool:
    return to_checksum_address(a) == to_checksum_address(b)


def agency_view(world: World, agency_id: bytes) -> tuple[bool, bytes, int]:
    registered, jurisdiction, signer_count = world.ledger.call_view("agency", agency_id)
    return bool(registered), bytes(jurisdiction), int(signer_count)


def governor_role(world: World) -> bytes:
    return bytes(world.ledger.call_view("GOVERNOR_ROLE"))


def deadline(world: World) -> int:
    return world.now() + 3600


def days_of(*days: date) -> tuple[int, ...]:
    return tuple(day_number(d) for d in days)


def parks() -> AgencyRegistration:
    return AgencyRegistration(agency_id=short_code("SH-PARKS"), jurisdiction=JURISDICTION, name_zh="绿化局",
                              name_en="Parks")


def calendar_2026(world: World) -> HolidayCalendar:
    """2026: 1 and 2 October (Thursday, Friday) off, Sunday 27 September worked."""
    return HolidayCalendar.from_dates(
        2026, [date(2026, 10, 1), date(2026, 10, 2)], [date(2026, 9, 27)], occurred_at=world.now()
    )


def send_raw(world: World, sender: Any, call: Any) -> Any:
    """Send a contract call the Ledger class has no method for (inherited OpenZeppelin access control)."""
    w3 = world.chain.w3
    tx = call.build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address), "chainId": world.chain.chain_id}
    )
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return receipt


# --------------------------------------------------------------- governance


def test_register_agency_records_entry_event_and_view(world: World) -> None:
    ledger = world.ledger
    new_id = short_code("SH-PARKS")
    assert agency_view(world, new_id) == (False, ZERO32, 0)
    count = ledger.entry_count()
    registration = AgencyRegistration(
        agency_id=new_id, jurisdiction=short_code("CN-SH-PD"), name_zh="绿化局", name_en="Parks"
    )
    receipt = ledger.register_agency(world.governance, registration)

    assert agency_view(world, new_id) == (True, short_code("CN-SH-PD"), 0)
    event = only_event(ledger, receipt, "AgencyRegistered")
    assert event["seq"] == count
    assert event["agencyId"] == new_id
    assert event["jurisdiction"] == short_code("CN-SH-PD")
    assert (event["nameZh"], event["nameEn"]) == ("绿化局", "Parks")
    assert same_address(event["actor"], world.governance.address)
    entry = last_entry(world)
    assert (entry.seq, entry.kind, entry.agency_id) == (count, EntryKind.AGENCY_REGISTERED, new_id)
    assert same_address(entry.actor, world.governance.address)
    assert entry.record_hash == registration.struct_hash()
    assert ledger.entry_count() == count + 1


@pytest.mark.parametrize(
    ("changes", "error_name", "args"),
    [
        ({"agency_id": ZERO32}, "InvalidAgencyId", {}),
        ({"jurisdiction": ZERO32}, "InvalidJurisdiction", {}),
        ({"agency_id": short_code("SH-ROADS")}, "AgencyAlreadyRegistered", {"agencyId": short_code("SH-ROADS")}),
        ({"agency_id": short_code("SH-WATER")}, "AgencyAlreadyRegistered", {"agencyId": short_code("SH-WATER")}),
    ],
    ids=["zero-agency-id", "zero-jurisdiction", "already-registered", "already-registered-other"],
)
def test_register_agency_reverts(world: World, changes: dict, error_name: str, args: dict) -> None:
    valid = parks()
    before = head(world)
    reverted(lambda: world.ledger.register_agency(world.governance, broken(valid, **changes)), error_name, **args)
    assert head(world) == before


def test_governance_functions_refuse_non_governors(world: World) -> None:
    ledger, role = world.ledger, governor_role(world)
    assert role == keccak(b"GOVERNOR_ROLE")
    registration = parks()
    for outsider in (world.signer, world.relayer):
        reverted(lambda outsider=outsider: ledger.register_agency(outsider, registration),
                 "AccessControlUnauthorizedAccount", account=outsider.address, neededRole=role)
        reverted(lambda outsider=outsider: ledger.authorize_signer(outsider, world.agency_id, outsider.address),
                 "AccessControlUnauthorizedAccount", account=outsider.address, neededRole=role)
        reverted(lambda outsider=outsider: ledger.revoke_signer(outsider, world.other_signer.address),
                 "AccessControlUnauthorizedAccount", account=outsider.address, neededRole=role)
    assert agency_view(world, short_code("SH-PARKS"))[0] is False
    assert ledger.agency_of(world.other_signer.address) == world.other_agency_id


def test_governor_role_can_be_granted_and_revoked(world: World) -> None:
    ledger, role = world.ledger, governor_role(world)
    deputy = world.chain.new_account()
    assert ledger.call_view("hasRole", role, world.governance.address) is True
    assert ledger.call_view("hasRole", role, deputy.address) is False
    send_raw(world, world.governance, ledger.contract.functions.grantRole(role, deputy.address))
    assert ledger.call_view("hasRole", role, deputy.address) is True

    registration = parks()
    ledger.register_agency(deputy, registration)
    entry = last_entry(world)
    assert entry.kind == EntryKind.AGENCY_REGISTERED and same_address(entry.actor, deputy.address)

    send_raw(world, world.governance, ledger.contract.functions.revokeRole(role, deputy.address))
    reverted(lambda: ledger.authorize_signer(deputy, short_code("SH-PARKS"), deputy.address),
             "AccessControlUnauthorizedAccount", account=deputy.address, neededRole=role)


def test_authorize_signer_lets_the_key_write_for_its_agency(world: World) -> None:
    ledger = world.ledger
    key = world.chain.new_account()
    assert ledger.agency_of(key.address) == ZERO32
    count = ledger.entry_count()
    receipt = ledger.authorize_signer(world.governance, world.agency_id, key.address)

    event = only_event(ledger, receipt, "SignerAuthorized")
    assert (event["seq"], event["agencyId"]) == (count, world.agency_id)
    assert same_address(event["signer"], key.address) and same_address(event["actor"], world.governance.address)
    assert ledger.agency_of(key.address) == world.agency_id
    assert agency_view(world, world.agency_id) == (True, JURISDICTION, 2)
    entry = last_entry(world)
    assert entry.kind == EntryKind.SIGNER_AUTHORIZED and same_address(entry.record.signer, key.address)

    ledger.write(key, world.opened("by-new-key"))
    entry = last_entry(world)
    assert entry.kind == EntryKind.CASE_EVENT and entry.agency_id == world.agency_id
    assert same_address(entry.actor, key.address)


@pytest.mark.parametrize(
    "case", ["zero-signer", "unknown-agency", "already-same-agency", "already-other-agency"]
)
def test_authorize_signer_reverts(world: World, case: str) -> None:
    ledger = world.ledger
    fresh = Account.create().address
    call, error_name, args = {
        "zero-signer": ((world.agency_id, ZERO_ADDRESS), "InvalidSigner", {}),
        "unknown-agency": ((short_code("NOPE"), fresh), "UnknownAgency", {"agencyId": short_code("NOPE")}),
        "already-same-agency": (
            (world.agency_id, world.signer.address),
            "SignerAlreadyAuthorized",
            {"signer": world.signer.address, "agencyId": world.agency_id},
        ),
        # The key belongs to SH-WATER: the error names the agency it belongs to, not the one asked for.
        "already-other-agency": (
            (world.agency_id, world.other_signer.address),
            "SignerAlreadyAuthorized",
            {"signer": world.other_signer.address, "agencyId": world.other_agency_id},
        ),
    }[case]
    before = head(world)
    reverted(lambda: ledger.authorize_signer(world.governance, *call), error_name, **args)
    assert head(world) == before
    assert agency_view(world, world.agency_id)[2] == 1
    assert ledger.agency_of(world.other_signer.address) == world.other_agency_id


def test_revoke_signer_stops_direct_and_relayed_writes(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    # Sign before the revocation: a signature made while the key was valid must not outlive it.
    event_record = world.opened("after-revocation")
    until = deadline(world)
    signature = ledger.sign(signer, event_record, until)
    count = ledger.entry_count()

    receipt = ledger.revoke_signer(world.governance, signer.address)
    event = only_event(ledger, receipt, "SignerRevoked")
    assert (event["seq"], event["agencyId"]) == (count, world.agency_id)
    assert same_address(event["signer"], signer.address) and same_address(event["actor"], world.governance.address)
    assert ledger.agency_of(signer.address) == ZERO32
    assert agency_view(world, world.agency_id)[2] == 0

    before = head(world)
    reverted(lambda: ledger.write(signer, event_record), "UnauthorizedSigner", signer=signer.address)
    reverted(lambda: ledger.write_batch(signer, [event_record]), "UnauthorizedSigner", signer=signer.address)
    reverted(lambda: ledger.relay(world.relayer, event_record, signer.address, until, signature),
             "UnauthorizedSigner", signer=signer.address)
    fresh_signature = ledger.sign(signer, event_record, until)
    reverted(lambda: ledger.relay(world.relayer, event_record, signer.address, until, fresh_signature),
             "UnauthorizedSigner", signer=signer.address)
    assert head(world) == before
    assert ledger.nonce(signer.address) == 0
    # What the key wrote before stays on the ledger.
    assert any(e.kind == EntryKind.COMMITMENT_PUBLISHED and same_address(e.actor, signer.address)
               for e in ledger.entries())


def test_revoke_signer_reverts_for_unknown_or_already_revoked_keys(world: World) -> None:
    ledger = world.ledger
    unknown = Account.create().address
    reverted(lambda: ledger.revoke_signer(world.governance, unknown), "UnauthorizedSigner", signer=unknown)
    reverted(lambda: ledger.revoke_signer(world.governance, ZERO_ADDRESS), "UnauthorizedSigner", signer=ZERO_ADDRESS)
    ledger.revoke_signer(world.governance, world.other_signer.address)
    before = head(world)
    reverted(lambda: ledger.revoke_signer(world.governance, world.other_signer.address),
             "UnauthorizedSigner", signer=world.other_signer.address)
    assert head(world) == before
    assert agency_view(world, world.other_agency_id)[2] == 0


def test_signer_count_and_key_history_rebuilt_from_entries(world: World) -> None:
    ledger, gov = world.ledger, world.governance
    k2, k3 = world.chain.new_account(), world.chain.new_account()
    signer = world.signer
    counts = [agency_view(world, world.agency_id)[2]]
    ledger.authorize_signer(gov, world.agency_id, k2.address)
    counts.append(agency_view(world, world.agency_id)[2])
    ledger.revoke_signer(gov, signer.address)
    counts.append(agency_view(world, world.agency_id)[2])
    ledger.authorize_signer(gov, world.agency_id, k3.address)
    counts.append(agency_view(world, world.agency_id)[2])
    ledger.revoke_signer(gov, k2.address)
    counts.append(agency_view(world, world.agency_id)[2])
    ledger.revoke_signer(gov, k3.address)
    counts.append(agency_view(world, world.agency_id)[2])
    # A revoked key is no longer anyone's, so it may be authorised again, here for the other agency.
    ledger.authorize_signer(gov, world.other_agency_id, signer.address)
    assert counts == [1, 2, 1, 2, 1, 0]
    assert agency_view(world, world.other_agency_id)[2] == 2

    key_entries = [e for e in ledger.entries() if e.kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED)]
    history = [(e.kind, e.agency_id, to_checksum_address(e.record.signer)) for e in key_entries]
    A, R = EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED
    ours, theirs = world.agency_id, world.other_agency_id
    assert history == [
        (A, ours, signer.address),
        (A, theirs, world.other_signer.address),
        (A, ours, k2.address),
        (R, ours, signer.address),
        (A, ours, k3.address),
        (R, ours, k2.address),
        (R, ours, k3.address),
        (A, theirs, signer.address),
    ]
    assert all(same_address(e.actor, gov.address) for e in key_entries)
    # Replaying the history gives the current keys of every agency, as the contract reports them.
    current: dict[str, bytes] = {}
    for kind, agency_id, key in history:
        if kind == A:
            current[key] = agency_id
        else:
            assert current.pop(key) == agency_id
    for key in (signer.address, world.other_signer.address, k2.address, k3.address):
        assert ledger.agency_of(key) == current.get(key, ZERO32)
    for agency_id in (ours, theirs):
        assert agency_view(world, agency_id)[2] == sum(1 for a in current.values() if a == agency_id)


# -------------------------------------------------------------- commitments


def test_commitment_publish_amend_retire(world: World) -> None:
    ledger, agency = world.ledger, world.agency_id
    cid = short_code("POTHOLE-5D")
    assert ledger.commitment_state(agency, cid) == (0, False)

    v1 = world.commitment(cid, deadline=5, deadline_unit=DeadlineUnit.WORKING_DAYS, target_bps=9000)
    event = only_event(ledger, ledger.write(world.signer, v1), "CommitmentPublished")
    assert (event["agencyId"], event["commitmentId"], event["version"]) == (agency, cid, 1)
    assert event_struct(event["commitment"]) == struct_of(v1)
    assert same_address(event["signer"], world.signer.address)
    assert ledger.commitment_state(agency, cid) == (1, False)

    v2 = world.commitment(cid, deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS, target_bps=9500,
                          terms_hash=text_hash("Potholes are filled within 3 working days."))
    event = only_event(ledger, ledger.write(world.signer, v2), "CommitmentPublished")
    assert (event["commitmentId"], event["version"]) == (cid, 2)
    assert event_struct(event["commitment"]) == struct_of(v2)
    assert ledger.commitment_state(agency, cid) == (2, False)
    entry = last_entry(world)
    assert (entry.kind, entry.version, entry.record_hash) == (EntryKind.COMMITMENT_PUBLISHED, 2, v2.struct_hash())

    retirement = Retirement(commitment_id=cid, reason_hash=text_hash("merged into ROADS-ALL"), occurred_at=world.now())
    receipt = ledger.write(world.signer, retirement)
    event = only_event(ledger, receipt, "CommitmentRetired")
    assert (event["agencyId"], event["commitmentId"]) == (agency, cid)
    assert (event["reasonHash"], event["occurredAt"]) == (retirement.reason_hash, retirement.occurred_at)
    assert same_address(event["signer"], world.signer.address)
    assert ledger.commitment_state(agency, cid) == (2, True)
    assert last_entry(world).kind == EntryKind.COMMITMENT_RETIRED

    before = head(world)
    retired = {"agencyId": agency, "commitmentId": cid}
    reverted(lambda: ledger.write(world.signer, world.commitment(cid)), "CommitmentIsRetired", **retired)
    reverted(lambda: ledger.write(world.signer, v1), "CommitmentIsRetired", **retired)
    again = Retirement(commitment_id=cid, reason_hash=ZERO32, occurred_at=world.now())
    reverted(lambda: ledger.write(world.signer, again), "CommitmentIsRetired", **retired)
    reverted(lambda: ledger.write(world.signer, world.opened("late", commitment_id=cid)), "CommitmentIsRetired",
             **retired)
    assert head(world) == before
    assert ledger.commitment_state(agency, cid) == (2, True)


def test_retire_unknown_commitment(world: World) -> None:
    ledger = world.ledger
    unknown = short_code("NEVER-PUBLISHED")
    before = head(world)
    retirement = Retirement(commitment_id=unknown, reason_hash=ZERO32, occurred_at=world.now())
    reverted(lambda: ledger.write(world.signer, retirement), "UnknownCommitment",
             agencyId=world.agency_id, commitmentId=unknown)
    # Commitments are per agency: the other agency cannot retire SH-ROADS's commitment.
    theirs = Retirement(commitment_id=world.commitment_id, reason_hash=ZERO32, occurred_at=world.now())
    reverted(lambda: ledger.write(world.other_signer, theirs), "UnknownCommitment",
             agencyId=world.other_agency_id, commitmentId=world.commitment_id)
    assert head(world) == before
    assert ledger.commitment_state(world.agency_id, world.commitment_id) == (1, False)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"commitment_id": ZERO32}, "commitmentId"),
        ({"service_code": ZERO32}, "serviceCode"),
        ({"name_zh": ""}, "name"),
        ({"name_en": ""}, "name"),
        ({"deadline": 0}, "deadline"),
        ({"deadline_unit": 0}, "deadlineUnit"),
        ({"deadline_unit": 3}, "deadlineUnit"),
        ({"target_bps": 10_001}, "targetBps"),
        ({"valid_from": 0}, "validFrom"),
    ],
    ids=["commitmentId", "serviceCode", "nameZh", "nameEn", "deadline", "unit-0", "unit-3", "targetBps", "validFrom"],
)
def test_invalid_commitment(world: World, changes: dict, field: str) -> None:
    record = broken(world.commitment(short_code("BAD")), **changes)
    before = head(world)
    reverted(lambda: world.ledger.write(world.signer, record), "InvalidCommitment",
             commitmentId=record.commitment_id, field=field)
    assert head(world) == before


def test_commitment_target_bps_bounds_are_inclusive(world: World) -> None:
    ledger = world.ledger
    ledger.write(world.signer, world.commitment(short_code("ZERO-TARGET"), target_bps=0))
    ledger.write(world.signer, world.commitment(short_code("FULL-TARGET"), target_bps=10_000))
    assert ledger.commitment_state(world.agency_id, short_code("ZERO-TARGET")) == (1, False)
    assert ledger.commitment_state(world.agency_id, short_code("FULL-TARGET")) == (1, False)


# --------------------------------------------------------------- case events


def test_case_life_cycle_every_action_recorded(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    details = text_hash("photo of the dark lamp post")
    opened = world.opened("life", details_hash=details, channel=3)
    count = ledger.entry_count()
    event = only_event(ledger, ledger.write(signer, opened), "CaseOpened")
    assert event["seq"] == count
    assert (event["agencyId"], event["caseId"], event["commitmentId"]) == (world.agency_id, case_id("life"),
                                                                           world.commitment_id)
    assert (event["occurredAt"], event["district"], event["channel"], event["detailsHash"]) == (
        opened.occurred_at, short_code("PUDONG"), 3, details)
    assert same_address(event["signer"], signer.address)

    updates = [
        world.update("life", CaseAction.ACCEPTED),
        world.update("life", CaseAction.ON_HOLD, details_hash=text_hash("waiting for a spare part")),
        world.update("life", CaseAction.RESUMED),
        world.update("life", CaseAction.ESCALATED, details_hash=text_hash("escalated to the district office")),
        world.update("life", CaseAction.FULFILLED, details_hash=text_hash("lamp replaced")),
        world.update("life", CaseAction.REJECTED, details_hash=text_hash("duplicate report")),
        world.update("life", CaseAction.WITHDRAWN),
        world.update("life", CaseAction.REOPENED, details_hash=text_hash("the lamp went dark again")),
    ]
    for i, update in enumerate(updates, start=1):
        event = only_event(ledger, ledger.write(signer, update), "CaseUpdated")
        assert event["seq"] == count + i
        assert (event["agencyId"], event["caseId"], event["action"]) == (world.agency_id, case_id("life"),
                                                                         int(update.action))
        assert (event["occurredAt"], event["detailsHash"]) == (update.occurred_at, update.details_hash)
        assert same_address(event["signer"], signer.address)

    recorded = [e for e in ledger.entries() if e.seq >= count]
    assert [e.kind for e in recorded] == [EntryKind.CASE_EVENT] * 9
    # every action but the answers, DisputeRejected to a pending dispute and Rectified to a rating
    # (tests/contracts/test_receipts.py)
    answers = (CaseAction.DISPUTE_REJECTED, CaseAction.RECTIFIED)
    assert [e.record.action for e in recorded] == [a for a in CaseAction if a not in answers]
    assert [e.record_hash for e in recorded] == [r.struct_hash() for r in [opened, *updates]]
    assert ledger.entry_count() == count + 9


CASE_EVENT_ERRORS: list[tuple[str, Callable[[World], CaseEvent], str]] = [
    ("caseId-zero", lambda w: broken(w.opened("x"), case_id=ZERO32), "caseId"),
    ("caseId-zero-update", lambda w: broken(w.update("x", CaseAction.ACCEPTED), case_id=ZERO32), "caseId"),
    ("action-0", lambda w: broken(w.update("x", CaseAction.ACCEPTED), action=0), "action"),
    ("action-12", lambda w: broken(w.update("x", CaseAction.ACCEPTED), action=12), "action"),
    ("action-255", lambda w: broken(w.update("x", CaseAction.ACCEPTED), action=255), "action"),
    ("no-district", lambda w: broken(w.opened("x"), district=ZERO32), "district"),
    ("no-channel", lambda w: broken(w.opened("x"), channel=0), "channel"),
    ("later-with-commitment", lambda w: broken(w.update("x", CaseAction.FULFILLED), commitment_id=w.commitment_id),
     "intake fields on a later event"),
    ("later-with-district", lambda w: broken(w.update("x", CaseAction.ACCEPTED), district=short_code("PUDONG")),
     "intake fields on a later event"),
    ("later-with-channel", lambda w: broken(w.update("x", CaseAction.WITHDRAWN), channel=2),
     "intake fields on a later event"),
]


@pytest.mark.parametrize(("make", "field"), [c[1:] for c in CASE_EVENT_ERRORS], ids=[c[0] for c in CASE_EVENT_ERRORS])
def test_invalid_case_event(world: World, make: Callable[[World], CaseEvent], field: str) -> None:
    record = make(world)
    before = head(world)
    reverted(lambda: world.ledger.write(world.signer, record), "InvalidCaseEvent", caseId=record.case_id, field=field)
    reverted(lambda: world.ledger.write_batch(world.signer, [record]), "InvalidCaseEvent",
             caseId=record.case_id, field=field)
    assert head(world) == before


@pytest.mark.parametrize(("word", "byte"), [(1, 30), (2, 20), (5, 30)], ids=["action", "occurredAt", "channel"])
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_dirty_high_bits_in_narrow_case_fields_are_refused(world: World, word: int, byte: int, batched: bool) -> None:
    """The contract hashes case events straight from calldata: a uint8/uint64 with dirty high bits must revert,
    or the same event could be recorded under two different record hashes."""
    ledger = world.ledger
    record = world.opened("dirty") if word == 5 else world.update("dirty", CaseAction.ACCEPTED)
    if batched:
        clean = ledger.contract.encode_abi("recordCaseEvents", args=[[record.abi_values()]])
        first = 4 + 32 * 2  # selector, array offset, array length
    else:
        clean = ledger.contract.encode_abi("recordCaseEvent", args=[record.abi_values()])
        first = 4
    call = {"from": world.signer.address, "to": ledger.address}
    data = bytearray(bytes.fromhex(clean[2:]))
    assert world.chain.w3.eth.call({**call, "data": "0x" + data.hex()}) == b""  # the clean call goes through
    data[first + 32 * word + byte] |= 0x01
    with pytest.raises((ContractLogicError, TransactionFailed, Web3RPCError)):
        world.chain.w3.eth.call({**call, "data": "0x" + data.hex()})


def test_open_case_under_unknown_or_foreign_commitment(world: World) -> None:
    ledger = world.ledger
    before = head(world)
    unknown = short_code("NO-SUCH-PROMISE")
    reverted(lambda: ledger.write(world.signer, world.opened("u", commitment_id=unknown)), "UnknownCommitment",
             agencyId=world.agency_id, commitmentId=unknown)
    # world.commitment_id is SH-ROADS's: SH-WATER's key cannot open a case under it.
    reverted(lambda: ledger.write(world.other_signer, world.opened("f")), "UnknownCommitment",
             agencyId=world.other_agency_id, commitmentId=world.commitment_id)
    reverted(lambda: ledger.write_batch(world.other_signer, [world.opened("f")]), "UnknownCommitment",
             agencyId=world.other_agency_id, commitmentId=world.commitment_id)
    # An Opened event with no commitment at all (only reachable without the model's validation).
    no_commitment = broken(world.opened("n"), commitment_id=ZERO32)
    reverted(lambda: ledger.write(world.signer, no_commitment), "UnknownCommitment",
             agencyId=world.agency_id, commitmentId=ZERO32)
    assert head(world) == before


def test_open_case_under_retired_commitment(world: World) -> None:
    ledger = world.ledger
    ledger.write(world.signer, world.opened("before-retirement"))
    retirement = Retirement(commitment_id=world.commitment_id, reason_hash=ZERO32, occurred_at=world.now())
    ledger.write(world.signer, retirement)
    before = head(world)
    reverted(lambda: ledger.write(world.signer, world.opened("after-retirement")), "CommitmentIsRetired",
             agencyId=world.agency_id, commitmentId=world.commitment_id)
    # Cases opened before the retirement still progress: later events carry no commitment.
    ledger.write(world.signer, world.update("before-retirement", CaseAction.FULFILLED))
    assert ledger.entry_count() == before[0] + 1


OCCURRED_AT_RECORDS: list[tuple[str, Callable[[World, int], Record]]] = [
    ("case-opened", lambda w, t: broken(w.opened("t"), occurred_at=t)),
    ("case-update", lambda w, t: broken(w.update("t", CaseAction.ACCEPTED), occurred_at=t)),
    ("commitment", lambda w, t: broken(w.commitment(short_code("T")), occurred_at=t)),
    ("retirement", lambda w, t: Retirement.model_construct(commitment_id=w.commitment_id, reason_hash=ZERO32,
                                                          occurred_at=t)),
    ("correction", lambda w, t: Correction.model_construct(target_seq=0, reason_hash=ZERO32, occurred_at=t)),
    ("calendar", lambda w, t: broken(calendar_2026(w), occurred_at=t)),
]


@pytest.mark.parametrize("when", ["zero", "future"])
@pytest.mark.parametrize("make", [m for _, m in OCCURRED_AT_RECORDS], ids=[n for n, _ in OCCURRED_AT_RECORDS])
def test_invalid_occurred_at(world: World, make: Callable[[World, int], Record], when: str) -> None:
    now = world.now()
    occurred_at = 0 if when == "zero" else now + 3600
    record = make(world, occurred_at)
    before = head(world)
    error = reverted(lambda: world.ledger.write(world.signer, record), "InvalidOccurredAt", occurredAt=occurred_at)
    assert now <= error.error_args["blockTime"] < now + 3600
    assert head(world) == before


def test_same_case_id_is_scoped_to_each_agency(world: World) -> None:
    ledger = world.ledger
    water = short_code("WATER-LEAK-4H")
    ledger.write(world.other_signer, world.commitment(water, service_code=short_code("LEAK"), name_zh="漏水",
                                                       name_en="Leak repair", deadline=4))
    count = ledger.entry_count()
    ledger.write(world.signer, world.opened("shared"))
    ledger.write(world.other_signer, world.opened("shared", commitment_id=water))
    ledger.write(world.other_signer, world.update("shared", CaseAction.FULFILLED))

    recorded = [e for e in ledger.entries() if e.seq >= count]
    assert [e.record.case_id for e in recorded] == [case_id("shared")] * 3
    assert [e.agency_id for e in recorded] == [world.agency_id, world.other_agency_id, world.other_agency_id]
    assert same_address(recorded[0].actor, world.signer.address)
    assert all(same_address(e.actor, world.other_signer.address) for e in recorded[1:])
    assert recorded[1].record.commitment_id == water
    # SH-ROADS's case is untouched by SH-WATER's events: nothing on the ledger says it was fulfilled.
    ours = [e for e in recorded if e.agency_id == world.agency_id]
    assert [e.record.action for e in ours] == [CaseAction.OPENED]


# --------------------------------------------------------------- corrections


def test_correction_voids_an_earlier_entry(world: World) -> None:
    ledger = world.ledger
    ledger.write(world.signer, world.opened("typo", channel=5))
    target = ledger.entry_count() - 1
    correction = Correction(target_seq=target, reason_hash=text_hash("wrong channel"), occurred_at=world.now())
    event = only_event(ledger, ledger.write(world.signer, correction), "CorrectionRecorded")
    assert (event["seq"], event["agencyId"], event["targetSeq"]) == (target + 1, world.agency_id, target)
    assert (event["reasonHash"], event["occurredAt"]) == (correction.reason_hash, correction.occurred_at)
    assert same_address(event["signer"], world.signer.address)
    entry = last_entry(world)
    assert (entry.kind, entry.record.target_seq, entry.record_hash) == (EntryKind.CORRECTION, target,
                                                                         correction.struct_hash())
    # The voided entry stays on the ledger.
    assert ledger.entries()[target].record.case_id == case_id("typo")
    # The first entry of all (seq 0) is a valid target too.
    ledger.write(world.signer, Correction(target_seq=0, reason_hash=ZERO32, occurred_at=world.now()))
    assert last_entry(world).record.target_seq == 0


@pytest.mark.parametrize("offset", [0, 1, None], ids=["count", "count+1", "uint64-max"])
def test_correction_target_must_exist(world: World, offset: int | None) -> None:
    count = world.ledger.entry_count()
    target = UINT64_MAX if offset is None else count + offset
    correction = Correction(target_seq=target, reason_hash=ZERO32, occurred_at=world.now())
    reverted(lambda: world.ledger.write(world.signer, correction), "InvalidCorrectionTarget",
             targetSeq=target, entryCount=count)
    assert world.ledger.entry_count() == count


# --------------------------------------------------------- holiday calendars


def test_holiday_calendar_publish_and_versions(world: World) -> None:
    ledger = world.ledger
    assert ledger.call_view("holidayCalendarVersion", JURISDICTION, 2026) == 0
    calendar = calendar_2026(world)
    assert calendar.holidays == (day_number(date(2026, 10, 1)), day_number(date(2026, 10, 2)))
    assert calendar.workdays == (day_number(date(2026, 9, 27)),)

    count = ledger.entry_count()
    event = only_event(ledger, ledger.write(world.signer, calendar), "HolidayCalendarPublished")
    assert (event["seq"], event["agencyId"], event["version"]) == (count, world.agency_id, 1)
    assert event["jurisdiction"] == agency_view(world, world.agency_id)[1] == JURISDICTION
    assert event_struct(event["calendar"]) == struct_of(calendar)
    assert same_address(event["signer"], world.signer.address)
    assert ledger.call_view("holidayCalendarVersion", JURISDICTION, 2026) == 1
    entry = last_entry(world)
    assert (entry.kind, entry.version, entry.jurisdiction) == (EntryKind.HOLIDAY_CALENDAR_PUBLISHED, 1, JURISDICTION)
    assert entry.record_hash == calendar.struct_hash()

    # Versions count per jurisdiction and year: SH-WATER shares CN-SH, so its calendar is version 2.
    amended = HolidayCalendar.from_dates(2026, [date(2026, 10, 1)], [], occurred_at=world.now())
    event = only_event(ledger, ledger.write(world.other_signer, amended), "HolidayCalendarPublished")
    assert (event["agencyId"], event["jurisdiction"], event["version"]) == (world.other_agency_id, JURISDICTION, 2)
    assert event_struct(event["calendar"]) == struct_of(amended)
    assert ledger.call_view("holidayCalendarVersion", JURISDICTION, 2026) == 2
    assert ledger.call_view("holidayCalendarVersion", JURISDICTION, 2027) == 0
    # An empty calendar for another year starts that year at version 1.
    event = only_event(ledger, ledger.write(world.signer, HolidayCalendar(year=2027, occurred_at=world.now())),
                       "HolidayCalendarPublished")
    assert event["version"] == 1
    assert ledger.call_view("holidayCalendarVersion", JURISDICTION, 2027) == 1


@pytest.mark.parametrize(
    ("year", "holidays", "workdays", "outside"),
    [
        # 1970-01-01 is day 0, a Thursday; 1970-12-31 a Thursday too. 1971-01-01 is a Friday.
        (1970, (date(1970, 1, 1), date(1970, 12, 31)), (), (date(1971, 1, 1),)),
        # A leap year at a 400-year era boundary: 29 February (Tuesday) and Sunday 31 December are in the year;
        # Friday 1999-12-31 and Monday 2001-01-01 are not.
        (2000, (date(2000, 2, 29), date(2000, 12, 29)), (date(2000, 12, 31),), (date(1999, 12, 31), date(2001, 1, 1))),
        # 2100 is not a leap year: 1 March (Monday) and Friday 31 December; Thursday 2099-12-31, Monday 2101-01-03.
        (2100, (date(2100, 3, 1), date(2100, 12, 31)), (), (date(2099, 12, 31), date(2101, 1, 3))),
    ],
    ids=["1970", "2000", "2100"],
)
def test_holiday_calendar_year_edges(world: World, year: int, holidays: tuple[date, ...],
                                     workdays: tuple[date, ...], outside: tuple[date, ...]) -> None:
    calendar = HolidayCalendar.from_dates(year, holidays, workdays, occurred_at=world.now())
    event = only_event(world.ledger, world.ledger.write(world.signer, calendar), "HolidayCalendarPublished")
    assert event["version"] == 1
    assert event_struct(event["calendar"]) == struct_of(calendar)
    assert world.ledger.call_view("holidayCalendarVersion", JURISDICTION, year) == 1
    # A weekday just outside the year is refused.
    for day in outside:
        record = broken(calendar, holidays=tuple(sorted(calendar.holidays + (day_number(day),))))
        reverted(lambda record=record: world.ledger.write(world.signer, record), "InvalidHolidayCalendar", year=year,
                 field="holidays")


def test_holiday_calendar_last_year_9999_on_chain(world: World) -> None:
    # 9999-01-01 and 9999-12-31 are Fridays. Built without validation: see the next test.
    calendar = HolidayCalendar.model_construct(
        year=9999, holidays=days_of(date(9999, 1, 1), date(9999, 12, 31)), workdays=(), occurred_at=world.now()
    )
    event = only_event(world.ledger, world.ledger.write(world.signer, calendar), "HolidayCalendarPublished")
    assert (event["version"], event["calendar"]["year"]) == (1, 9999)
    assert last_entry(world).record_hash == calendar.struct_hash()


def test_python_calendar_model_accepts_year_9999_like_the_contract(world: World) -> None:
    # HolidayCalendar declares year <= 9999 and the contract accepts 9999, so the model must build it.
    calendar = HolidayCalendar.from_dates(9999, [date(9999, 12, 31)], [], occurred_at=world.now())
    world.ledger.write(world.signer, calendar)
    assert world.ledger.call_view("holidayCalendarVersion", JURISDICTION, 9999) == 1


CALENDAR_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("year-1969", {"year": 1969, "holidays": (), "workdays": ()}, "year"),
    ("year-0", {"year": 0, "holidays": (), "workdays": ()}, "year"),
    ("year-10000", {"year": 10_000, "holidays": (), "workdays": ()}, "year"),
    ("holiday-previous-year", {"holidays": days_of(date(2025, 12, 31), date(2026, 10, 1))}, "holidays"),
    ("holiday-next-year", {"holidays": days_of(date(2026, 10, 1), date(2027, 1, 1))}, "holidays"),
    ("holidays-descending", {"holidays": days_of(date(2026, 10, 2), date(2026, 10, 1))}, "holidays"),
    ("holidays-duplicate", {"holidays": days_of(date(2026, 10, 1), date(2026, 10, 1))}, "holidays"),
    ("holiday-on-saturday", {"holidays": days_of(date(2026, 10, 1), date(2026, 10, 3))}, "holidays"),
    ("workday-on-thursday", {"workdays": days_of(date(2026, 9, 27), date(2026, 10, 8))}, "workdays"),
    ("workday-previous-year", {"workdays": days_of(date(2025, 12, 28))}, "workdays"),
    ("workdays-descending", {"workdays": days_of(date(2026, 10, 10), date(2026, 9, 27))}, "workdays"),
]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in CALENDAR_ERRORS], ids=[c[0] for c in CALENDAR_ERRORS])
def test_invalid_holiday_calendar(world: World, changes: dict[str, Any], field: str) -> None:
    record = broken(calendar_2026(world), **changes)
    before = head(world)
    reverted(lambda: world.ledger.write(world.signer, record), "InvalidHolidayCalendar", year=record.year, field=field)
    assert head(world) == before
    assert world.ledger.call_view("holidayCalendarVersion", JURISDICTION, 2026) == 0


# ------------------------------------------------------------------- batches


def test_empty_batch_direct_and_relayed(world: World) -> None:
    ledger = world.ledger
    before = head(world)
    reverted(lambda: ledger.write_batch(world.signer, []), "EmptyBatch")
    until = deadline(world)
    signature = ledger.sign(world.signer, [], until)
    reverted(lambda: ledger.relay(world.relayer, [], world.signer.address, until, signature), "EmptyBatch")
    assert head(world) == before
    assert ledger.nonce(world.signer.address) == 0


def test_batch_with_one_bad_entry_writes_nothing(world: World) -> None:
    ledger = world.ledger
    batch = [
        world.opened("b1"),
        world.update("b1", CaseAction.ACCEPTED),
        broken(world.update("b1", CaseAction.FULFILLED), occurred_at=world.now() + 3600),
        world.opened("b2"),
    ]
    count, running = head(world)
    entries = ledger.entries()
    reverted(lambda: ledger.write_batch(world.signer, batch), "InvalidOccurredAt", occurredAt=batch[2].occurred_at)
    batch[2] = broken(batch[2], occurred_at=world.now(), action=12)
    reverted(lambda: ledger.write_batch(world.signer, batch), "InvalidCaseEvent", caseId=case_id("b1"), field="action")
    until = deadline(world)
    signature = ledger.sign(world.signer, batch, until)
    reverted(lambda: ledger.relay(world.relayer, batch, world.signer.address, until, signature), "InvalidCaseEvent",
             caseId=case_id("b1"), field="action")
    assert head(world) == (count, running)
    assert ledger.entries() == entries
    assert ledger.nonce(world.signer.address) == 0
    # The same batch without the bad entry goes through whole.
    del batch[2]
    ledger.write_batch(world.signer, batch)
    assert ledger.entry_count() == count + 3


def test_batch_equals_one_by_one(world: World) -> None:
    ledger, chain = world.ledger, world.chain
    t = world.now()
    sequence = [
        world.opened("eq-a", occurred_at=t),
        world.opened("eq-b", occurred_at=t, channel=4, details_hash=text_hash("b")),
        world.update("eq-a", CaseAction.ACCEPTED, occurred_at=t),
        world.update("eq-b", CaseAction.ON_HOLD, occurred_at=t),
        world.update("eq-b", CaseAction.RESUMED, occurred_at=t),
        world.update("eq-a", CaseAction.FULFILLED, occurred_at=t, details_hash=text_hash("done")),
        world.update("eq-b", CaseAction.REJECTED, occurred_at=t),
    ]
    start = ledger.entry_count()

    def outcome() -> tuple[list[tuple[Any, ...]], int, bytes]:
        written = [
            (e.seq, e.kind, e.agency_id, to_checksum_address(e.actor), e.record_hash, e.entry_hash)
            for e in ledger.entries() if e.seq >= start
        ]
        return written, ledger.entry_count(), ledger.running_hash()

    snapshot = chain.snapshot()
    try:
        for record in sequence:
            ledger.write(world.signer, record)
        singles = outcome()
    finally:
        chain.revert(snapshot)
    assert ledger.entry_count() == start

    receipt = ledger.write_batch(world.signer, sequence)
    batched = outcome()
    assert len(events(ledger, receipt, "CaseOpened")) == 2 and len(events(ledger, receipt, "CaseUpdated")) == 5
    assert batched == singles
    assert batched[1] == start + len(sequence)
    assert [w[0] for w in batched[0]] == list(range(start, start + len(sequence)))
    assert [w[4] for w in batched[0]] == [r.struct_hash() for r in sequence]


# ----------------------------------------------------------------- relaying

RELAYED: list[tuple[str, EntryKind, Callable[[World], Record | list[CaseEvent]]]] = [
    ("publishCommitmentBySig", EntryKind.COMMITMENT_PUBLISHED, lambda w: w.commitment(short_code("RELAYED"))),
    ("retireCommitmentBySig", EntryKind.COMMITMENT_RETIRED,
     lambda w: Retirement(commitment_id=w.commitment_id, reason_hash=text_hash("superseded"), occurred_at=w.now())),
    ("recordCaseEventBySig", EntryKind.CASE_EVENT, lambda w: w.opened("relayed")),
    ("recordCaseEventsBySig", EntryKind.CASE_EVENT,
     lambda w: [w.opened("relayed"), w.update("relayed", CaseAction.ACCEPTED), w.opened("relayed-2")]),
    ("recordCorrectionBySig", EntryKind.CORRECTION,
     lambda w: Correction(target_seq=0, reason_hash=text_hash("typo"), occurred_at=w.now())),
    ("publishHolidayCalendarBySig", EntryKind.HOLIDAY_CALENDAR_PUBLISHED, calendar_2026),
]


@pytest.mark.parametrize(("kind", "make"), [r[1:] for r in RELAYED], ids=[r[0] for r in RELAYED])
def test_relayed_entry_is_attributed_to_the_signer(
    world: World, kind: EntryKind, make: Callable[[World], Record | list[CaseEvent]]
) -> None:
    ledger, signer = world.ledger, world.signer
    record = make(world)
    records = record if isinstance(record, list) else [record]
    nonce = ledger.nonce(signer.address)
    relayer_nonce = ledger.nonce(world.relayer.address)
    count = ledger.entry_count()
    until = deadline(world)
    signature = ledger.sign(signer, record, until)

    receipt = ledger.relay(world.relayer, record, signer.address, until, signature)
    assert same_address(receipt["from"], world.relayer.address)
    assert ledger.nonce(signer.address) == nonce + 1
    assert ledger.nonce(world.relayer.address) == relayer_nonce
    written = [e for e in ledger.entries() if e.seq >= count]
    assert [e.seq for e in written] == list(range(count, count + len(records)))
    assert ledger.entry_count() == count + len(records)
    for entry, original in zip(written, records, strict=True):
        assert entry.kind == kind
        assert entry.agency_id == world.agency_id
        assert same_address(entry.actor, signer.address)
        assert not same_address(entry.actor, world.relayer.address)
        assert entry.record_hash == original.struct_hash()

    # The signature is spent: replaying it fails, and writes nothing.
    before = head(world)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, signature), "InvalidSignature",
             signer=signer.address)
    assert head(world) == before


def test_relayed_signature_errors(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.opened("sig")
    until = deadline(world)
    before = head(world)

    past = world.now() - 1
    expired = ledger.sign(signer, record, past)
    error = reverted(lambda: ledger.relay(world.relayer, record, signer.address, past, expired), "SignatureExpired",
                     deadline=past)
    assert error.error_args["blockTime"] > past

    by_other_key = ledger.sign(world.other_signer, record, until, nonce=0)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, by_other_key), "InvalidSignature",
             signer=signer.address)
    signature = ledger.sign(signer, record, until)
    tampered = world.opened("sig", channel=6)
    reverted(lambda: ledger.relay(world.relayer, tampered, signer.address, until, signature), "InvalidSignature",
             signer=signer.address)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until + 1, signature), "InvalidSignature",
             signer=signer.address)
    future_nonce = ledger.sign(signer, record, until, nonce=1)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, future_nonce), "InvalidSignature",
             signer=signer.address)
    # A single-event signature does not authorise the same event as a batch, nor the reverse.
    reverted(lambda: ledger.relay(world.relayer, [record], signer.address, until, signature), "InvalidSignature",
             signer=signer.address)
    batch_signature = ledger.sign(signer, [record], until)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, batch_signature), "InvalidSignature",
             signer=signer.address)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, b"\x00" * 65), "InvalidSignature",
             signer=signer.address)
    # Bound to this chain and this contract: a signature over another domain is refused.
    for change in ({"chainId": world.chain.chain_id + 1}, {"verifyingContract": world.relayer.address},
                   {"version": "2"}):
        typed = ledger.typed_data(record, 0, until, ledger.agency_of(signer.address))
        typed["domain"] = {**typed["domain"], **change}
        elsewhere = bytes(Account.sign_typed_data(signer.key, full_message=typed).signature)
        reverted(lambda elsewhere=elsewhere: ledger.relay(world.relayer, record, signer.address, until, elsewhere),
                 "InvalidSignature", signer=signer.address)
    # The malleable twin of a valid signature (s -> n - s, v flipped) recovers the same key but is refused.
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, twin), "InvalidSignature",
             signer=signer.address)
    stranger = Account.create()
    by_stranger = ledger.sign(stranger, record, until)
    reverted(lambda: ledger.relay(world.relayer, record, stranger.address, until, by_stranger), "UnauthorizedSigner",
             signer=stranger.address)
    assert head(world) == before
    assert ledger.nonce(signer.address) == 0

    ledger.relay(world.relayer, record, signer.address, until, signature)
    assert ledger.nonce(signer.address) == 1


def test_cancel_signatures(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.opened("cancelled")
    until = deadline(world)
    outstanding = ledger.sign(signer, record, until)
    assert ledger.nonce(signer.address) == 0

    receipt = ledger.cancel_signatures(signer, 5)
    event = only_event(ledger, receipt, "SignaturesCancelled")
    assert same_address(event["signer"], signer.address) and event["newNonce"] == 5
    assert ledger.nonce(signer.address) == 5
    before = head(world)
    reverted(lambda: ledger.relay(world.relayer, record, signer.address, until, outstanding), "InvalidSignature",
             signer=signer.address)
    reverted(lambda: ledger.cancel_signatures(signer, 5), "NonceNotIncreasing", current=5, requested=5)
    reverted(lambda: ledger.cancel_signatures(signer, 4), "NonceNotIncreasing", current=5, requested=4)
    reverted(lambda: ledger.cancel_signatures(signer, 0), "NonceNotIncreasing", current=5, requested=0)
    assert head(world) == before
    assert ledger.nonce(signer.address) == 5

    # A signature at the new nonce goes through; cancelling is only per key.
    ledger.relay(world.relayer, record, signer.address, until, ledger.sign(signer, record, until))
    assert ledger.nonce(signer.address) == 6
    assert ledger.nonce(world.other_signer.address) == 0
    reverted(lambda: ledger.cancel_signatures(world.other_signer, 0), "NonceNotIncreasing", current=0, requested=0)


# ------------------------------------------------------------- running hash


def test_views_and_domain_separator(world: World) -> None:
    ledger = world.ledger
    domain_typehash = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [domain_typehash, keccak(b"CivicLedger"), keccak(b"1"), world.chain.chain_id, ledger.address],
    ))
    # the domain the contract publishes (ERC-5267; it has no DOMAIN_SEPARATOR view) is the one Python signs under
    assert domain_separator(ledger.contract) == expected
    probe = Rating(agency_id=world.agency_id, case_id=case_id("probe"), score=3)
    assert encode_typed_data(full_message=ledger.citizen_typed_data(probe)).header == expected
    assert ledger.agency_of(world.relayer.address) == ZERO32
    assert agency_view(world, short_code("NOPE")) == (False, ZERO32, 0)
    assert agency_view(world, world.other_agency_id) == (True, JURISDICTION, 1)
    assert ledger.commitment_state(world.other_agency_id, world.commitment_id) == (0, False)
    assert ledger.commitment_state(world.agency_id, world.commitment_id) == (1, False)
    assert ledger.nonce(world.relayer.address) == 0
    # World: two agencies, two keys, one commitment.
    assert ledger.entry_count() == 5
    entries = ledger.entries()
    assert [e.kind for e in entries] == [EntryKind.AGENCY_REGISTERED, EntryKind.AGENCY_REGISTERED,
                                         EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_AUTHORIZED,
                                         EntryKind.COMMITMENT_PUBLISHED]
    assert ledger.running_hash() == running_hash(e.entry_hash for e in entries)


def test_running_hash_over_every_kind(world: World) -> None:
    ledger, gov, signer = world.ledger, world.governance, world.signer
    until = deadline(world)
    key = world.chain.new_account()
    ledger.register_agency(gov, parks())
    ledger.authorize_signer(gov, short_code("SH-PARKS"), key.address)
    ledger.write(signer, world.commitment(short_code("MIX"), deadline=2, deadline_unit=DeadlineUnit.WORKING_DAYS))
    ledger.write(signer, world.opened("mix-1"))
    ledger.write_batch(signer, [world.update("mix-1", CaseAction.ACCEPTED), world.opened("mix-2"),
                                world.update("mix-2", CaseAction.ESCALATED)])
    batch = [world.update("mix-1", CaseAction.FULFILLED), world.update("mix-2", CaseAction.WITHDRAWN)]
    ledger.relay(world.relayer, batch, signer.address, until, ledger.sign(signer, batch, until))
    ledger.write(signer, Correction(target_seq=ledger.entry_count() - 1, reason_hash=ZERO32, occurred_at=world.now()))
    ledger.write(key, calendar_2026(world))
    ledger.write(signer, Retirement(commitment_id=short_code("MIX"), reason_hash=ZERO32, occurred_at=world.now()))
    opened = world.opened("mix-3")
    ledger.relay(world.relayer, opened, signer.address, until, ledger.sign(signer, opened, until))
    ledger.revoke_signer(gov, key.address)
    # a citizen's receipt, rating and dispute, then a Merkle-anchored batch of three events
    code = receipts.new_code()
    flagged = bytes([case_id("mix-r")[0] | 0x80]) + case_id("mix-r")[1:]
    ledger.write(signer, world.opened("mix-r", case_id=flagged))
    ledger.write(signer, Receipt(case_id=flagged, receipt=receipts.address(code), occurred_at=world.now()))
    ledger.write(signer, world.update("mix-r", CaseAction.FULFILLED, case_id=flagged))
    for record in (Rating(agency_id=world.agency_id, case_id=flagged, score=2),
                   Dispute(agency_id=world.agency_id, case_id=flagged, closure=1)):
        ledger.submit_citizen(world.relayer, record, ledger.sign_citizen(receipts.private_key(code), record))
    # a citizen's filing and the agency's acceptance, then the printed receipt above claimed (the filings module)
    accept(world, file(world, receipts.new_code()))
    claimant = receipts.new_code()
    claim(world, flagged, receipts.address(claimant), receipts.private_key(code),
          receipt_key=receipts.private_key(claimant))
    # an auditor registered, its checkpoint recorded, the auditor revoked
    auditor = Account.create()
    ledger.authorize_auditor(gov, auditor.address)
    attestation = checkpoint(world)
    ledger.record_attestation(world.relayer, attestation, auditor.address,
                              ledger.sign_attestation(auditor.key, attestation))
    ledger.revoke_auditor(gov, auditor.address)
    anchored = build_batch([world.opened("mix-b"), world.update("mix-b", CaseAction.ACCEPTED),
                            world.update("mix-b", CaseAction.FULFILLED)])
    ledger.anchor_batch(signer, anchored.root, anchored.count, anchored.file_hash)

    entries = ledger.entries()
    # one logged entry stands for the batch's three: seqs run on, skipping the batch's other two
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert len(entries) == 5 + 14 + 5 + 3 + 3 + 1
    assert ledger.entry_count() == len(entries) + 2
    assert running_hash(e.entry_hash for e in entries) == ledger.running_hash()
    assert {e.kind for e in entries} == set(EntryKind)
    # The running hash is a fold: every prefix's hash is the head as of the block that ended that prefix.
    last_in_block: dict[int, int] = {}
    for i, e in enumerate(entries):
        last_in_block[e.block_number] = i
    for block, i in list(last_in_block.items())[-4:]:
        assert ledger.running_hash(block) == running_hash(e.entry_hash for e in entries[: i + 1])
        # the batch's anchor (the last entry) counts for its three entries
        assert ledger.entry_count(block) == entries[i].seq + (3 if entries[i].kind is EntryKind.BATCH_ANCHORED else 1)
    # The contract's own entry hash equals the Python one, for one entry of every kind.
    first_of_kind = {e.kind: e for e in reversed(entries)}
    for kind, e in sorted(first_of_kind.items()):
        on_chain = ledger.call_view("entryHashOf", e.seq, int(kind), e.agency_id, e.actor, e.record_hash)
        assert bytes(on_chain) == e.entry_hash == entry_hash(e.seq, e.kind, e.agency_id, e.actor, e.record_hash)
