"""The read API's batch proofs without a chain (``api.batches``): trees rebuilt from the stored file give the proofs
``ledger.batches`` gives, are kept within their memory bound and rebuilt once however many ask at the same time; a
file that is missing, altered, malformed or not the anchored one gives a proof-less answer saying why; files are
hashed once before they are served. The endpoints, on a real chain and index, are in ``test_batches.py``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from api import batches as api_batches
from api.batches import BatchKey, BatchProofs, BatchTrees, Tree, Unavailable, VerifiedFiles
from ledger.batches import Batch, BatchStore, build_batch, verify_proof
from ledger.encoding import keccak
from ledger.records import CaseAction, CaseEvent, short_code, text_hash


def events(n: int, prefix: str = "t") -> list[CaseEvent]:
    out = []
    for i in range(n):
        case = keccak(f"{prefix}{i - i % 2}".encode())
        if i % 2 == 0:
            out.append(CaseEvent(case_id=case, action=CaseAction.OPENED, occurred_at=1_790_000_000 + i,
                                 commitment_id=short_code("C"), district=short_code("EAST"), channel=2))
        else:
            out.append(CaseEvent(case_id=case, action=CaseAction.FULFILLED, occurred_at=1_790_000_000 + i,
                                 details_hash=text_hash(f"d{i}")))
    return out


def key_of(batch: Batch, seq: int = 100) -> BatchKey:
    return BatchKey(seq, batch.root, batch.count, batch.file_hash)


@pytest.fixture
def store(tmp_path: Path) -> BatchStore:
    return BatchStore(tmp_path / "batches")


def test_a_kept_tree_gives_the_proofs_the_batch_gives(store: BatchStore) -> None:
    for n in (1, 2, 7, 64, 100):
        batch = build_batch(events(n, f"n{n}-"))
        store.put(batch)
        trees = BatchTrees(store, 1 << 30)
        tree = trees.get(key_of(batch))
        assert isinstance(tree, Tree)
        for i in range(n):
            assert tree.proof(i) == batch.proof(i)
            assert tree.record(i) == batch.record_hashes[i]
            assert verify_proof(batch.root, i, batch.record_hashes[i], tree.proof(i))
        # flat bytes, about 100 bytes an entry
        assert tree.size == (2 * n - 1) * 32 + 32 * n + 4 * n


def test_trees_are_rebuilt_once_and_kept_within_their_bound(store: BatchStore, monkeypatch: pytest.MonkeyPatch) -> None:
    built = [build_batch(events(50, f"k{j}-")) for j in range(4)]
    for batch in built:
        store.put(batch)
    one = (2 * 50 - 1) * 32 + 32 * 50 + 4 * 50
    trees = BatchTrees(store, 2 * one + 10)  # room for two
    for j, batch in enumerate(built):
        assert isinstance(trees.get(key_of(batch, j)), Tree)
    assert trees.builds == 4 and len(trees) == 2 and trees.bytes_kept == 2 * one
    assert trees.peek(key_of(built[0], 0)) is None  # the least recently used went first
    assert isinstance(trees.peek(key_of(built[3], 3)), Tree)
    trees.get(key_of(built[3], 3))
    assert trees.builds == 4 and trees.hits >= 2

    # many requests for a batch not kept: one rebuild, the others wait for it
    calls = []
    real = api_batches.build_tree

    def slow(store_: BatchStore, key: BatchKey) -> Tree | Unavailable:
        calls.append(key)
        time.sleep(0.2)
        return real(store_, key)

    monkeypatch.setattr(api_batches, "build_tree", slow)
    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(trees.get(key_of(built[0], 0)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(answers) == 8 and all(isinstance(a, Tree) for a in answers)


def test_a_tree_larger_than_the_bound_is_served_but_not_kept(store: BatchStore) -> None:
    batch = build_batch(events(20))
    store.put(batch)
    trees = BatchTrees(store, 10)
    assert isinstance(trees.get(key_of(batch)), Tree)
    assert len(trees) == 0 and trees.bytes_kept == 0


def test_a_missing_file_is_looked_for_again_and_gives_reasons(store: BatchStore) -> None:
    batch = build_batch(events(9))
    trees = BatchTrees(store, 1 << 30)
    key = key_of(batch, 500)
    missing = trees.get(key)
    assert isinstance(missing, Unavailable) and missing.code == "file_missing"
    assert "#500" in missing.reason and "not available" in missing.reason
    proofs = BatchProofs(trees)
    answer = proofs.proof(key, 3, batch.record_hashes[3])
    assert answer.merkle_proof is None and answer.proof_unavailable == missing.reason
    assert answer.seq == 500 and answer.index == 3 and answer.file_url == "/api/v1/batches/500/file"
    assert proofs.unavailable == (500,)
    # published now: found on the next request (a missing file is not remembered)
    store.put(batch)
    later = BatchProofs(trees).proof(key, 3, batch.record_hashes[3])
    assert later.merkle_proof == ["0x" + p.hex() for p in batch.proof(3)] and later.proof_unavailable is None


def test_damaged_or_foreign_files_give_no_proof(store: BatchStore) -> None:
    batch = build_batch(events(9))
    path = store.put(batch)
    trees = BatchTrees(store, 1 << 30)

    # anchored with another root (the file is not the anchored one's)
    wrong_root = BatchKey(7, keccak(b"other"), batch.count, batch.file_hash)
    found = trees.get(wrong_root)
    assert isinstance(found, Unavailable) and found.code == "root_mismatch" and "anchored" in found.reason

    # a record the index has that the file does not
    answer = BatchProofs(trees).proof(key_of(batch), 2, keccak(b"not this record"))
    assert answer.merkle_proof is None and "line 4" in answer.proof_unavailable

    # altered on disk: refused, and remembered for a while
    path.write_bytes(batch.content.replace(b"\n1,", b"\n1,", 1) + b"0")
    trees.clear()
    altered = trees.get(key_of(batch, 8))
    assert isinstance(altered, Unavailable) and altered.code == "file_altered"
    assert trees.peek(key_of(batch, 8)) == altered

    # a file that hashes to its name but is not a batch file
    junk = b"index,caseId\n0,1\n"
    junk_store = BatchStore(store.directory.parent / "junk")
    junk_store.directory.mkdir()
    junk_store.path(keccak(junk)).write_bytes(junk)
    bad = BatchTrees(junk_store, 1 << 30).get(BatchKey(9, batch.root, 1, keccak(junk)))
    assert isinstance(bad, Unavailable) and bad.code == "file_invalid" and "line 1" in bad.reason


def test_a_request_holds_its_batches_and_an_export_only_the_current_one(store: BatchStore) -> None:
    built = [build_batch(events(6, f"h{j}-")) for j in range(3)]
    for batch in built:
        store.put(batch)
    trees = BatchTrees(store, 1 << 30)
    keys = [key_of(batch, 10 * j) for j, batch in enumerate(built)]
    proofs = BatchProofs(trees)
    assert proofs.missing(keys + keys) == keys
    proofs.load(keys)
    assert proofs.missing(keys) == [] and trees.builds == 3
    trees.clear()  # what the request holds stays with it
    assert proofs.proof(keys[1], 0, built[1].record_hashes[0]).merkle_proof is not None
    assert trees.builds == 3

    export = BatchProofs(trees, keep=1)
    for key, batch in zip(keys, built, strict=True):
        for i in range(batch.count):
            export.proof(key, i, batch.record_hashes[i])
    assert trees.builds == 6 and len(export._held) == 1  # each batch once; one held at a time


def test_files_are_hashed_once_before_being_served(store: BatchStore, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = build_batch(events(5))
    path = store.put(batch)
    files = VerifiedFiles(store)
    hashed = []
    real = api_batches.hash_file
    monkeypatch.setattr(api_batches, "hash_file", lambda p: hashed.append(p) or real(p))
    for _ in range(3):
        found = files.check(batch.file_hash)
        assert not isinstance(found, Unavailable) and found[0] == path
    assert len(hashed) == 1
    assert files.present(batch.file_hash)
    # changed on disk: hashed again, and refused
    path.write_bytes(batch.content + b"x")
    refused = files.check(batch.file_hash)
    assert isinstance(refused, Unavailable) and refused.code == "file_altered" and len(hashed) == 2
    path.unlink()
    assert isinstance(files.check(batch.file_hash), Unavailable) and not files.present(batch.file_hash)
