"""The shared world: a deployed ledger with two registered agencies, their keys and one published commitment, built
on either backend (:data:`BACKENDS`); the fixtures ``world`` and ``_world`` of ``tests/conftest.py`` roll it back
after each test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.chain.contract import Chain, Ledger
from ledger.encoding import keccak
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    DeadlineUnit,
    short_code,
    text_hash,
)

BACKENDS = ["eth-tester", "anvil"]


@dataclass
class World:
    """A deployed ledger with one registered agency, one authorised key and one published commitment."""

    chain: Chain
    ledger: Ledger
    governance: LocalAccount
    relayer: LocalAccount
    agency_id: bytes
    signer: LocalAccount
    other_agency_id: bytes
    other_signer: LocalAccount
    commitment_id: bytes

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def opened(self, name: str, **changes: object) -> CaseEvent:
        fields: dict[str, Any] = dict(
            case_id=case_id(name),
            action=CaseAction.OPENED,
            occurred_at=self.now(),
            commitment_id=self.commitment_id,
            district=short_code("PUDONG"),
            channel=2,
        )
        fields.update(changes)
        return CaseEvent(**fields)

    def update(self, name: str, action: CaseAction, **changes: object) -> CaseEvent:
        fields: dict[str, Any] = dict(case_id=case_id(name), action=action, occurred_at=self.now())
        fields.update(changes)
        return CaseEvent(**fields)

    def commitment(self, commitment_id: bytes | None = None, **changes: object) -> Commitment:
        fields: dict[str, Any] = dict(
            commitment_id=commitment_id or self.commitment_id,
            service_code=short_code("STREETLIGHT"),
            name_zh="路灯维修",
            name_en="Streetlight repair",
            deadline=48,
            deadline_unit=DeadlineUnit.CALENDAR_HOURS,
            target_bps=9500,
            valid_from=self.now(),
            terms_hash=text_hash("A dark streetlight is repaired within 48 hours."),
            occurred_at=self.now(),
        )
        fields.update(changes)
        return Commitment(**fields)


def case_id(name: str) -> bytes:
    return keccak(b"case:" + name.encode())


def build_world(chain: Chain) -> World:
    governance = chain.new_account()
    ledger = Ledger.deploy(chain, governance)
    agency_id, other_agency_id = short_code("SH-ROADS"), short_code("SH-WATER")
    ledger.register_agency(
        governance,
        AgencyRegistration(agency_id=agency_id, jurisdiction=short_code("CN-SH"), name_zh="路政局", name_en="Roads"),
    )
    ledger.register_agency(
        governance,
        AgencyRegistration(
            agency_id=other_agency_id, jurisdiction=short_code("CN-SH"), name_zh="水务局", name_en="Water"
        ),
    )
    signer, other_signer = chain.new_account(), chain.new_account()
    ledger.authorize_signer(governance, agency_id, signer.address)
    ledger.authorize_signer(governance, other_agency_id, other_signer.address)
    world = World(
        chain=chain,
        ledger=ledger,
        governance=governance,
        relayer=chain.new_account(),
        agency_id=agency_id,
        signer=signer,
        other_agency_id=other_agency_id,
        other_signer=other_signer,
        commitment_id=short_code("STREETLIGHT-48H"),
    )
    ledger.write(signer, world.commitment())
    return world


def head(world: World) -> tuple[int, bytes]:
    """The ledger's head as the contract keeps it: (entry count, running hash)."""
    return world.ledger.entry_count(), world.ledger.running_hash()
