"""The writer's planner on its own (``ledger.writer.planner``): which rows go now, how they group into transactions
within the limits, each unit's calldata, and how a refused unit is split. Pure functions on plain rows: no chain, no
outbox, no node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from eth_hash.auto import keccak

from ledger.records import CaseAction, CaseEvent, Correction, Receipt, Record, short_code
from ledger.writer.planner import (
    MAX_BATCH,
    MAX_CALLDATA,
    encode_receipts,
    encode_records,
    plan_units,
    ready_prefix,
    split_unit,
)

NOW = 1_700_000_000


@dataclass(frozen=True)
class Row:
    """An outbox row as the planner sees it (``ledger.writer.outbox.OutboxItem`` has these and more)."""

    id: int
    record_type: str
    created_at: float = NOW


def case(name: str, *, receipt: bool = False) -> bytes:
    digest = keccak(b"case:" + name.encode())
    return bytes([digest[0] | 0x80]) + digest[1:] if receipt else bytes([digest[0] & 0x7F]) + digest[1:]


def opened(name: str, *, receipt: bool = False, at: int = NOW) -> CaseEvent:
    return CaseEvent(case_id=case(name, receipt=receipt), action=CaseAction.OPENED, occurred_at=at,
                     commitment_id=short_code("C1"), district=short_code("EAST"), channel=2)


def fulfilled(name: str, *, receipt: bool = False, at: int = NOW) -> CaseEvent:
    return CaseEvent(case_id=case(name, receipt=receipt), action=CaseAction.FULFILLED, occurred_at=at)


def receipt(name: str, n: int = 1, *, at: int = NOW) -> Receipt:
    return Receipt(case_id=case(name, receipt=True), receipt="0x" + f"{n:040x}", occurred_at=at)


def correction(at: int = NOW) -> Correction:
    return Correction(target_seq=1, reason_hash=keccak(b"typo"), occurred_at=at)


def rows_of(records: Sequence[Record], *, created_at: float = NOW) -> tuple[list[Row], dict[int, Record]]:
    rows = [Row(i + 1, type(r).__name__, created_at) for i, r in enumerate(records)]
    return rows, {row.id: r for row, r in zip(rows, records, strict=True)}


def ids(units: list[list[Row]]) -> list[list[int]]:
    return [[row.id for row in unit] for unit in units]


def plan(records: Sequence[Record], batch_size: int = 500) -> list[list[int]]:
    rows, by_id = rows_of(records)
    return ids(plan_units(rows, lambda row: by_id[row.id], batch_size))


# ---------------------------------------------------------------------- limits


def test_a_full_batch_of_case_events_fits_the_calldata_limit():
    # selector, array offset and length, then seven words per event
    assert 4 + 64 + 7 * 32 * MAX_BATCH <= MAX_CALLDATA < 4 + 64 + 7 * 32 * (MAX_BATCH + 1)
    assert MAX_CALLDATA < 128 * 1024  # the pools' limit


# ---------------------------------------------------------------------- grouping


def test_consecutive_case_events_share_batches_of_batch_size():
    assert plan([opened(f"c{i}") for i in range(7)], batch_size=3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert plan([opened(f"c{i}") for i in range(6)], batch_size=3) == [[1, 2, 3], [4, 5, 6]]
    assert plan([opened("only")], batch_size=1) == [[1]]


def test_any_other_record_is_a_transaction_of_its_own_and_ends_the_run():
    records = [opened("a"), opened("b"), correction(), correction(), opened("c")]
    assert plan(records) == [[1, 2], [3], [4], [5]]


def test_nothing_to_plan():
    assert plan([]) == []


def test_receipts_follow_the_case_events_of_their_run():
    records = [opened("a", receipt=True), receipt("a"), opened("b", receipt=True), receipt("b", 2), opened("plain")]
    # events 1, 3, 5 in one batch; the receipts right after it, in one issueReceipts batch
    assert plan(records) == [[1, 3, 5], [2, 4]]


def test_a_receipt_never_moves_past_a_later_event_of_its_case():
    records = [
        opened("a", receipt=True), receipt("a"),
        opened("b", receipt=True), receipt("b", 2),
        fulfilled("a", receipt=True),  # must not overtake a's receipt
        opened("plain"),
    ]
    assert plan(records) == [[1, 3], [2, 4], [5, 6]]


def test_a_later_event_of_another_case_does_not_end_the_run():
    records = [opened("a", receipt=True), receipt("a"), fulfilled("other"), opened("b")]
    assert plan(records) == [[1, 3, 4], [2]]


def test_receipts_go_right_after_the_batch_that_fills_up():
    records = [opened("a", receipt=True), receipt("a"), opened("b", receipt=True), opened("c"), opened("d")]
    # the batch of two fills at "b": a's receipt goes next, and "c", "d" start a new run
    assert plan(records, batch_size=2) == [[1, 3], [2], [4, 5]]


def test_a_full_batch_of_receipts_ends_the_run():
    records = [opened(f"r{i}", receipt=True) for i in range(3)] + [receipt(f"r{i}", i + 1) for i in range(3)]
    records.append(opened("later"))
    # r2's receipt waits in the next run, and goes after the event that follows it (not one of its case)
    assert plan(records, batch_size=2) == [[1, 2], [3], [4, 5], [7], [6]]


def test_a_receipt_before_another_record_is_sent_before_it():
    records = [opened("a", receipt=True), receipt("a"), correction()]
    assert plan(records) == [[1], [2], [3]]


def test_records_are_read_only_when_receipts_need_them():
    asked: list[int] = []
    records = [opened(f"c{i}") for i in range(4)] + [correction()]
    rows, by_id = rows_of(records)

    def record_of(row: Row) -> Record:
        asked.append(row.id)
        return by_id[row.id]

    assert ids(plan_units(rows, record_of, 500)) == [[1, 2, 3, 4], [5]]
    assert asked == []  # grouping plain events needs only the record type

    rows, by_id = rows_of([opened("a", receipt=True), receipt("a"), opened("b")])
    plan_units(rows, record_of, 500)
    assert asked == [2, 3]  # the receipt, and the event after it (it might be a later event of the receipt's case)


# ---------------------------------------------------------------------- ready rows


def test_rows_wait_from_the_first_one_stamped_after_the_latest_block():
    records = [opened("a", at=NOW - 5), opened("b", at=NOW + 2), opened("c", at=NOW - 5)]
    rows, by_id = rows_of(records, created_at=NOW)
    ready = ready_prefix(rows, by_id, block_time=NOW, now=NOW, max_clock_skew=60, max_hold=300)
    assert [r.id for r in ready] == [1]  # "c" waits behind "b", keeping submission order
    later_block = ready_prefix(rows, by_id, block_time=NOW + 2, now=NOW + 2, max_clock_skew=60, max_hold=300)
    assert [r.id for r in later_block] == [1, 2, 3]


def test_a_row_too_far_in_the_future_or_held_too_long_is_sent_for_the_contract_to_refuse():
    rows, by_id = rows_of([opened("far", at=NOW + 61)], created_at=NOW)
    assert ready_prefix(rows, by_id, block_time=NOW, now=NOW, max_clock_skew=60, max_hold=300) == rows
    rows, by_id = rows_of([opened("held", at=NOW + 10)], created_at=NOW - 300)
    assert ready_prefix(rows, by_id, block_time=NOW, now=NOW, max_clock_skew=60, max_hold=300) == rows
    rows, by_id = rows_of([opened("held", at=NOW + 10)], created_at=NOW - 299)
    assert ready_prefix(rows, by_id, block_time=NOW, now=NOW, max_clock_skew=60, max_hold=300) == []


def test_ready_prefix_of_nothing():
    assert ready_prefix([], {}, block_time=NOW, now=NOW, max_clock_skew=60, max_hold=300) == []


# ---------------------------------------------------------------------- calldata


class FakeEncoder:
    """Stands for ``Ledger``'s ABI encoding of the direct calls; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def encode_write(self, record: Record) -> bytes:
        self.calls.append(("write", 1))
        return b"write:" + type(record).__name__.encode()

    def encode_batch(self, events: Sequence[CaseEvent]) -> bytes:
        self.calls.append(("batch", len(events)))
        return b"batch"


