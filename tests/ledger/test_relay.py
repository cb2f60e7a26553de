"""Relayed writes on both chains: signed records checked, stored, sent by a relayer key exactly once, in order; a
revert at relay time fails the submission with the decoded error; a relayer that dies mid-way resumes without a
second transaction."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from ledger.chain.contract import relay_typed_data
from ledger.errors import OutboxError
from ledger.records import CaseAction, Correction, HolidayCalendar, Retirement, short_code, text_hash
from ledger.relay.store import RelayStore
from ledger.relay.verify import (
    RELAY_TYPES,
    SECP256K1_N,
    RelayRefused,
    StaleNonce,
    check_signed_record,
    relay_types,
)
from ledger.relay.writer import RelayWriter
from ledger.writer.outbox import TxState
from tests.support.relay import signed, submit
from tests.support.world import World


@pytest.fixture
def store(world: World, relay_dir: Path):
    box = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    yield box
    box.close()


@pytest.fixture
def relay_writer(world: World, store: RelayStore):
    with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as w:
        yield w


def test_relay_types_are_those_of_the_typed_data_the_ledger_builds(world: World):
    records = {
        "PublishCommitment": world.commitment(),
        "RetireCommitment": Retirement(commitment_id=world.commitment_id, reason_hash=text_hash("x"), occurred_at=1),
        "RecordCaseEvent": world.opened("t"),
        "RecordCaseEvents": [world.opened("t")],
        "RecordCorrection": Correction(target_seq=0, reason_hash=text_hash("x"), occurred_at=1),
        "PublishHolidayCalendar": HolidayCalendar(year=2026, occurred_at=1),
    }
    assert set(records) == set(RELAY_TYPES)
    for primary, record in records.items():
        assert relay_types(primary) == relay_typed_data(world.ledger.domain(), record, b"\1" * 32, 0, 0)["types"]


def test_a_signature_is_checked_as_the_contract_checks_it(world: World):
    item = signed(world, world.signer, world.opened("sig"))
    assert item.signer == world.signer.address
    typed = world.ledger.typed_data(world.opened("sig"), item.nonce, item.deadline, item.agency_id)
    r, s, v = item.signature[:32], int.from_bytes(item.signature[32:64], "big"), item.signature[64]
    # v given as 0/1 (some wallets) is the same signature
    same = check_signed_record(typed, r + s.to_bytes(32, "big") + bytes([v - 27]), world.ledger.domain())
    assert same.signature == item.signature and same.key == item.key
    # the high-s twin recovers to the same key, but the contract (OpenZeppelin ECDSA) refuses it, so we do
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(RelayRefused) as refused:
        check_signed_record(typed, twin, world.ledger.domain())
    assert refused.value.code == "bad_signature"
    with pytest.raises(RelayRefused) as refused:
        check_signed_record(typed, item.signature, world.ledger.domain(), signer=world.other_signer.address)
    assert refused.value.code == "signer_mismatch"


def test_relayed_records_are_recorded_with_the_signer_as_actor(
    world: World, store: RelayStore, relay_writer: RelayWriter
):
    before = world.ledger.entry_count()
    now = world.now()
    single = signed(world, world.signer, world.opened("r1"))
    batch = signed(world, world.signer, [world.update("r1", CaseAction.ACCEPTED), world.opened("r2")],
                   nonce=single.nonce + 1)
    other = signed(world, world.other_signer,
                   HolidayCalendar.from_dates(2026, [date(2026, 10, 1)], [date(2026, 10, 10)], now))
    statuses = [submit(world, store, item) for item in (single, batch, other)]
    assert [s.state for s in statuses] == ["pending"] * 3
    relay_writer.flush()
    done = [store.status(s.key) for s in statuses]
    assert [s.state for s in done] == ["recorded"] * 3
    assert [s.seqs for s in done] == [(before,), (before + 1, before + 2), (before + 3,)]
    assert len({s.tx_hash for s in done}) == 3  # one transaction per signed record
    entries = world.ledger.entries()[before:]
    assert [e.actor for e in entries] == [world.signer.address] * 3 + [world.other_signer.address]
    assert world.relayer.address not in {e.actor for e in entries}
    assert world.ledger.nonce(world.signer.address) == single.nonce + 2


def test_the_nonce_must_be_the_next_one_counting_pending_submissions(world: World, store: RelayStore):
    first = signed(world, world.signer, world.opened("n1"))
    submit(world, store, first)
    again = signed(world, world.signer, world.opened("n2"))  # signed with the on-chain nonce, already taken
    with pytest.raises(StaleNonce) as stale:
        submit(world, store, again)
    assert stale.value.details["expected_nonce"] == first.nonce + 1
    assert store.next_nonce(world.signer.address, world.ledger.nonce(world.signer.address)) == (first.nonce + 1, 1)
    status, created = store.submit(first, world.agency_id, lambda: world.ledger.nonce(world.signer.address))
    assert not created and status.key == first.key  # the same signed message again: the same submission


def test_a_revert_at_relay_time_fails_the_submission_with_the_decoded_error(
    world: World, store: RelayStore, relay_writer: RelayWriter
):
    key = world.chain.new_account()
    world.ledger.authorize_signer(world.governance, world.agency_id, key.address)
    revoked = submit(world, store, signed(world, key, world.opened("rv")))
    # a batch whose second event the contract refuses fails whole: one signature covers it
    bad_batch = submit(world, store, signed(world, world.signer, [
        world.opened("ok"), world.opened("bad", commitment_id=short_code("NO-SUCH-COMMITMENT"))
    ]))
    world.ledger.revoke_signer(world.governance, key.address)  # between acceptance and relay
    before = world.ledger.entry_count()
    relay_writer.flush()
    failed = store.status(revoked.key)
    assert failed.state == "failed" and failed.error_name == "UnauthorizedSigner"
    batch = store.status(bad_batch.key)
    assert batch.state == "failed" and batch.error_name == "UnknownCommitment"
    assert world.ledger.entry_count() == before
    # a failed submission frees its nonce
    assert store.next_nonce(world.signer.address, world.ledger.nonce(world.signer.address))[1] == 0


@pytest.mark.parametrize("dies_at", ["sign", "broadcast", "queue"])
def test_a_relayer_that_dies_between_storing_and_sending_sends_once_after_restart(
    world: World, relay_dir: Path, monkeypatch: pytest.MonkeyPatch, dies_at: str
):
    before = world.ledger.entry_count()
    item = signed(world, world.signer, world.opened(f"crash-{dies_at}"))

    class Died(Exception):
        pass

    def die(*args, **kwargs):
        raise Died(dies_at)

    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    writer = RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01)
    if dies_at == "queue":  # stored the envelope, died before its entries reached the outbox
        monkeypatch.setattr(store, "_queue", die)
        with pytest.raises(Died):
            submit(world, store, item)
    else:
        submit(world, store, item)
        # "sign": before the transaction was signed; "broadcast": signed and stored, never sent
        monkeypatch.setattr(writer, "encode_unit" if dies_at == "sign" else "_broadcast", die)
        with pytest.raises(Died):
            writer.flush()
    assert world.ledger.entry_count() == before
    writer.close()
    store.close()

    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    try:
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as restarted:
            restarted.flush()
            restarted.flush()
            status = store.status(item.key)
            assert status is not None and status.state == "recorded"
            assert world.ledger.entry_count() == before + 1
            assert [e.actor for e in world.ledger.entries()[before:]] == [world.signer.address]
            txs = store.outbox.transactions()
            assert len(txs) == 1 and txs[0].state is TxState.MINED  # signed once, even when re-broadcast
            again, created = store.submit(item, world.agency_id, lambda: world.ledger.nonce(world.signer.address))
            assert not created and again.state == "recorded"
    finally:
        store.close()


def test_submissions_stored_by_another_process_are_relayed_by_the_one_holding_the_outbox(
    world: World, store: RelayStore, relay_dir: Path
):
    with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01, poll_interval=0.05) as writer:
        writer.start()
        other = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")  # as another worker process opens it
        try:
            with pytest.raises(OutboxError):  # one relay writer per outbox
                RelayWriter(world.ledger, world.relayer, other)
            status = submit(world, other, signed(world, world.signer, world.opened("elsewhere")))
            deadline = time.monotonic() + 20
            while other.status(status.key).state != "recorded":
                assert time.monotonic() < deadline, "not relayed"
                time.sleep(0.05)
        finally:
            other.close()
