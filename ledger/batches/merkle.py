"""The Merkle tree of a batch: OpenZeppelin's standard Merkle tree over ``(uint256 index, bytes32 recordHash)``
(see :mod:`ledger.batches` for why this tree), its proofs and their off-chain check."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.encoding import keccak_256
from ledger.errors import InvalidRecord


def leaf_hash(index: int, record: bytes) -> bytes:
    """OpenZeppelin standard leaf of ``(uint256 index, bytes32 recordHash)``."""
    return keccak_256(keccak_256(index.to_bytes(32, "big") + record).digest()).digest()


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak_256(a + b if a < b else b + a).digest()


class MerkleTree:
    """OpenZeppelin's standard Merkle tree (``@openzeppelin/merkle-tree``, ``StandardMerkleTree``) over given leaves:
    leaves sorted, stored at the end of a flat array in reverse, node ``i`` the sorted-pair hash of ``2i+1`` and
    ``2i+2``. Proofs list sibling hashes from the leaf up; ``MerkleProof.verify`` checks them."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        n = len(leaves)
        if n == 0:
            raise InvalidRecord("a batch needs at least one entry")
        order = sorted(range(n), key=leaves.__getitem__)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * size
        position = [0] * n  # value index -> tree index
        for rank, value_index in enumerate(order):
            tree[size - 1 - rank] = leaves[value_index]
            position[value_index] = size - 1 - rank
        for i in range(size - 1 - n, -1, -1):
            a, b = tree[2 * i + 1], tree[2 * i + 2]
            tree[i] = keccak_256(a + b if a < b else b + a).digest()
        self.tree, self.position = tree, position

    @classmethod
    def of_records(cls, record_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree of a batch whose entry ``i`` has record hash ``record_hashes[i]`` (leaves :func:`leaf_hash`)."""
        return cls([leaf_hash(index, record) for index, record in enumerate(record_hashes)])

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def proof(self, value_index: int) -> list[bytes]:
        i = self.position[value_index]
        out = []
        while i > 0:
            out.append(self.tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return out


def verify_proof(root: bytes, index: int, record: bytes, proof: Sequence[bytes]) -> bool:
    """Off-chain twin of ``CivicLedger.verifyBatchEntry``: does the proof lead from the leaf to the root?"""
    node = leaf_hash(index, record)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
