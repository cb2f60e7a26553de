"""Agencies and their keys (``/api/v1/agencies``, ``api.routes.agencies``; read by ``api.read.agencies``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import _ADDRESS, _BATCHES_WITHHELD, _ENTRIES_WITHHELD, _FINAL, Address, Code, Model
from api.schemas.proofs import Proof


class SignerChange(Model):
    signer: Address = Field(description="the key", examples=[_ADDRESS])
    action: Literal["authorized", "revoked"] = Field(description="what governance did", examples=["authorized"])
    final: bool = Field(description=_FINAL)
    proof: Proof


class Agency(Model):
    agency_id: Code = Field(description="agency code", examples=["DEMO-ROADS"])
    jurisdiction: Code = Field(description="jurisdiction (whose holiday calendar applies)", examples=["DEMO-CITY"])
    name_zh: str = Field(description="name in Chinese", examples=["示范市道路管理所"])
    name_en: str = Field(description="name in English", examples=["Demo City Roads Office"])
    signers: list[Address] = Field(description="keys authorised to write for the agency now, in address order")
    batches_withheld: int = Field(
        default=0, ge=0, description=_BATCHES_WITHHELD + " (GET /api/v1/batches?agency_id=…&withheld=true)",
        examples=[0],
    )
    entries_withheld: int = Field(default=0, ge=0, description=_ENTRIES_WITHHELD, examples=[0])
    final: bool = Field(description=_FINAL + " (of the registration)")
    registration: Proof = Field(description="proof of the registration entry")


class AgencyDetail(Agency):
    key_history: list[SignerChange] = Field(description="every authorisation and revocation, in ledger order")


class AgencyPage(Model):
    items: list[Agency] = Field(description="agencies in agency id order")
    next: str | None = Field(description="pass as `after` for the next page; null on the last", examples=[None])
