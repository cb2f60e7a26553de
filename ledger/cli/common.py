"""What the command groups share: the settings every command reads (the chain, the contract, the data directory,
keys), the consoles, :func:`command` (which turns the project's errors into a message and an exit code), the options
every writing command takes, and the helpers more than one group needs: the agency of a key, a key's writer, an
agency's case references turned into case ids, the table of refused rows."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from eth_hash.auto import keccak
from rich.console import Console
from rich.table import Table

from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import AgencyKey, load_key
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
        """A keystore path, or the name of one under DATA_DIR/keys (whose .password file then applies)."""
        if key_env:
            return load_key(env_var=key_env)
        if not key:
            fail("no key given: pass --key (a keystore file, or a key name under DATA_DIR/keys) or --key-env")
        path = Path(key)
        if not path.exists() and (self.data_dir / "keys" / f"{key}.json").exists():
            path = self.data_dir / "keys" / f"{key}.json"
            password_file = password_file or self.data_dir / "keys" / ".password"
        if password_file is None:
            secret = Env.from_env().key_password
            password = secret.get_secret_value() if secret is not None else None
            if password is None:
                fail(f"keystore {path} needs --password-file or CIVIC_KEY_PASSWORD")
            return load_key(path, password=password)
        return load_key(path, password_file=password_file)

    def writer(self, signer: AgencyKey) -> Writer:
        outbox = Outbox(self.data_dir / "outbox" / f"{signer.address}.sqlite")
        return Writer(self.ledger(), signer, outbox)

    def salt(self, agency_id: str) -> bytes:
        """The agency's secret salt for case ids: CIVIC_CASE_SALT (hex), else DATA_DIR/keys/case-salt-AGENCY,
        created on first use. Losing it means case references can no longer be matched to case ids."""
        secret = Env.from_env().case_salt
        configured = secret.get_secret_value() if secret is not None else ""
        if configured:
            return bytes.fromhex(configured.removeprefix("0x"))
        path = self.data_dir / "keys" / f"case-salt-{agency_id}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
            err.print(f"created a new case-id salt for {agency_id} in {path}: back it up")
        return bytes.fromhex(path.read_text().strip())


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
        return known | _receipt_cases_on_chain(ledger, agency_id, [c for c in flagged if c not in known])

    return CaseIds(s.salt(agency), agency, opened_flagged)


_RECEIPT_CASE_SELECTOR = keccak(b"receiptCase(bytes32,bytes32)")[:4]


def _receipt_cases_on_chain(ledger: Ledger, agency_id: bytes, case_ids: list[bytes]) -> set[bytes]:
    """Of these case ids, the ones the ledger tracks as issued a receipt: ``receiptCase`` read in JSON-RPC batches
    of 500 calls (an import may ask about thousands of references)."""
    found: set[bytes] = set()
    provider: Any = ledger.w3.provider
    for start in range(0, len(case_ids), 500):
        chunk = case_ids[start : start + 500]
        calls = [("eth_call", [{"to": ledger.address, "data": "0x" + (_RECEIPT_CASE_SELECTOR + agency_id + c).hex()},
                               "latest"]) for c in chunk]
        answers = provider.make_batch_request(calls) if len(calls) > 1 else [provider.make_request(*calls[0])]
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise LedgerError(f"the node answered a batch of {len(chunk)} calls with {answers!r:.200}")
        for case_id, answer in zip(chunk, answers, strict=True):
            if "error" in answer:
                raise LedgerError(f"could not read a case's receipt state from the ledger: {answer['error']}")
            result = bytes.fromhex(str(answer["result"])[2:])
            if int.from_bytes(result[32:64], "big") != 0:  # ReceiptCase.status (the second word) is not None
                found.add(case_id)
    return found


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
