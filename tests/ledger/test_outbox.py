"""The durable outbox: idempotent submission, records rebuilt exactly, atomic state changes that survive a crash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from eth_account import Account

from ledger.encoding import keccak
from ledger.errors import OutboxError
from ledger.records import (
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
    short_code,
    text_hash,
)
from ledger.writer.outbox import (
    SCHEMA_VERSION,
    Outbox,
    OutboxState,
    TxState,
    default_idempotency_key,
    record_from_json,
    record_json,
)

SIGNER = Account.create().address
T = 1_700_000_000


def opened(name: str, at: int = T) -> CaseEvent:
    return CaseEvent(
        case_id=keccak(name.encode()), action=CaseAction.OPENED, occurred_at=at,
        commitment_id=short_code("STREETLIGHT-48H"), district=short_code("PUDONG"), channel=2,
        details_hash=text_hash("details of " + name),
    )


def every_kind() -> list[Record]:
    return [
        Commitment(
            commitment_id=short_code("LICENCE-3WD"), service_code=short_code("LICENCE"), name_zh="营业执照办理",
            name_en="Business licence", deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS, target_bps=9000,
            valid_from=T, terms_hash=text_hash("terms"), occurred_at=T,
        ),
        Retirement(commitment_id=short_code("LICENCE-3WD"), reason_hash=text_hash("merged"), occurred_at=T),
        opened("a"),
        CaseEvent(case_id=keccak(b"a"), action=CaseAction.ON_HOLD, occurred_at=T + 5, details_hash=text_hash("docs")),
        Correction(target_seq=7, reason_hash=text_hash("typo"), occurred_at=T),
        HolidayCalendar.from_dates(2026, [date(2026, 1, 1), date(2026, 10, 1)], [date(2026, 10, 10)], T),
        Receipt(case_id=b"\x80" + b"\x01" * 31, receipt=Account.create().address, occurred_at=T),
    ]


def add(outbox: Outbox, record: Record, key: str | None = None):
    return outbox.add(record, key or default_idempotency_key(SIGNER, record))


@pytest.fixture
def outbox(tmp_path: Path):
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def test_records_round_trip_through_json_exactly():
    for record in every_kind():
        text = record_json(record)
        rebuilt = record_from_json(type(record).__name__, text)
        assert rebuilt == record
        assert rebuilt.struct_hash() == record.struct_hash()
    assert '"营业执照办理"' in record_json(every_kind()[0])  # stored readable, not escaped


def test_citizens_records_are_known_to_the_outbox_itself():
    """Ratings and disputes (relayed by ledger.relay) round-trip without any of ledger.relay (whose store registers
    them too) having been imported."""

    code = ("import ledger.writer.outbox as o, sys; sys.exit(0 if {'Rating', 'Dispute'} <= set(o.RECORD_TYPES) "
            "and not any(m.startswith('ledger.relay') for m in sys.modules) else 1)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    case = b"\x80" + b"\x02" * 31
    roads = short_code("ROADS")
    for record in (Rating(agency_id=roads, case_id=case, score=4, comment_hash=text_hash("quick")),
                   Dispute(agency_id=roads, case_id=case, closure=1, reason_hash=text_hash("still dark"))):
        rebuilt = record_from_json(type(record).__name__, record_json(record))
        assert rebuilt == record and rebuilt.struct_hash() == record.struct_hash()


def test_default_key_is_the_signer_kind_and_record():
    a, b = opened("a"), opened("b")
    assert default_idempotency_key(SIGNER, a) == default_idempotency_key(SIGNER, opened("a"))
    assert default_idempotency_key(SIGNER, a) != default_idempotency_key(SIGNER, b)
    assert default_idempotency_key(SIGNER, a) != default_idempotency_key(Account.create().address, a)
    expected = keccak(bytes.fromhex(SIGNER[2:]) + bytes([5]) + a.struct_hash())
    assert default_idempotency_key(SIGNER, a) == "0x" + expected.hex()


def test_adding_the_same_entry_twice_returns_the_first_row(outbox):
    first, created = add(outbox, opened("a"))
    again, created_again = add(outbox, opened("a"))
    assert created and not created_again
    assert again.id == first.id and again.state is OutboxState.PENDING
    assert outbox.counts()[OutboxState.PENDING] == 1
    # A key of the caller's own choosing works the same way.
    mine, _ = add(outbox, opened("b"), "agency-ticket-42")
    assert add(outbox, opened("b"), "agency-ticket-42")[0].id == mine.id


def test_a_key_reused_for_another_record_is_refused(outbox):
    add(outbox, opened("a"), "ticket-1")
    with pytest.raises(OutboxError, match="already used by outbox entry 1 for a different record"):
        add(outbox, opened("b"), "ticket-1")
    assert outbox.counts()[OutboxState.PENDING] == 1


def test_add_many_is_one_transaction(outbox):
    entries = [(opened(f"c{i}"), f"k{i}", None) for i in range(5)] + [(opened("x"), "k0", None)]
    with pytest.raises(OutboxError):
        outbox.add_many(entries)  # the last reuses k0 for another record: nothing of the call is kept
    assert outbox.max_id() == 0
    rows = outbox.add_many(entries[:5] + [(opened("c0"), "k0", None)])
    assert [created for _, created in rows] == [True] * 5 + [False]
    assert [item.id for item, _ in rows] == [1, 2, 3, 4, 5, 1]


def test_the_file_is_wal_and_survives_reopening(tmp_path):
    path = tmp_path / "sub" / "outbox.db"
    with Outbox(path) as box:
        item, _ = add(box, every_kind()[0])
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with Outbox(path, synchronous="NORMAL") as box:
        again = box.get(item.id)
        assert again is not None and again.record == every_kind()[0]
        assert box.get_by_key(item.idempotency_key) == again


def test_life_of_a_batch(outbox):
    items = [add(outbox, opened(f"c{i}"))[0] for i in range(3)]
    outbox.record_signed([i.id for i in items], tx_hash="0xaa", sender=SIGNER, nonce=7, raw=b"\x02signed")
    sent = outbox.items(OutboxState.SENT)
    assert [(i.tx_hash, i.tx_nonce) for i in sent] == [("0xaa", 7)] * 3
    tx = outbox.transaction("0xaa")
    assert tx is not None and (tx.raw, tx.nonce, tx.state, tx.entries) == (b"\x02signed", 7, TxState.SENT, 3)
    assert outbox.max_nonce(SIGNER) == 7 and outbox.max_nonce(Account.create().address) is None
    recorded = outbox.record_mined("0xaa", [10, 11, 12])
    assert [(i.id, i.state, i.seq) for i in recorded] == [(items[n].id, OutboxState.RECORDED, 10 + n) for n in range(3)]
    assert outbox.transaction("0xaa").state is TxState.MINED  # type: ignore[union-attr]
    # Resubmitting a recorded entry returns it, recorded.
    assert add(outbox, opened("c1"))[0].seq == 11


def test_signing_rows_that_are_not_pending_changes_nothing(outbox):
    a, _ = add(outbox, opened("a"))
    b, _ = add(outbox, opened("b"))
    outbox.record_signed([a.id], tx_hash="0x01", sender=SIGNER, nonce=0, raw=b"1")
    with pytest.raises(OutboxError, match="two writers"):
        outbox.record_signed([a.id, b.id], tx_hash="0x02", sender=SIGNER, nonce=1, raw=b"2")
    assert outbox.transaction("0x02") is None
    assert outbox.get(b.id).state is OutboxState.PENDING  # type: ignore[union-attr]


def test_a_mined_count_that_does_not_match_is_refused(outbox):
    a, _ = add(outbox, opened("a"))
    outbox.record_signed([a.id], tx_hash="0x01", sender=SIGNER, nonce=0, raw=b"1")
    with pytest.raises(OutboxError, match="recorded 2 entries but carries 1"):
        outbox.record_mined("0x01", [1, 2])
    assert outbox.get(a.id).state is OutboxState.SENT  # type: ignore[union-attr]


def test_reverted_transactions_requeue_until_attempts_run_out(outbox):
    a, _ = add(outbox, opened("a"))
    for attempt in (1, 2):
        outbox.record_signed([a.id], tx_hash=f"0x{attempt:02x}", sender=SIGNER, nonce=attempt, raw=b"r")
        (row,) = outbox.record_tx_failed(f"0x{attempt:02x}", TxState.REVERTED, "reverted", requeue=True, max_attempts=2)
        assert row.attempts == attempt
    assert row.state is OutboxState.FAILED and row.error == "reverted"
    assert outbox.transaction("0x01").state is TxState.REVERTED  # type: ignore[union-attr]
    assert outbox.requeue([a.id]) == 1
    again = outbox.get(a.id)
    assert again is not None and again.state is OutboxState.PENDING and again.attempts == 0 and again.error is None


def test_failed_dropped_reopened_and_pruned(outbox):
    a, _ = add(outbox, opened("a"))
    b, _ = add(outbox, opened("b"))
    c, _ = add(outbox, opened("c"))
    (failed,) = outbox.record_failed([a.id], "contract reverted with X()", revert_data="0x12345678")
    assert (failed.state, failed.revert_data) == (OutboxState.FAILED, "0x12345678")
    outbox.record_signed([b.id], tx_hash="0x0b", sender=SIGNER, nonce=0, raw=b"b")
    (dropped,) = outbox.record_tx_failed("0x0b", TxState.DROPPED, "nonce taken")
    assert dropped.state is OutboxState.FAILED
    assert outbox.transaction("0x0b").state is TxState.DROPPED  # type: ignore[union-attr]
    outbox.record_signed([c.id], tx_hash="0x0c", sender=SIGNER, nonce=1, raw=b"c")
    outbox.record_mined("0x0c", [3])
    outbox.reopen("0x0c")  # the node lost the block
    row = outbox.get(c.id)
    assert row is not None and (row.state, row.seq) == (OutboxState.SENT, None)
    assert outbox.transactions(state=TxState.SENT)[0].tx_hash == "0x0c"
    outbox.record_mined("0x0c", [3])
    assert outbox.prune(before=0) == 0
    assert outbox.prune(before=row.updated_at + 10**6) == 1
    assert outbox.get(c.id) is None and outbox.transaction("0x0c") is None
    assert outbox.counts() == {OutboxState.PENDING: 0, OutboxState.SENT: 0, OutboxState.RECORDED: 0,
                               OutboxState.FAILED: 2}


def test_concurrent_submitters_get_one_row_per_entry(outbox):
    records = [opened(f"c{i}") for i in range(40)]

    def submit() -> None:
        for record in records:
            add(outbox, record)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outbox.counts()[OutboxState.PENDING] == 40
    assert {item.record for item in outbox.pending()} == set(records)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(OutboxError, match="schema version 99"):
        Outbox(path)


def test_an_older_schema_is_upgraded_in_place(tmp_path):
    """Version 1 had no receipt_cases; its openings whose id has the top bit set (a bare HMAC, from before receipts)
    are remembered on upgrade, so their later events keep that id."""
    path = tmp_path / "outbox.db"
    legacy = [opened(f"legacy-{i}") for i in range(8)]
    with Outbox(path) as box:
        items = [add(box, event)[0] for event in legacy]
        add(box, CaseEvent(case_id=legacy[0].case_id, action=CaseAction.ACCEPTED, occurred_at=T))
        box.record_failed([items[-1].id], "refused")
    db = sqlite3.connect(path)  # as version 1 left it: no receipt_cases
    db.execute("DROP TABLE receipt_cases")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Outbox(path) as box:
        assert box.get(items[0].id) is not None
        for item, event in zip(items, legacy, strict=True):
            expected = bool(event.case_id[0] & 0x80) and item is not items[-1]
            assert box.opened_with_receipt(event.case_id) is expected
        assert any(e.case_id[0] & 0x80 for e in legacy[:-1]) and any(not e.case_id[0] & 0x80 for e in legacy)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def flagged_opened(name: str) -> CaseEvent:
    event = opened(name)
    return event.model_copy(update={"case_id": bytes([event.case_id[0] | 0x80]) + event.case_id[1:]})


def test_cases_opened_with_a_receipt_are_remembered_by_case_id(outbox):
    event = flagged_opened("r")
    receipt = Receipt(case_id=event.case_id, receipt=Account.create().address, occurred_at=T)
    (o, _), (r, _) = outbox.add_many([(event, default_idempotency_key(SIGNER, event), None),
                                      (receipt, default_idempotency_key(SIGNER, receipt), None)])
    found = outbox.receipt_case(event.case_id)
    assert found is not None and (found.opened_id, found.receipt_id) == (o.id, r.id)
    assert found.opened and found.has_receipt and outbox.opened_with_receipt(event.case_id)
    # a plain opening, or a flagged id nobody opened, is not remembered
    plain = opened("p")
    add(outbox, plain.model_copy(update={"case_id": bytes([plain.case_id[0] & 0x7F]) + plain.case_id[1:]}))
    assert outbox.receipt_case(bytes([plain.case_id[0] | 0x80]) + plain.case_id[1:]) is None
    # the memory outlives the rows once they are recorded and pruned
    outbox.record_signed([o.id, r.id], tx_hash="0x0a", sender=SIGNER, nonce=0, raw=b"a")
    outbox.record_mined("0x0a", [1, 2])
    assert outbox.prune(before=10**12) == 2
    found = outbox.receipt_case(event.case_id)
    assert found is not None and (found.opened_id, found.receipt_id) == (None, None)
    assert outbox.opened_with_receipt(event.case_id)


def test_a_refused_opening_is_forgotten_and_replaced(outbox):
    event = flagged_opened("x")
    first, _ = add(outbox, event)
    outbox.record_failed([first.id], "UnknownCommitment")
    assert not outbox.opened_with_receipt(event.case_id)
    again = event.model_copy(update={"occurred_at": T + 60})
    second, _ = add(outbox, again)
    found = outbox.receipt_case(event.case_id)
    assert found is not None and found.opened_id == second.id and outbox.opened_with_receipt(event.case_id)
    # a second live receipt does not replace the first (the ledger refuses it)
    r1, _ = add(outbox, Receipt(case_id=event.case_id, receipt=Account.create().address, occurred_at=T))
    add(outbox, Receipt(case_id=event.case_id, receipt=Account.create().address, occurred_at=T))
    assert outbox.receipt_case(event.case_id).receipt_id == r1.id  # type: ignore[union-attr]


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(path)


def test_a_process_killed_inside_a_state_change_leaves_it_undone(tmp_path):
    """SIGKILL half way through signing a batch (transaction row stored, entry rows half updated): nothing of it
    is visible afterwards."""
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        ids = [add(box, opened(f"c{i}"))[0].id for i in range(4)]
    script = f"""
