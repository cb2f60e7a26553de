"""A ledger of its own for the audit tests (API and page): an anvil, one agency with a commitment and a case
(``tests.support.world.build_world``), and auditors registered by governance — two whose checkpoints of the same block
match the ledger (one passed, one failed with findings), one that signed a running hash the ledger never had, one
that attested and was then revoked, one that has not attested yet — indexed into SQLite, with the service's data
directory for the published reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from api.settings import ApiSettings
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import keccak
from ledger.index.sync import Indexer
from ledger.records import Attestation, AuditVerdict
from ledger.store.db import open_store
from tests.support.attestations import checkpoint
from tests.support.world import World, build_world


def report(name: str, findings: int = 0) -> bytes:
    """An audit report's bytes (what the auditor hashes into its attestation)."""
    return json.dumps({"auditor": name, "findings": [f"finding {i}" for i in range(findings)]}).encode()


@dataclass
class AuditWorld:
    node: AnvilNode
    world: World
    data_dir: Path
    store_url: str
    #: auditor name -> key
    auditors: dict[str, LocalAccount] = field(default_factory=dict)
    #: auditor name -> seq of its attestation
    attested: dict[str, int] = field(default_factory=dict)
    #: auditor name -> the report its attestation names
    reports: dict[str, bytes] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        return self.world.chain

    def settings(self, **changes: Any) -> ApiSettings:
        fields: dict[str, Any] = dict(
            store_url=self.store_url, rpc_url=self.node.url, contract_address=self.world.ledger.address,
            chain_id=self.chain.chain_id, data_dir=self.data_dir,
        )
        # the auditor asks for many figures at once, and these tests are of what it finds: no figures budget or time
        # share (tests/audit/test_careful_client.py shows the auditor waits them out)
        fields.update(expensive_rate_per_minute=0, computation_share=1.0)
        fields.update(changes)
        return ApiSettings(**fields)

    def sync(self) -> None:
        store = open_store(self.store_url)
        try:
            Indexer(self.chain, self.world.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()

    def register(self, name: str) -> LocalAccount:
        key = self.chain.new_account()
        self.world.ledger.authorize_auditor(self.world.governance, key.address)
        self.auditors[name] = key
        return key

    def attest(self, name: str, attestation: Attestation, content: bytes | None = None) -> int:
        """Record `name`'s signed `attestation` (relayed); `content` is the report it names, if kept."""
        ledger, key = self.world.ledger, self.auditors[name]
        ledger.record_attestation(self.world.relayer, attestation, key.address,
                                  ledger.sign_attestation(key.key, attestation))
        self.attested[name] = ledger.entry_count() - 1
        if content is not None:
            self.reports[name] = content
        return self.attested[name]

    def checkpoint(self, content: bytes, **changes: Any) -> Attestation:
        """An honest checkpoint (of the block before the latest) naming the report `content`."""
        return checkpoint(self.world, report_hash=keccak(content), **changes)


def write_auditors(aw: AuditWorld) -> None:
    """The audit scenario: ``honest`` and ``strict`` attest the same block (passed; failed with 2 findings),
    ``liar`` signs a running hash of its own (its report is not JSON), ``gone`` attests and is revoked, ``idle``
    never attests."""
    for name in ("honest", "strict", "liar", "gone", "idle"):
        aw.register(name)
    passed, failed = report("honest"), report("strict", 2)
    # both checkpoints of one block, made before either is recorded
    first = aw.checkpoint(passed)
    second = aw.checkpoint(failed, verdict=AuditVerdict.FAILED, findings=2)
    aw.attest("honest", first, passed)
    aw.attest("strict", second, failed)
    aw.world.ledger.write(aw.world.signer, aw.world.opened("between the audits"))
    aw.attest("liar", aw.checkpoint(b"{not json", running_hash=keccak(b"elsewhere")[:24]), b"{not json")
    aw.attest("gone", aw.checkpoint(report("gone")), report("gone"))
    aw.world.ledger.revoke_auditor(aw.world.governance, aw.auditors["gone"].address)


@contextmanager
def audit_world(data_dir: Path, *, auditors: bool = True) -> Iterator[AuditWorld]:
    """The world, indexed; without ``auditors``, only the agency and its case (the tests add auditors themselves)."""
    node = AnvilNode().start()
    try:
        world = build_world(Chain.connect(node.url))
        world.ledger.write(world.signer, world.opened("a case"))
        aw = AuditWorld(node, world, data_dir, f"sqlite:///{data_dir / 'index.sqlite'}")
        if auditors:
            write_auditors(aw)
        aw.sync()
        yield aw
    finally:
        node.stop()
