"""Records: validation, and canonical hashes equal to eth-account's EIP-712 and to the contract's, property-based."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from eth_account.messages import encode_typed_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.chain.contract import Chain, relay_typed_data
from ledger.encoding import code_text, keccak, running_hash
from ledger.errors import InvalidRecord
from ledger.records import (
    AgencyRegistration,
    Attestation,
    AuditorChange,
    AuditVerdict,
    BatchAnchor,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    DeadlineUnit,
    Dispute,
    HolidayCalendar,
    Rating,
    Receipt,
    Record,
    Retirement,
    SignerChange,
    day_number,
    short_code,
    struct_hash_of,
)
from tests.support.world import build_world

BASE_TIME = 1_700_000_000
bytes32 = st.binary(min_size=32, max_size=32)
nonzero32 = bytes32.filter(lambda b: any(b))
times = st.integers(min_value=1, max_value=BASE_TIME)
texts = st.text(min_size=1, max_size=40)


@st.composite
def case_events(draw: st.DrawFn, commitment_id: bytes = short_code("C1")) -> CaseEvent:
    action = draw(st.sampled_from(list(CaseAction)))
    common = dict(case_id=draw(nonzero32), action=action, occurred_at=draw(times), details_hash=draw(bytes32))
    if action is CaseAction.OPENED:
        return CaseEvent(
            **common, commitment_id=commitment_id, district=draw(nonzero32), channel=draw(st.integers(1, 255))
        )
    return CaseEvent(**common)


@st.composite
def commitments(draw: st.DrawFn, commitment_id: bytes | None = None) -> Commitment:
    return Commitment(
        commitment_id=commitment_id or draw(nonzero32),
        service_code=draw(nonzero32),
        name_zh=draw(texts),
        name_en=draw(texts),
        deadline=draw(st.integers(1, 2**32 - 1)),
        deadline_unit=draw(st.sampled_from(list(DeadlineUnit))),
        target_bps=draw(st.integers(0, 10_000)),
        valid_from=draw(times),
        terms_hash=draw(bytes32),
        occurred_at=draw(times),
    )


@st.composite
def calendars(draw: st.DrawFn) -> HolidayCalendar:
    year = draw(st.integers(1970, 2037))
    first, last = day_number(date(year, 1, 1)), day_number(date(year, 12, 31))
    picked = draw(st.sets(st.integers(first, last), max_size=16))
    holidays = sorted(d for d in picked if (d + 4) % 7 not in (0, 6))
    workdays = sorted(d for d in picked if (d + 4) % 7 in (0, 6))
    return HolidayCalendar(year=year, holidays=tuple(holidays), workdays=tuple(workdays), occurred_at=draw(times))


any_record = st.one_of(
    case_events(),
    commitments(),
    st.builds(Retirement, commitment_id=nonzero32, reason_hash=bytes32, occurred_at=times),
    st.builds(Correction, target_seq=st.integers(0, 2**64 - 1), reason_hash=bytes32, occurred_at=times),
    calendars(),
)

DOMAIN = {"name": "CivicLedger", "version": "1", "chainId": 1, "verifyingContract": "0x" + "11" * 20}


@given(any_record, st.integers(0, 2**64), st.integers(0, 2**64))
def test_struct_hash_equals_eth_accounts_eip712(record, nonce, deadline):
    """eth-account's EIP-712 encoder (what wallets implement) hashes our typed data to the same struct hash."""
    typed = relay_typed_data(DOMAIN, record, b"\1" * 32, nonce, deadline)
    inner = {"types": {**typed["types"]}, "primaryType": record.TYPE_NAME, "domain": DOMAIN,
             "message": record.eip712_message()}
    inner["types"] = {k: v for k, v in inner["types"].items() if k in ("EIP712Domain", record.TYPE_NAME)}
    assert encode_typed_data(full_message=inner).body == record.struct_hash()


def _eip712_struct_hash(record: Record) -> bytes:
    """eth-account's EIP-712 encoder's struct hash of the record (what wallets implement)."""
    message = {"types": {"EIP712Domain": [{"name": "name", "type": "string"}],
                         record.TYPE_NAME: record.eip712_fields()},
               "primaryType": record.TYPE_NAME, "domain": {"name": "CivicLedger"},
               "message": record.eip712_message()}
    return encode_typed_data(full_message=message).body