import os, signal
from ledger.writer.outbox import Outbox
box = Outbox({str(path)!r})
with box._transaction() as db:
    db.execute("INSERT INTO transactions (tx_hash, sender, nonce, raw, state, created_at, updated_at) "
               "VALUES ('0xdead', 'x', 0, x'00', 'sent', 0, 0)")
    db.execute("UPDATE entries SET state = 'sent', tx_hash = '0xdead' WHERE id IN (1, 2)")
    os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == -9
    with Outbox(path) as box:
        assert box.transaction("0xdead") is None
        assert [item.state for item in box.items(ids=ids)] == [OutboxState.PENDING] * 4


def test_rows_found_on_chain_are_recorded_with_the_transaction_that_put_them_there(outbox: Outbox):
    """A copy of a relayed record was mined before ours: its rows are recorded with that transaction (stored as
    mined, never ours to broadcast), in row order; rows already settled are not touched."""
    first, _ = add(outbox, opened("copied-1"))
    second, _ = add(outbox, opened("copied-2"))
    copier = Account.create().address
    tx_hash = "0x" + "ab" * 32
    done = outbox.record_found([first.id, second.id], tx_hash=tx_hash, sender=copier, nonce=7, seqs=[40, 41])
    assert [(i.state, i.tx_hash, i.seq) for i in done] == [(OutboxState.RECORDED, tx_hash, 40),
                                                            (OutboxState.RECORDED, tx_hash, 41)]
    assert [i.id for i in outbox.tx_items(tx_hash)] == [first.id, second.id]
    [tx] = outbox.transactions(sender=copier)
    assert tx.state is TxState.MINED and tx.nonce == 7 and tx.raw == b""
    assert outbox.transactions(state=TxState.SENT) == []  # nothing for recovery to broadcast
    with pytest.raises(OutboxError):  # recorded already: changed under the writer
        outbox.record_found([first.id], tx_hash="0x" + "cd" * 32, sender=copier, nonce=8, seqs=[50])
    with pytest.raises(OutboxError):
        outbox.record_found([first.id, second.id], tx_hash=tx_hash, sender=copier, nonce=7, seqs=[40])
