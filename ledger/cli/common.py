"""What the command groups share: the settings every command reads (the chain, the contract, the data directory,
keys), the consoles, :func:`command` (which turns the project's errors into a message and an exit code), the options
every writing command takes, and the helpers more than one group needs: the agency of a key, a key's writer, an
agency's case references turned into case ids, the table of refused rows."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import AgencyKey, case_salt, named_key
from ledger.chain.receipt_case import cases_with_receipts
from ledger.config import DEPLOYMENT_FILE, Deployment
from ledger.config import Settings as Env
from ledger.encoding import code_text
from ledger.errors import ContractReverted, LedgerError
from ledger.importer import CaseIds
from ledger.records import short_code
from ledger.writer.outbox import Outbox
from ledger.writer.sender import Writer

out = Console()
err = Console(stderr=True)


@dataclass
class Settings:
    rpc_url: str
    contract: str | None
    chain_id: int | None
    data_dir: Path
    _ledger: Ledger | None = field(default=None, repr=False)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            address, chain_id = self.contract, self.chain_id
            deployment = Deployment.of(self.data_dir) if address is None else None
            if deployment is not None:
                address, chain_id = deployment.address, chain_id or deployment.chain_id
            if address is None:
                fail(f"no contract address: pass --contract (or CIVIC_CONTRACT), or run `make run` to create "
                     f"{self.data_dir / DEPLOYMENT_FILE}")
            chain = Chain.connect(self.rpc_url, expected_chain_id=chain_id)
            self._ledger = Ledger(chain, address)
        return self._ledger

    def deploy_block(self) -> int:
        """The block the contract was deployed in, when DATA_DIR's deployment is the one in use (else 0)."""
        deployment = Deployment.of(self.data_dir) if self.contract is None else None
        return deployment.block if deployment is not None else 0

    def key(self, key: str | None, key_env: str | None, password_file: Path | None) -> AgencyKey:
        """A keystore path, or the name of one under DATA_DIR/keys (``ledger.chain.keys.named_key``)."""
        secret = Env.from_env().key_password
        return named_key(self.data_dir, key, key_env=key_env, password_file=password_file,
                         password=secret.get_secret_value() if secret is not None else None)

    def writer(self, signer: AgencyKey) -> Writer:
        outbox = Outbox(self.data_dir / "outbox" / f"{signer.address}.sqlite")
        return Writer(self.ledger(), signer, outbox)

    def salt(self, agency_id: str) -> bytes:
        """The agency's secret salt for case ids (``ledger.chain.keys.case_salt``)."""
        secret = Env.from_env().case_salt
        return case_salt(self.data_dir, agency_id, secret.get_secret_value() if secret is not None else "")


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings(ctx: typer.Context) -> Settings:
    return ctx.obj


KeyOpt = Annotated[str | None, typer.Option("--key", help="keystore file, or a key name under DATA_DIR/keys")]
KeyEnvOpt = Annotated[str | None, typer.Option("--key-env", help="environment variable holding the private key")]
PasswordOpt = Annotated[Path | None, typer.Option("--password-file", help="file holding the keystore password")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="when it happened, ISO 8601 with a zone (default: now)")
]


def now_or(at: str | None) -> int | str:
    return int(time.time()) if at is None else at


def _guard(function: Any) -> Any:
    """Turn the project's errors into a clear message and exit code 2 (1 for a refused write)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ContractReverted as exc:
            fail(f"the ledger refused it: {exc.error_name} {exc.error_args}", code=1)
        except (LedgerError, ValueError) as exc:
            fail(str(exc))

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


def command(typer_app: typer.Typer, name: str | None = None) -> Any:
    def register(function: Any) -> Any:
        import functools

        guarded = functools.wraps(function)(_guard(function))
        return typer_app.command(name)(guarded)

    return register


def agency_of(s: Settings, signer: AgencyKey) -> str:
    agency = s.ledger().agency_of(signer.address)
    if not any(agency):
        raise LedgerError(f"key {signer.address} is not authorised for any agency")
    return code_text(agency)


def case_ids_of(s: Settings, agency: str, outbox: Outbox) -> CaseIds:
    """References to case ids, remembering how each case was opened: this outbox first, then the ledger (a case
    opened with a receipt at another desk, with another key, is tracked there)."""
    ledger, agency_id = s.ledger(), short_code(agency)

    def opened_flagged(flagged: list[bytes]) -> set[bytes]:
        known = outbox.opened_flagged(flagged)
        return known | cases_with_receipts(ledger, agency_id, [c for c in flagged if c not in known])

    return CaseIds(s.salt(agency), agency, opened_flagged)


@contextmanager
def open_writer(s: Settings, signer: AgencyKey) -> Iterator[Writer]:
    writer = s.writer(signer)
    try:
        yield writer
    finally:
        writer.close()


def problems_table(problems: list[tuple[int, str]]) -> None:
    table = Table(title="rows not recorded")
    table.add_column("line", justify="right")
    table.add_column("why")
    for line, why in problems[:200]:
        table.add_row(str(line), why or "")
    out.print(table)
    if len(problems) > 200:
        out.print(f"… and {len(problems) - 200} more")
    reasons = Counter((why or "").split(":")[0] for _, why in problems)
    out.print("by reason: " + ", ".join(f"{k} ({v})" for k, v in reasons.most_common(5)))
