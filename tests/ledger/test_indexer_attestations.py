"""Auditors and their attestations in the index: the ``auditors`` and ``attestations`` rows, each attestation's
``matches_ledger`` (true for an honest checkpoint, false for every way a registered auditor can sign one the ledger
never had: the contract checks the signature and the block, not the running hash), revocation and registration again,
reorganisations, an agency's correction aimed at an attestation (never applied), and the migration that adds the
tables to a store indexed before them. On an anvil of this module's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from eth_account.signers.local import LocalAccount

from ledger.batches import BatchStore, anchor, build_batch
from ledger.cases import voided_entries
from ledger.chain.contract import Chain
from ledger.encoding import ZERO32, keccak
from ledger.records import Attestation, AuditVerdict, Correction, EntryKind, text_hash
from ledger.store.db import Store, alembic_config, head_revision, open_store
from ledger.store.schema import NO_AGENCY
from tests.support.attestations import checkpoint
from tests.support.indexing import head, index, mine
from tests.support.scenario import Scenario, write_everything
from tests.support.world import World, build_world


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


def rows(store: Store, table: str, order: str = "seq") -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}").mappings()]


def register(world: World) -> LocalAccount:
    auditor = world.chain.new_account()
    world.ledger.authorize_auditor(world.governance, auditor.address)
    return auditor


def attest(world: World, auditor: LocalAccount, attestation: Attestation) -> int:
    """Record `auditor`'s signed `attestation` through the relayer; its seq."""
    ledger = world.ledger
    ledger.record_attestation(world.relayer, attestation, auditor.address,
                              ledger.sign_attestation(auditor.key, attestation))
    return ledger.entry_count() - 1


def matches(store: Store) -> dict[int, bool | None]:
    return {r["seq"]: r["matches_ledger"] for r in rows(store, "attestations")}


# --------------------------------------------------------------------------------------------------- the rows


def test_auditors_and_attestations_are_indexed_as_entries_of_no_agency(world: World, store_url: str) -> None:
    s: Scenario = write_everything(world)
    store = open_store(store_url)
    try:
        index(world, store).sync()
        entries = {r["seq"]: r for r in rows(store, "entries")}
        assert len(entries) == world.ledger.entry_count()
        logged = {e.seq: e for e in world.ledger.entries()}
        for name, kind in (("auditor", EntryKind.AUDITOR_AUTHORIZED), ("attested", EntryKind.AUDIT_ATTESTED),
                           ("auditor revoked", EntryKind.AUDITOR_REVOKED)):
            entry = entries[s.seqs[name]]
            assert (entry["kind"], entry["agency_id"], entry["occurred_at"]) == (kind, NO_AGENCY, None)
            assert logged[s.seqs[name]].agency_id == ZERO32
        assert entries[s.seqs["auditor"]]["actor"] == world.governance.address

        attested = logged[s.seqs["attested"]]
        auditor = attested.actor
        assert entries[s.seqs["attested"]]["actor"] == auditor
        gone = logged[s.seqs["auditor revoked"]].record.auditor
        assert rows(store, "auditors") == [
            {"seq": s.seqs["auditor"], "auditor": auditor, "revoked_seq": None},
            {"seq": s.seqs["auditor gone"], "auditor": gone, "revoked_seq": s.seqs["auditor revoked"]},
        ]
        [row] = rows(store, "attestations")
        record = attested.record
        assert {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()} == {
            "seq": s.seqs["attested"], "auditor": auditor, "block_number": record.block_number,
            "block_hash": record.block_hash, "entry_count": record.entry_count, "running_hash": record.running_hash,
            "report_hash": record.report_hash, "verdict": AuditVerdict.PASSED, "findings": 0,
            "recorded_block": attested.block_number, "recorded_at": entries[s.seqs["attested"]]["block_time"],
            "tx_hash": attested.transaction_hash, "matches_ledger": True,
        }
    finally:
        store.close()


