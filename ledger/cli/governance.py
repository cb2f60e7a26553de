"""Governance (the governance key): agencies and their signer keys, and the auditors whose attestations the ledger
records."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli.common import KeyEnvOpt, KeyOpt, PasswordOpt, command, out, settings
from ledger.records import AgencyRegistration, short_code

agency_app = typer.Typer(help="Governance: agencies and their signer keys.", no_args_is_help=True)
auditor_app = typer.Typer(help="Governance: the auditors whose signed attestations the ledger records.",
                          no_args_is_help=True)


@command(agency_app, "register")
def agency_register(
    ctx: typer.Context,
    agency_id: Annotated[str, typer.Argument(help="the agency's code, e.g. SH-ROADS")],
    jurisdiction: Annotated[str, typer.Option(help="jurisdiction code whose holiday calendars apply")],
    name_zh: Annotated[str, typer.Option("--name-zh")],
    name_en: Annotated[str, typer.Option("--name-en")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Register an agency (governance key)."""
    s = settings(ctx)
    governance = s.key(key, key_env, password_file)
    registration = AgencyRegistration(
        agency_id=short_code(agency_id), jurisdiction=short_code(jurisdiction), name_zh=name_zh, name_en=name_en
    )
    receipt = s.ledger().register_agency(governance, registration)
    out.print(f"registered {agency_id} in block {receipt['blockNumber']}")


@command(agency_app, "authorize")
def agency_authorize(
    ctx: typer.Context,
    agency_id: Annotated[str, typer.Argument()],
    signer: Annotated[str, typer.Argument(help="address of the agency's new signer key")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Authorise a signer key for an agency (governance key)."""
    s = settings(ctx)
    receipt = s.ledger().authorize_signer(s.key(key, key_env, password_file), short_code(agency_id), signer)
    out.print(f"authorised {signer} for {agency_id} in block {receipt['blockNumber']}")


@command(agency_app, "revoke")
def agency_revoke(
    ctx: typer.Context,
    signer: Annotated[str, typer.Argument(help="address of the key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Revoke a signer key (governance key). Its entries stay; it can write no more."""
    s = settings(ctx)
    receipt = s.ledger().revoke_signer(s.key(key, key_env, password_file), signer)
    out.print(f"revoked {signer} in block {receipt['blockNumber']}")


@command(auditor_app, "authorize")
def auditor_authorize(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor's key (never an agency key)")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Register an auditor key (governance key): the ledger then records its signed attestations."""
    s = settings(ctx)
    receipt = s.ledger().authorize_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"registered auditor {auditor} in block {receipt['blockNumber']}")


@command(auditor_app, "revoke")
def auditor_revoke(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Revoke an auditor key (governance key). Its attestations stay; it can record no more."""
    s = settings(ctx)
    receipt = s.ledger().revoke_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"revoked auditor {auditor} in block {receipt['blockNumber']}")