def test_every_kinds_struct_hash_is_the_one_definition_and_eip712s():
    """Each kind's struct hash — case events on their direct path, the others by ``struct_hash_of`` — equals
    ``struct_hash_of`` over its field values (strings as text or as raw bytes, as a log gives them) and eth-account's
    EIP-712 encoder: strings, arrays, addresses, a bytes24 and enums included."""
    t = 1_700_000_000
    address = "0x" + "5a" * 20
    kinds: list[Record] = [
        AgencyRegistration(agency_id=short_code("SH-ROADS"), jurisdiction=short_code("SH"), name_zh="道路局",
                           name_en="Roads"),
        SignerChange(agency_id=short_code("SH-ROADS"), signer=address),
        Commitment(commitment_id=short_code("LICENCE-3WD"), service_code=short_code("LICENCE"), name_zh="营业执照",
                   name_en="Licence", deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS, target_bps=9000,
                   valid_from=t, terms_hash=b"\3" * 32, occurred_at=t),
        Retirement(commitment_id=short_code("LICENCE-3WD"), reason_hash=b"\4" * 32, occurred_at=t),
        CaseEvent(case_id=b"\5" * 32, action=CaseAction.OPENED, occurred_at=t, commitment_id=short_code("C"),
                  district=short_code("EAST"), channel=2, details_hash=b"\6" * 32),
        CaseEvent(case_id=b"\5" * 32, action=CaseAction.FULFILLED, occurred_at=t + 60),
        Receipt(case_id=b"\x80" + b"\1" * 31, receipt=address, occurred_at=t),
        Rating(agency_id=short_code("SH-ROADS"), case_id=b"\x80" + b"\1" * 31, score=4, comment_hash=b"\7" * 32),
        Dispute(agency_id=short_code("SH-ROADS"), case_id=b"\x80" + b"\1" * 31, closure=2, reason_hash=b"\x08" * 32),
        BatchAnchor(root=b"\x09" * 32, count=500, file_hash=b"\x0a" * 32),
        Correction(target_seq=7, reason_hash=b"\x0b" * 32, occurred_at=t),
        HolidayCalendar.from_dates(2026, [date(2026, 1, 1), date(2026, 10, 1)], [date(2026, 10, 10)], t),
        AuditorChange(auditor=address),
        Attestation(block_number=9, block_hash=b"\x0c" * 32, entry_count=12, running_hash=b"\x0d" * 24,
                    report_hash=b"\x0e" * 32, verdict=AuditVerdict.PASSED, findings=0),
    ]
    kinds += [CaseEvent(case_id=keccak(b"x%d" % a), action=CaseAction(a), occurred_at=t + a) for a in range(2, 9)]
    for record in kinds:
        fields = {attr: getattr(record, attr) for attr, _, _ in record.FIELDS}
        raw = {k: v.encode() if isinstance(v, str) and not v.startswith("0x") else v for k, v in fields.items()}
        expected = _eip712_struct_hash(record)
        assert record.struct_hash() == struct_hash_of(type(record), fields) == expected, record.TYPE_NAME
        assert struct_hash_of(type(record), raw) == expected, record.TYPE_NAME


@given(st.lists(case_events(), min_size=1, max_size=5))
def test_batch_typed_data_is_standard_eip712(events):
    typed = relay_typed_data(DOMAIN, events, b"\1" * 32, 3, 99)
    signable = encode_typed_data(full_message=typed)
    assert len(signable.body) == 32 and signable.header != signable.body


@pytest.fixture(scope="module")
def anvil_world(anvil_node):
    return build_world(Chain.connect(anvil_node.url))


# Opened is one action of eleven: drawing it by filtering is meant
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(data=st.data())
def test_contract_and_python_hash_random_records_identically(anvil_world, data):
    """Random records written to a real node: the running hash Python recomputes from the events equals the
    contract's, so the contract's record and entry hashes equal Python's byte for byte. Every other one goes
    through a relayed signature, which the contract accepts only if its EIP-712 digest equals eth-account's."""
    world = anvil_world
    snapshot = world.chain.snapshot()
    try:
        # claimed times a minute behind the latest block: the node's next block is never before them, whatever its
        # clock did around the snapshot reverts between examples
        now = world.now() - 60
        opened = data.draw(case_events(world.commitment_id).filter(lambda e: e.action is CaseAction.OPENED))
        # DisputeRejected answers a pending dispute, Rectified a rating: on their own the contract always refuses them
        # (CaseNotDisputed, CaseNotRated)
        later = data.draw(case_events().filter(
            lambda e: e.action not in (CaseAction.OPENED, CaseAction.DISPUTE_REJECTED, CaseAction.RECTIFIED)
        ))
        amended = data.draw(commitments(world.commitment_id))
        calendar = data.draw(calendars())
        records = [
            opened.model_copy(update={"occurred_at": min(opened.occurred_at, now)}),
            later.model_copy(update={"occurred_at": min(later.occurred_at, now)}),
            amended.model_copy(update={"occurred_at": min(amended.occurred_at, now)}),
            calendar.model_copy(update={"occurred_at": min(calendar.occurred_at, now)}),
        ]
        for i, record in enumerate(records):
            if i % 2:
                deadline = now + 3600
                signature = world.ledger.sign(world.signer, record, deadline)
                world.ledger.relay(world.relayer, record, world.signer.address, deadline, signature)
            else:
                world.ledger.write(world.signer, record)
        entries = world.ledger.entries()
        assert [e.record.struct_hash() for e in entries[-4:]] == [r.struct_hash() for r in records]
        assert running_hash(e.entry_hash for e in entries) == world.ledger.running_hash()
    finally:
        world.chain.revert(snapshot)


