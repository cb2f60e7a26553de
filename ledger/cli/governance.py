"""Governance (the governance key): agencies and their signer keys, and the auditors whose attestations the ledger
records.

Each command is sent with a keystore key, or, with ``--print-for-multisig``, printed instead for the multisig that
holds the governance role (``ledger.chain.multisig``): the target, value and calldata, the function and its decoded
arguments, and a Safe{Wallet} Transaction Builder batch file (on standard output, or ``--out FILE``; the summary then
goes to standard output, else to standard error so that the JSON can be piped). With ``--safe ADDRESS`` the call is
first checked as the Safe would make it (a call the ledger would refuse is not printed) and the Safe's nonce, owners,
threshold and transaction hash are shown, for each officer to compare with what their wallet displays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils import is_hex_address, to_checksum_address

from ledger.chain import multisig
from ledger.cli.common import KeyEnvOpt, KeyOpt, PasswordOpt, Settings, command, out, settings
from ledger.records import AgencyRegistration, AuditorChange, SignerChange, short_code

agency_app = typer.Typer(help="Governance: agencies and their signer keys.", no_args_is_help=True)
auditor_app = typer.Typer(help="Governance: the auditors whose signed attestations the ledger records.",
                          no_args_is_help=True)

PrintOpt = Annotated[bool, typer.Option(
    "--print-for-multisig",
    help="print the transaction for the governance multisig (target, value, calldata, Safe Transaction Builder JSON) "
    "instead of sending it; needs no key",
)]
SafeOpt = Annotated[str | None, typer.Option(
    "--safe", help="with --print-for-multisig: the Safe holding the governance role (checks the call from it, shows "
    "its nonce and transaction hash, names it in the JSON)",
)]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="with --print-for-multisig: write the Transaction Builder JSON to this file, not standard output",
)]


def _multisig(print_for_multisig: bool, safe: str | None, out_file: Path | None) -> bool:
    """Whether to print for a multisig; --safe or --out without --print-for-multisig is an error, never a send."""
    if not print_for_multisig and (safe is not None or out_file is not None):
        raise ValueError("--safe and --out go with --print-for-multisig (without it the command is sent with a key)")
    return print_for_multisig


def _address(text: str) -> str:
    if not is_hex_address(text):
        raise ValueError(f"{text!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(text)


def _print_for_multisig(s: Settings, function: str, args: tuple[Any, ...], safe: str | None,
                        out_file: Path | None) -> None:
    ledger = s.ledger()
    call = multisig.governance_call(ledger, function, *args)
    found = None
    if safe is not None:
        found = multisig.safe_transaction(ledger, safe, call)
        multisig.check_call_from(ledger, call, found.safe)
    batch = multisig.transaction_builder_batch([call], ledger.chain.chain_id, safe=safe)
    text = json.dumps(batch, indent=2, ensure_ascii=False)
    to_stderr = out_file is None  # the JSON takes standard output
    lines = [
        f"not sent: {call.signature} for the governance multisig to execute",
        f"  target    {call.target} (the ledger, chain {ledger.chain.chain_id})",
        f"  value     {call.value}",
        f"  calldata  0x{call.calldata.hex()}",
        *(f"  {name:<9} {value}" for name, value in call.readable_arguments().items()),
    ]
    if found is not None:
        lines += [
            f"  Safe      {found.safe}: {found.threshold} of {len(found.owners)} owners approve; nonce {found.nonce}",
            f"  safeTxHash 0x{found.safe_tx_hash.hex()} (each officer's wallet must show this hash)",
        ]
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
        lines.append(f"Safe Transaction Builder batch written to {out_file}")
    for line in lines:  # plain text: names may hold brackets that Rich would read as markup
        typer.echo(line, err=to_stderr)
    if out_file is None:
        typer.echo(text)


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
    print_for_multisig: PrintOpt = False,
    safe: SafeOpt = None,
    out_file: OutOpt = None,
) -> None:
    """Register an agency (governance key, or printed for the governance multisig)."""
    s = settings(ctx)
    registration = AgencyRegistration(
        agency_id=short_code(agency_id), jurisdiction=short_code(jurisdiction), name_zh=name_zh, name_en=name_en
    )
    if _multisig(print_for_multisig, safe, out_file):
        _print_for_multisig(s, "registerAgency", registration.abi_values(), safe, out_file)
        return
    governance = s.key(key, key_env, password_file)
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
    print_for_multisig: PrintOpt = False,
    safe: SafeOpt = None,
    out_file: OutOpt = None,
) -> None:
    """Authorise a signer key for an agency (governance key, or printed for the governance multisig). The key may be
    a contract wallet (ERC-1271): the ledger and the write API accept its signatures."""
    s = settings(ctx)
    if _multisig(print_for_multisig, safe, out_file):
        change = SignerChange(agency_id=short_code(agency_id), signer=_address(signer))
        _print_for_multisig(s, "authorizeSigner", change.abi_values(), safe, out_file)
        return
    receipt = s.ledger().authorize_signer(s.key(key, key_env, password_file), short_code(agency_id), signer)
    out.print(f"authorised {signer} for {agency_id} in block {receipt['blockNumber']}")


@command(agency_app, "revoke")
def agency_revoke(
    ctx: typer.Context,
    signer: Annotated[str, typer.Argument(help="address of the key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
    print_for_multisig: PrintOpt = False,
    safe: SafeOpt = None,
    out_file: OutOpt = None,
) -> None:
    """Revoke a signer key (governance key, or printed for the governance multisig). Its entries stay; it can write
    no more."""
    s = settings(ctx)
    if _multisig(print_for_multisig, safe, out_file):
        _print_for_multisig(s, "revokeSigner", (_address(signer),), safe, out_file)
        return
    receipt = s.ledger().revoke_signer(s.key(key, key_env, password_file), signer)
    out.print(f"revoked {signer} in block {receipt['blockNumber']}")


@command(auditor_app, "authorize")
def auditor_authorize(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor's key (never an agency key)")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
    print_for_multisig: PrintOpt = False,
    safe: SafeOpt = None,
    out_file: OutOpt = None,
) -> None:
    """Register an auditor key (governance key, or printed for the governance multisig): the ledger then records its
    signed attestations."""
    s = settings(ctx)
    if _multisig(print_for_multisig, safe, out_file):
        _print_for_multisig(s, "authorizeAuditor", AuditorChange(auditor=auditor).abi_values(), safe, out_file)
        return
    receipt = s.ledger().authorize_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"registered auditor {auditor} in block {receipt['blockNumber']}")


@command(auditor_app, "revoke")
def auditor_revoke(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
    print_for_multisig: PrintOpt = False,
    safe: SafeOpt = None,
    out_file: OutOpt = None,
) -> None:
    """Revoke an auditor key (governance key, or printed for the governance multisig). Its attestations stay; it can
    record no more."""
    s = settings(ctx)
    if _multisig(print_for_multisig, safe, out_file):
        _print_for_multisig(s, "revokeAuditor", AuditorChange(auditor=auditor).abi_values(), safe, out_file)
        return
    receipt = s.ledger().revoke_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"revoked auditor {auditor} in block {receipt['blockNumber']}")