def test_a_checkpoint_the_ledger_never_had_does_not_match(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """A registered auditor may sign any running hash and any count up to the ledger's: the index says which
    checkpoints are the ledger's — honest ones match, after a single entry or a Merkle-anchored batch (withheld or
    not); a wrong running hash, a count the ledger had at an earlier block, and a count inside a batch do not."""
    ledger = world.ledger
    auditors = [register(world) for _ in range(6)]
    seen: dict[str, int] = {}
    seen["honest"] = attest(world, auditors[0], checkpoint(world))
    seen["lying"] = attest(world, auditors[1], checkpoint(world, running_hash=keccak(b"a ledger of my own")[:24]))
    earlier = head(world) - 5
    ledger.write(world.signer, world.opened("after the earlier block"))
    # the count and running hash the ledger had at an earlier block, claimed for a later one
    seen["stale"] = attest(world, auditors[2], checkpoint(world, entry_count=ledger.entry_count(earlier),
                                                         running_hash=ledger.running_hash(earlier)))
    files = BatchStore(tmp_path / "batches")
    anchored = anchor(ledger, world.signer, build_batch([world.opened(f"batched {i}") for i in range(5)]), files)
    seen["after batch"] = attest(world, auditors[3], checkpoint(world))
    assert checkpoint(world).entry_count == anchored.seq + 5
    inside = checkpoint(world, entry_count=anchored.seq + 2)
    seen["inside batch"] = attest(world, auditors[4], inside)
    seen["failed"] = attest(world, auditors[5], checkpoint(world, verdict=AuditVerdict.FAILED, findings=3))

    want = {seen["honest"]: True, seen["lying"]: False, seen["stale"]: False, seen["after batch"]: True,
            seen["inside batch"]: False, seen["failed"]: True}
    with_files = stores()
    index(world, with_files, batch_dir=files.directory).sync()
    assert matches(with_files) == want
    withheld = stores()  # no batch directory: the batch is withheld, its head is still known
    index(world, withheld).sync()
    assert matches(withheld) == want
    # synced a block at a time, each attestation decided in its own range: the same
    stepwise = stores()
    indexer = index(world, stepwise, max_block_range=1, batch_dir=files.directory)
    indexer.sync()
    assert matches(stepwise) == want
    assert {r["seq"]: r["verdict"] for r in rows(stepwise, "attestations")}[seen["failed"]] == AuditVerdict.FAILED


def test_an_agency_cannot_void_an_attestation(world: World, stores: Callable[..., Store]) -> None:
    """The contract records a correction aimed at any earlier seq; it applies only to the agency's own entries, and
    the auditors' have no agency: the index and the auditors' rule (``ledger.cases.voided_entries``) agree."""
    auditor = register(world)
    attested = attest(world, auditor, checkpoint(world))
    registration = attested - 1
    for target in (attested, registration):
        world.ledger.write(world.signer, Correction(target_seq=target, reason_hash=text_hash("we disagree"),
                                                    occurred_at=world.now()))
    store = stores()
    index(world, store).sync()
    assert [r["applied"] for r in rows(store, "corrections")] == [False, False]
    entries = {r["seq"]: r for r in rows(store, "entries")}
    assert entries[attested]["voided_by"] is None and entries[registration]["voided_by"] is None
    assert matches(store) == {attested: True}
    log = world.ledger.entries()
    assert voided_entries(
        (e.seq, e.agency_id, e.record.target_seq if e.kind == EntryKind.CORRECTION else None, e.kind,
         e.record.action if e.kind == EntryKind.CASE_EVENT else None) for e in log
    ) == {}


def test_revocation_and_registration_again(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    indexer = index(world, store)
    auditor = register(world)
    first = world.ledger.entry_count() - 1
    attested = attest(world, auditor, checkpoint(world))
    indexer.sync()
    world.ledger.revoke_auditor(world.governance, auditor.address)
    revoked = world.ledger.entry_count() - 1
    indexer.sync()
    assert rows(store, "auditors") == [{"seq": first, "auditor": auditor.address, "revoked_seq": revoked}]
    world.ledger.authorize_auditor(world.governance, auditor.address)
    again = world.ledger.entry_count() - 1
    indexer.sync()
    assert rows(store, "auditors") == [
        {"seq": first, "auditor": auditor.address, "revoked_seq": revoked},
        {"seq": again, "auditor": auditor.address, "revoked_seq": None},
    ]
    assert matches(store) == {attested: True}  # a revoked auditor's attestations stay
    fresh = stores()
    index(world, fresh).sync(to_block=indexer.last_block())
    assert fresh.dump() == store.dump()


def test_a_reorganisation_takes_back_auditor_changes_and_attestations(
    world: World, stores: Callable[..., Store]
) -> None:
    store = stores()
    indexer = index(world, store, confirmations=20)
    auditor = register(world)
    attest(world, auditor, checkpoint(world))
    mine(world, 20)
    indexer.sync()
    settled = store.dump()
    snapshot = world.chain.snapshot()
    # orphaned to be: the auditor revoked and registered again, a new auditor and its attestation, a lying one
    world.ledger.revoke_auditor(world.governance, auditor.address)
    world.ledger.authorize_auditor(world.governance, auditor.address)
    other = register(world)
    attest(world, other, checkpoint(world))
    attest(world, auditor, checkpoint(world, running_hash=b"\1" * 24))
    indexer.sync()
    orphaned = store.dump()
    assert len(orphaned["auditors"]) == 3 and len(orphaned["attestations"]) == 3
    assert [row[2] for row in orphaned["auditors"]][0] is not None  # the first registration was revoked
    world.chain.revert(snapshot)
    world.ledger.write(world.signer, world.opened("the winning branch"))
    mine(world, 25)
    report = indexer.sync()
    assert report.reorgs == 1
    rebuilt = store.dump()
    assert rebuilt["auditors"] == settled["auditors"] and rebuilt["attestations"] == settled["attestations"]
    fresh = stores()
    index(world, fresh, confirmations=20).sync(to_block=report.to_block)
    assert rebuilt == fresh.dump()


# ---------------------------------------------------------------------------------------------- the migration


def _downgrade(store: Store, revision: str) -> None:
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_a_store_that_indexed_auditor_entries_before_their_tables_is_indexed_again(
    world: World, store_url: str, stores: Callable[..., Store]
) -> None:
    """Revision 0006 cannot rebuild the auditors' rows from entries indexed without them: it empties such a store
    and the next sync indexes everything again; a store without auditor entries keeps its rows."""
    plain = stores()
    index(world, plain).sync()
    before = plain.dump()
    _downgrade(plain, "0005")
    plain.close()
    again = stores(plain.url)
    assert again.revision() == head_revision() and again.dump() == before  # nothing to redo

    auditor = register(world)
    attest(world, auditor, checkpoint(world))
    store = stores(store_url)
    top = index(world, store).sync().to_block
    full = store.dump()
    _downgrade(store, "0005")  # as a store synced by the version before 0006 would be: entries, no auditor rows
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM entries WHERE kind = 14").scalar() == 1
    store.close()
    migrated = stores(store_url)
    assert migrated.revision() == head_revision()
    emptied = migrated.dump()
    assert all(emptied[table] == [] for table in emptied if table != "sync_state")
    [state] = rows(migrated, "sync_state", order="contract_address")
    assert (state["last_block"], state["entry_count"], state["finalized_block"]) == (state["deploy_block"] - 1, 0, -1)
    index(world, migrated).sync(to_block=top)
    assert migrated.dump() == full