def test_times_need_a_zone():
    event = CaseEvent(case_id=b"\1" * 32, action=CaseAction.ACCEPTED, occurred_at="2026-11-21T08:00:00+08:00")
    assert event.occurred_at == int(datetime(2026, 11, 21, tzinfo=UTC).timestamp())
    aware = datetime(2026, 11, 21, 8, tzinfo=timezone(timedelta(hours=8)))
    assert CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=aware).occurred_at == event.occurred_at
    with pytest.raises(ValidationError, match="has no zone"):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=datetime(2026, 11, 21, 8))
    with pytest.raises(ValidationError, match="not an ISO 8601 time"):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at="yesterday")
    with pytest.raises(ValidationError, match="to the second"):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=aware.replace(microsecond=5))
    with pytest.raises(ValidationError):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=0)


def test_ids_and_enums_are_checked():
    with pytest.raises(ValidationError, match="32 bytes"):
        CaseEvent(case_id=b"\1" * 31, action=2, occurred_at=1)
    with pytest.raises(ValidationError, match="hex"):
        CaseEvent(case_id="0xzz", action=2, occurred_at=1)
    with pytest.raises(ValidationError, match="case_id must not be zero"):
        CaseEvent(case_id=b"\0" * 32, action=2, occurred_at=1)
    with pytest.raises(ValidationError, match="action"):
        CaseEvent(case_id=b"\1" * 32, action=12, occurred_at=1)
    with pytest.raises(ValidationError, match="Opened event needs"):
        CaseEvent(case_id=b"\1" * 32, action=CaseAction.OPENED, occurred_at=1)
    with pytest.raises(ValidationError, match="belong to the Opened event only"):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=1, channel=1)
    with pytest.raises(ValidationError, match="extra"):
        CaseEvent(case_id=b"\1" * 32, action=2, occurred_at=1, citizen_name="x")
    with pytest.raises(ValidationError, match="deadline_unit"):
        Commitment(commitment_id=b"\1" * 32, service_code=b"\1" * 32, name_zh="a", name_en="b", deadline=1,
                   deadline_unit=3, target_bps=1, valid_from=1, terms_hash=b"\0" * 32, occurred_at=1)
    with pytest.raises(ValidationError, match="target_bps"):
        Commitment(commitment_id=b"\1" * 32, service_code=b"\1" * 32, name_zh="a", name_en="b", deadline=1,
                   deadline_unit=1, target_bps=10_001, valid_from=1, terms_hash=b"\0" * 32, occurred_at=1)


def test_short_codes():
    assert code_text(short_code("PUDONG")) == "PUDONG"
    for bad in ("", "有中文", "has space", "x" * 33):
        with pytest.raises(InvalidRecord, match="printable ASCII"):
            short_code(bad)


def test_calendar_checks_days():
    with pytest.raises(ValidationError, match="is not a weekday"):
        HolidayCalendar.from_dates(2026, [date(2026, 10, 3)], [], 1)  # a Saturday
    with pytest.raises(ValidationError, match="is not a Saturday or Sunday"):
        HolidayCalendar.from_dates(2026, [], [date(2026, 10, 8)], 1)  # a Thursday
    with pytest.raises(ValidationError, match="is not in 2026"):
        HolidayCalendar.from_dates(2026, [date(2025, 12, 31)], [], 1)
    with pytest.raises(ValidationError, match="strictly ascending"):
        HolidayCalendar(year=2026, holidays=(day_number(date(2026, 10, 2)), day_number(date(2026, 10, 1))),
                        occurred_at=1)