def test_issue_receipts_calldata_is_the_selector_then_three_words_per_receipt():
    batch = [receipt("a", 1, at=NOW), receipt("b", 0xBEEF, at=NOW + 1)]
    data = encode_receipts(batch)
    assert data[:4] == keccak(b"issueReceipts((bytes32,address,uint64)[])")[:4]
    assert len(data) == 4 + 64 + 3 * 32 * len(batch)
    assert int.from_bytes(data[4:36], "big") == 32 and int.from_bytes(data[36:68], "big") == 2
    second = data[68 + 96 : 68 + 192]
    assert second[:32] == case("b", receipt=True)
    assert int.from_bytes(second[32:64], "big") == 0xBEEF
    assert int.from_bytes(second[64:96], "big") == NOW + 1


def test_a_unit_is_encoded_by_its_kind_and_size():
    encoder = FakeEncoder()
    assert encode_records([correction()], encoder) == b"write:Correction"
    assert encode_records([opened("a")], encoder) == b"write:CaseEvent"
    assert encode_records([receipt("a")], encoder) == b"write:Receipt"  # one receipt: its own direct call
    assert encode_records([opened("a"), opened("b"), opened("c")], encoder) == b"batch"
    assert encoder.calls == [("write", 1), ("write", 1), ("write", 1), ("batch", 3)]
    receipts = [receipt("a"), receipt("b", 2)]
    assert encode_records(receipts, encoder) == encode_receipts(receipts)
    assert len(encoder.calls) == 4  # receipts are encoded here, not by the contract wrapper


# ---------------------------------------------------------------------- splitting


@pytest.mark.parametrize("size", [2, 3, 7, 500])
def test_a_refused_unit_splits_into_two_halves_in_order(size: int):
    items = list(range(size))
    records = [f"r{i}" for i in items]
    (first, first_records), (second, second_records) = split_unit(items, records)
    assert first + second == items and first_records + second_records == records
    assert len(first) == size // 2 and len(second) == size - size // 2
    assert first_records == [f"r{i}" for i in first]  # rows keep their own records


def test_halving_isolates_the_bad_entries():
    bad = {5, 17}
    sent: list[list[int]] = []
    refused: list[int] = []

    def send(items: list[int], records: list[int]) -> None:  # what Writer._send_unit does with a revert
        if not bad & set(items):
            sent.append(items)
        elif len(items) > 1:
            for part, part_records in split_unit(items, records):
                send(part, part_records)
        else:
            refused.extend(items)

    units = list(range(20))
    send(units, units)
    assert refused == sorted(bad)
    assert sorted(i for unit in sent for i in unit) == sorted(set(units) - bad)
    assert len(sent) < 10  # a few halvings, not one transaction per entry
