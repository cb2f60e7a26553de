"""Audit attestations on the contract: governance registers auditor keys (never agency keys), a registered auditor's
signed checkpoint is recorded by anyone who relays it, and every way of bending one is refused — an unregistered or
revoked key, a forged or replayed signature, a block the chain cannot vouch for, a count beyond the ledger's, a
verdict that contradicts its findings. Both backends, on the shared world of ``tests/conftest.py``."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.encoding import ZERO32, fold, keccak
from ledger.errors import ContractReverted
from ledger.records import Attestation, AuditVerdict, EntryKind
from tests.support import nodes
from tests.support.attestations import checkpoint
from tests.support.reverts import refused
from tests.support.world import World


def mine(world: World, blocks: int) -> None:
    nodes.mine(world.chain, blocks)


@pytest.fixture
def auditor(world: World) -> LocalAccount:
    key = Account.create()
    world.ledger.authorize_auditor(world.governance, key.address)
    return key


def test_a_registered_auditors_checkpoint_is_recorded_as_an_entry(world: World, auditor: LocalAccount) -> None:
    ledger = world.ledger
    attestation = checkpoint(world)
    signature = ledger.sign_attestation(auditor.key, attestation)
    before = ledger.entry_count()
    receipt = ledger.record_attestation(world.relayer, attestation, auditor.address, signature)  # relayed: no gas
    assert ledger.entry_count() == before + 1
    assert ledger.auditor_state(auditor.address) == (True, attestation.block_number)
    # the entry decoded from its log is the one the contract folded into its running hash (the fast decoder is
    # compared with this one in tests/ledger/test_indexer.py)
    logs = ledger.w3.eth.get_logs({"address": ledger.address, "fromBlock": receipt["blockNumber"],
                                   "toBlock": receipt["blockNumber"]})
    slow = ledger.decode_log(logs[-1])
    assert slow is not None and slow.kind == EntryKind.AUDIT_ATTESTED and slow.actor == auditor.address
    assert slow.agency_id == ZERO32 and slow.record_hash == attestation.struct_hash()
    assert fold(world.ledger.running_hash(receipt["blockNumber"] - 1), slow.entry_hash) == ledger.running_hash()


def test_a_failed_audit_is_recorded_too(world: World, auditor: LocalAccount) -> None:
    attestation = checkpoint(world, verdict=AuditVerdict.FAILED, findings=3)
    world.ledger.record_attestation(world.relayer, attestation, auditor.address,
                                    world.ledger.sign_attestation(auditor.key, attestation))
    assert world.ledger.auditor_state(auditor.address)[1] == attestation.block_number


def test_only_governance_registers_auditors_and_revocation_stops_them(world: World, auditor: LocalAccount) -> None:
    ledger, stranger = world.ledger, Account.create()
    with pytest.raises(ContractReverted):
        ledger.authorize_auditor(world.signer, stranger.address)  # an agency key is not governance
    refused("UnknownAuditor", ledger.authorize_auditor, world.governance, auditor.address)  # already registered
    before = ledger.entry_count()
    ledger.revoke_auditor(world.governance, auditor.address)
    assert ledger.entry_count() == before + 1 and ledger.auditor_state(auditor.address) == (False, 0)
    attestation = checkpoint(world)
    refused("UnknownAuditor", ledger.record_attestation, world.relayer, attestation, auditor.address,
            ledger.sign_attestation(auditor.key, attestation))
    refused("UnknownAuditor", ledger.revoke_auditor, world.governance, auditor.address)


def test_an_auditor_key_is_never_an_agency_key(world: World, auditor: LocalAccount) -> None:
    ledger = world.ledger
    # an agency key cannot become an auditor: a hostile agency cannot audit itself
    refused("KeyRoleConflict", ledger.authorize_auditor, world.governance, world.signer.address)
    # and an auditor key cannot be given to an agency
    refused("KeyRoleConflict", ledger.authorize_signer, world.governance, world.agency_id, auditor.address)


def test_an_unregistered_key_or_a_forged_signature_is_refused(world: World, auditor: LocalAccount) -> None:
    ledger, stranger = world.ledger, Account.create()
    attestation = checkpoint(world)
    refused("UnknownAuditor", ledger.record_attestation, world.relayer, attestation, stranger.address,
            ledger.sign_attestation(stranger.key, attestation))
    # signed by a stranger, claimed as the auditor's
    refused("InvalidSignature", ledger.record_attestation, world.relayer, attestation, auditor.address,
            ledger.sign_attestation(stranger.key, attestation))
    # signed by the auditor, altered in transit (a passing verdict turned into another report)
    signature = ledger.sign_attestation(auditor.key, attestation)
    altered = attestation.model_copy(update={"report_hash": keccak(b"other report")})
    refused("InvalidSignature", ledger.record_attestation, world.relayer, altered, auditor.address, signature)
    # an agency key signing an attestation gets nowhere either
    refused("UnknownAuditor", ledger.record_attestation, world.relayer, attestation, world.signer.address,
            ledger.sign_attestation(world.signer.key, attestation))


def test_a_signed_attestation_cannot_be_replayed_or_backdated(world: World, auditor: LocalAccount) -> None:
    ledger = world.ledger
    first = checkpoint(world)
    signature = ledger.sign_attestation(auditor.key, first)
    ledger.record_attestation(world.relayer, first, auditor.address, signature)
    err = refused("InvalidAttestation", ledger.record_attestation, world.relayer, first, auditor.address, signature)
    assert err.error_args["field"] == "blockNumber"
    # an earlier block, signed later: refused (attestations only move forward)
    mine(world, 2)
    earlier = checkpoint(world, block_number=first.block_number - 1,
                         block_hash=bytes(world.chain.w3.eth.get_block(first.block_number - 1)["hash"]))
    err = refused("InvalidAttestation", ledger.record_attestation, world.relayer, earlier, auditor.address,
                  ledger.sign_attestation(auditor.key, earlier))
    assert err.error_args["field"] == "blockNumber"


@pytest.mark.parametrize("changes, field", [
    ({"block_hash": keccak(b"another history")}, "blockHash"),
    ({"block_hash": ZERO32}, "blockHash"),
    ({"verdict": AuditVerdict.FAILED, "findings": 0}, "verdict-or-findings"),
    ({"entry_count": 10**9}, "entryCount"),
])
def test_a_checkpoint_the_chain_contradicts_is_refused(
    world: World, auditor: LocalAccount, changes: dict[str, object], field: str
) -> None:
    attestation = checkpoint(world).model_construct(**{**dict(checkpoint(world)), **changes})
    err = refused("InvalidAttestation", world.ledger.record_attestation, world.relayer, attestation, auditor.address,
                  world.ledger.sign_attestation(auditor.key, attestation))
    assert err.error_args["field"] in field.split("-or-")


def test_a_future_block_or_one_the_chain_no_longer_vouches_for_is_refused(world: World, auditor: LocalAccount) -> None:
    ledger, w3 = world.ledger, world.chain.w3
    latest = w3.eth.get_block("latest")
    future = checkpoint(world, block_number=latest["number"] + 5)
    err = refused("InvalidAttestation", ledger.record_attestation, world.relayer, future, auditor.address,
                  ledger.sign_attestation(auditor.key, future))
    assert err.error_args["field"] == "blockHash"
    old = checkpoint(world)
    mine(world, 257)  # more than 256 blocks later, blockhash() no longer knows it
    err = refused("InvalidAttestation", ledger.record_attestation, world.relayer, old, auditor.address,
                  ledger.sign_attestation(auditor.key, old))
    assert err.error_args["field"] == "blockHash"


def test_the_verdict_must_agree_with_the_findings() -> None:
    with pytest.raises(ValueError, match="verdict and findings disagree"):
        Attestation(block_number=1, block_hash=keccak(b"b"), entry_count=1, running_hash=b"\1" * 24,
                    report_hash=keccak(b"r"), verdict=AuditVerdict.PASSED, findings=2)
