"""Merkle-anchored batches (``ledger.batches`` and ``CivicLedger.anchorBatch``), on both backends.

The tree is OpenZeppelin's standard Merkle tree; ``test_tree_matches_openzeppelin_merkle_tree`` rebuilds it with
the ``@openzeppelin/merkle-tree`` JavaScript library itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ledger import batches
from ledger.batches import BatchStore, MerkleTree, build_batch, parse_batch_file, rebuild, verify_proof
from ledger.encoding import keccak, running_hash
from ledger.errors import ContractReverted, InvalidRecord, LedgerError
from ledger.records import (
    BatchAnchor,
    CaseAction,
    CaseEvent,
    EntryKind,
    short_code,
    text_hash,
)
from tests.support.world import World, case_id

ROOT = Path(__file__).resolve().parents[2]


def events(world: World, n: int, prefix: str = "b") -> list:
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(world.opened(f"{prefix}{i}"))
        else:
            out.append(world.update(f"{prefix}{i - i % 3}", CaseAction.ACCEPTED if i % 3 == 1 else CaseAction.FULFILLED,
                                    details_hash=text_hash(f"d{i}")))
    return out


def test_record_hashes_and_file_round_trip(world: World) -> None:
    batch = build_batch(events(world, 30))
    assert list(batch.record_hashes) == [e.struct_hash() for e in batch.events]
    assert parse_batch_file(batch.content) == list(batch.events)
    assert rebuild(batch.content).root == batch.root
    assert batch.file_hash == keccak(batch.content)


def test_every_proof_checks_off_chain_and_on_chain(world: World, tmp_path: Path) -> None:
    batch = build_batch(events(world, 37))
    before_count, before_head = world.ledger.entry_count(), world.ledger.running_hash()
    anchored = batches.anchor(world.ledger, world.signer, batch, BatchStore(tmp_path))
    assert anchored.seq == before_count
    assert world.ledger.entry_count() == before_count + 37
    for i, record in enumerate(batch.record_hashes):
        proof = batch.proof(i)
        assert verify_proof(batch.root, i, record, proof)
        assert world.ledger.verify_batch_entry(anchored.seq, i, record, proof)
        # the same proof for another position, another record or another batch start does not hold
        assert not verify_proof(batch.root, (i + 1) % 37, record, proof)
        assert not world.ledger.verify_batch_entry(anchored.seq, i, keccak(record), proof)
    assert not world.ledger.verify_batch_entry(anchored.seq + 1, 0, batch.record_hashes[0], batch.proof(0))
    # the running hash advanced once, over the batch's entry
    entry = world.ledger.entries()[-1]
    assert entry.kind is EntryKind.BATCH_ANCHORED and entry.seq == anchored.seq
    assert entry.record == BatchAnchor(root=batch.root, count=37, file_hash=batch.file_hash)
    assert entry.record_hash == batches.batch_hash(batch.root, 37, batch.file_hash)
    assert world.ledger.running_hash() == running_hash([entry.entry_hash], before_head)


def test_anchoring_twice_the_same_file_anchors_once(world: World, tmp_path: Path) -> None:
    batch = build_batch(events(world, 5))
    store = BatchStore(tmp_path)
    first = batches.anchor(world.ledger, world.signer, batch, store)
    count = world.ledger.entry_count()
    assert batches.anchor(world.ledger, world.signer, batch, store) == first
    assert world.ledger.entry_count() == count
    assert store.get(batch.file_hash) == batch.content


def test_a_single_entry_batch_and_a_power_of_two_batch(world: World) -> None:
    for n in (1, 2, 16, 17):
        batch = build_batch(events(world, n, f"p{n}-"))
        for i in range(n):
            assert verify_proof(batch.root, i, batch.record_hashes[i], batch.proof(i))
    assert build_batch(events(world, 1)).proof(0) == []


def test_the_contract_refuses_malformed_or_unauthorised_batches(world: World) -> None:
    batch = build_batch(events(world, 3))
    for root, count, file_hash in ((b"\0" * 32, 3, batch.file_hash), (batch.root, 0, batch.file_hash),
                                   (batch.root, 3, b"\0" * 32)):
        with pytest.raises(ContractReverted) as info:
            world.ledger.anchor_batch(world.signer, root, count, file_hash)
        assert info.value.error_name == "InvalidBatch"
    with pytest.raises(ContractReverted) as info:
        world.ledger.anchor_batch(world.relayer, batch.root, 3, batch.file_hash)
    assert info.value.error_name == "UnauthorizedSigner"
    with pytest.raises(LedgerError, match="not an authorised agency key"):
        batches.anchor(world.ledger, world.relayer, batch, BatchStore(Path("/nonexistent-never-written")))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.replace(b"index,", b"idx,", 1), "header"),
        (lambda c: c[:-1], "line end"),
        (lambda c: c.replace(b"\n1,", b"\n7,", 1), "index must be 1"),
        (lambda c: c.replace(b",1,", b",99,", 1), "not a well-formed case event"),
        (lambda c: c + b"3,0x00\n", "expected 8 fields"),
        (lambda c: c.replace(b"0x", b"0X", 1), "canonical"),
        (lambda c: c + "é".encode(), "ASCII"),
    ],
)
def test_a_malformed_batch_file_is_refused_with_the_line(world: World, mutate, message: str) -> None:
    content = build_batch(events(world, 3)).content
    with pytest.raises(InvalidRecord, match=message):
        rebuild(mutate(content))


def test_an_altered_file_in_the_store_is_refused(world: World, tmp_path: Path) -> None:
    batch = build_batch(events(world, 3))
    store = BatchStore(tmp_path)
    path = store.put(batch)
    assert store.get(keccak(b"other")) is None
    path.write_bytes(batch.content.replace(b"\n0,", b"\n0,", 1) + b"")  # unchanged: still fine
    assert store.get(batch.file_hash) == batch.content
    path.write_bytes(batch.content[:-2] + b"0\n")
    with pytest.raises(LedgerError, match="altered"):
        store.get(batch.file_hash)


def test_empty_and_oversized_batches_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="at least one"):
        build_batch([])
    with pytest.raises(InvalidRecord, match="at least one"):
        MerkleTree([])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_tree_matches_openzeppelin_merkle_tree(world: World, tmp_path: Path) -> None:
    """Interoperability: @openzeppelin/merkle-tree's StandardMerkleTree over the same (index, recordHash) values
    gives the same root and the same proofs."""
    library = ROOT / "node_modules" / "@openzeppelin" / "merkle-tree"
    assert library.exists(), "npm ci installs @openzeppelin/merkle-tree (package.json)"
    batch = build_batch(events(world, 11))
    values = [[str(i), "0x" + r.hex()] for i, r in enumerate(batch.record_hashes)]
    script = tmp_path / "tree.cjs"
    script.write_text(
        "const { StandardMerkleTree } = require(process.argv[2]);\n"
        "const values = JSON.parse(process.argv[3]);\n"
        "const tree = StandardMerkleTree.of(values, ['uint256', 'bytes32']);\n"
        "console.log(JSON.stringify({root: tree.root, proofs: values.map((_, i) => tree.getProof(i))}));\n"
    )
    out = subprocess.run(["node", str(script), str(library), json.dumps(values)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    theirs = json.loads(out.stdout)
    assert theirs["root"] == "0x" + batch.root.hex()
    assert theirs["proofs"] == [["0x" + p.hex() for p in batch.proof(i)] for i in range(11)]


def test_an_anchoring_still_in_the_pool_is_not_sent_twice(world: World, tmp_path: Path) -> None:
    if world.chain.embedded:
        pytest.skip("eth-tester mines every transaction at once: nothing waits in a pool")
    w3 = world.chain.w3
    batch = build_batch(events(world, 4))
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        w3.eth.send_raw_transaction(world.signer.sign_transaction({
                "to": world.relayer.address, "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 1, "chainId": world.chain.chain_id,
                "nonce": w3.eth.get_transaction_count(world.signer.address, "pending"),
            }).raw_transaction)
        with pytest.raises(LedgerError, match="waiting in the node's pool"):
            batches.anchor(world.ledger, world.signer, batch, BatchStore(tmp_path))
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])
    anchored = batches.anchor(world.ledger, world.signer, batch, BatchStore(tmp_path))
    assert world.ledger.contract.functions.batchRoot(anchored.seq).call() == batch.root


# ---------------------------------------------------------------------- the store: durable, self-healing files


def small_batch(name: str = "store", n: int = 5) -> batches.Batch:
    """A batch built without a chain (the store's tests need bytes and a hash, not an anchoring)."""
    opened = [CaseEvent(case_id=case_id(f"{name}{i}"), action=CaseAction.OPENED, occurred_at=1_790_000_000 + i,
                        commitment_id=short_code("STREETLIGHT-48H"), district=short_code("PUDONG"), channel=2)
              for i in range(n)]
    return build_batch(opened)


def leftovers(directory: Path) -> list[str]:
    """Files in the store that are not a batch file under its final name."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".csv"))


def test_a_corrupt_file_already_in_the_store_is_replaced_on_put(tmp_path: Path) -> None:
    batch, store = small_batch(), BatchStore(tmp_path)
    path = store.path(batch.file_hash)
    for corrupt in (batch.content[: len(batch.content) // 2], batch.content[:-2] + b"0\n", b""):
        path.write_bytes(corrupt)  # torn by a crash, altered on disk, or empty
        assert store.put(batch) == path
        assert path.read_bytes() == batch.content and store.get(batch.file_hash) == batch.content
    assert leftovers(tmp_path) == []


def test_two_concurrent_puts_of_one_batch_both_succeed_with_one_intact_file(tmp_path: Path) -> None:
    batch, store = small_batch("concurrent", 200), BatchStore(tmp_path)
    barrier = threading.Barrier(2)
    paths: list[Path] = []
    errors: list[BaseException] = []

    def put() -> None:
        barrier.wait()
        try:
            for _ in range(20):  # again and again: the second put of a round finds the file, or writes its own
                paths.append(store.put(batch))
                store.path(batch.file_hash).unlink(missing_ok=True)
            paths.append(store.put(batch))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(paths) == {store.path(batch.file_hash)} and len(paths) == 42
    assert store.get(batch.file_hash) == batch.content
    assert [p.name for p in tmp_path.iterdir()] == [f"{batch.file_hash.hex()}.csv"]  # no temporaries left


def test_put_fsyncs_the_file_and_its_directory_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut cannot be caused here; what the store asks the kernel for can be recorded."""
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        synced.append("directory" if Path(target).is_dir() else f"file:{Path(target).name}")
        real_fsync(fd)

    def replace(source: str, destination: str) -> None:
        synced.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    batch, store = small_batch(), BatchStore(tmp_path)
    store.put(batch)
    assert len(synced) == 3, synced
    assert synced[0].startswith("file:.") and synced[0].endswith(".partial")  # the temporary, before the rename
    assert synced[1:] == ["rename", "directory"]
    # a file already there and intact is synced too (a concurrent put may not have synced it yet)
    synced.clear()
    store.put(batch)
    assert synced == [f"file:{batch.file_hash.hex()}.csv", "directory"]


def test_a_crash_between_write_and_rename_leaves_nothing_the_next_put_trips_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, store = small_batch(), BatchStore(tmp_path)
    path = store.path(batch.file_hash)

    def crash(source: str, destination: str) -> None:
        raise OSError(5, "simulated crash between write and rename")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            store.put(batch)
    assert not path.exists() and store.get(batch.file_hash) is None
    assert leftovers(tmp_path) == []
    # the same over a corrupt file: it stays what it was (get refuses it), and the next put replaces it
    path.write_bytes(b"torn")
    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        with pytest.raises(OSError):
            store.put(batch)
    with pytest.raises(LedgerError, match="altered"):
        store.get(batch.file_hash)
    assert store.put(batch) == path and store.get(batch.file_hash) == batch.content
    assert leftovers(tmp_path) == []
