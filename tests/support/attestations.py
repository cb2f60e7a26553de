"""Audit attestations as an honest auditor makes them: a checkpoint of the ledger, for the contract's tests
(``tests/contracts/test_attestations.py``) and the index and API tests that record attestations."""

from __future__ import annotations

from typing import Any

from ledger.encoding import keccak
from ledger.records import Attestation, AuditVerdict
from tests.support.world import World


def checkpoint(world: World, **changes: object) -> Attestation:
    """An honest checkpoint of the ledger at the block before the latest: a node runs a call (and estimates gas) in
    the latest block's context, where that block's own hash is not yet known to `blockhash`."""
    block = world.chain.w3.eth.get_block(world.chain.w3.eth.block_number - 1)
    fields: dict[str, Any] = dict(
        block_number=block["number"], block_hash=bytes(block["hash"]),
        entry_count=world.ledger.entry_count(block["number"]), running_hash=world.ledger.running_hash(block["number"]),
        report_hash=keccak(b"report"), verdict=AuditVerdict.PASSED, findings=0,
    )
    fields.update(changes)
    return Attestation(**fields)
