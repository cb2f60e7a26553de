"""Merkle-anchored batches (``ledger.batches`` and ``CivicLedger.anchorBatch``), on both backends.

The tree is OpenZeppelin's standard Merkle tree; ``test_tree_matches_openzeppelin_merkle_tree`` rebuilds it with
the ``@openzeppelin/merkle-tree`` JavaScript library itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger import batches
from ledger.batches import BatchStore, MerkleTree, build_batch, parse_batch_file, rebuild, verify_proof
from ledger.errors import ContractReverted, InvalidRecord, LedgerError
from ledger.records import BatchAnchor, CaseAction, EntryKind, keccak, running_hash, text_hash
from tests.conftest import World

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
