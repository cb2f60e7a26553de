"""The service's settings and the record of which ledger it serves: one definition for the operator's command
line, the API and the local network.

- :class:`Settings`: every ``CIVIC_*`` variable the service reads, typed and checked in one place (pydantic-settings);
  a bad value is refused at start with the variable's name.
- ``DEFAULT_DATA_DIR``: ``data/`` beside the code, where the service keeps what the chain does not hold (keys,
  outboxes, relay store, batch files, audit reports, the SQLite index, ``deployment.json``); ``CIVIC_DATA_DIR``
  moves it.
- :class:`Deployment`: ``DATA_DIR/deployment.json``, written when the ledger is deployed, read by every part that
  is not told the contract's address (``CIVIC_CONTRACT``) explicitly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.errors import InvalidSetting, LedgerError

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEPLOYMENT_FILE = "deployment.json"
ENV_PREFIX = "CIVIC_"

#: blocks on top of an entry's before the indexer reports it final, on a network not in :data:`CONFIRMATIONS_BY_CHAIN`
DEFAULT_CONFIRMATIONS = 12
#: the confirmation depth by chain id, for networks that need another than :data:`DEFAULT_CONFIRMATIONS`
#: (``CIVIC_CONFIRMATIONS``, or ``civic-ledger sync --confirmations``, overrides it): :func:`confirmations_for`
CONFIRMATIONS_BY_CHAIN: dict[int, int] = {
    # anvil's and Hardhat's node's default chain id: the local network of ``make run`` (``ledger.dev.devnet``), one
    # node that does not reorganise on its own; two blocks, as it has always been indexed
    31337: 2,
    # eth-tester's embedded chain (``Chain.embedded_chain``): one process, no reorganisation
    131277322940537: 0,
}
#: how long an indexer's leader lease lasts without a heartbeat before another indexer may take over the store
#: (``ledger.index.leader``)
DEFAULT_LEASE_SECONDS = 30


def confirmations_for(chain_id: int, given: int | None = None) -> int:
    """The confirmation depth to index chain `chain_id` with: `given` (a setting or an option) when there is one,
    else the chain's default (:data:`CONFIRMATIONS_BY_CHAIN`, :data:`DEFAULT_CONFIRMATIONS`)."""
    if given is not None:
        if given < 0:
            raise InvalidSetting(f"the confirmation depth must be 0 or more, not {given}")
        return given
    return CONFIRMATIONS_BY_CHAIN.get(chain_id, DEFAULT_CONFIRMATIONS)


class Settings(BaseSettings):
    """Every ``CIVIC_*`` setting (the field's name in upper case after the prefix: ``data_dir`` is
    ``CIVIC_DATA_DIR``). Read with :meth:`from_env`; an empty variable counts as unset."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", env_ignore_empty=True)

    #: where the service keeps what the chain does not hold
    data_dir: Path = DEFAULT_DATA_DIR
    #: JSON-RPC URL of the chain's node
    rpc_url: str = DEFAULT_RPC_URL
    #: the ledger's address, and the chain id to insist on (default: the data directory's deployment record)
    contract: str | None = None
    chain_id: int | None = Field(default=None, gt=0)
    #: SQLAlchemy URL of the index (default: SQLite in the data directory)
    store_url: str | None = None
    #: where published batch files are (default: ``DATA_DIR/batches``)
    batch_dir: Path | None = None
    #: API: memory for rebuilt Merkle trees of batches
    batch_tree_cache_bytes: int = Field(default=256 * 2**20, ge=0)
    #: API: requests per client per minute (0: no limit) — cheap reads, expensive reads (figures computed afresh,
    #: exports) and writes each have their own budget; a client is an IPv4 address or an IPv6 /64
    read_rate_per_minute: int = Field(default=6000, ge=0)
    expensive_rate_per_minute: int = Field(default=60, ge=0)
    write_rate_per_minute: int = Field(default=600, ge=0)
    #: API: reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For names the client;
    #: from any other peer the header is ignored
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    #: API: exports streaming at once, per process and per client; figures computed at once per process, requests
    #: waiting for one, and the share of a process's time they may take (computation-seconds per second, over 10 s),
    #: beyond which expensive work is shed (503); the longest a read statement may run (ms)
    max_exports: int = Field(default=4, ge=1)
    max_exports_per_client: int = Field(default=1, ge=1)
    max_computations: int = Field(default=1, ge=1)
    max_computations_waiting: int = Field(default=8, ge=0)
    computation_share: float = Field(default=0.25, gt=0, le=1)
    statement_timeout_ms: int = Field(default=15_000, ge=0)
    #: API: citizens' filings — filings per client address per minute (0: no limit), the proof of work's leading zero
    #: bits (0: none; ``ledger.filings``), filings relayed per agency per rolling day, and the API keys of Open311 apps
    #: that may file through ``POST requests``, comma-separated ``name=key`` pairs
    filing_rate_per_minute: int = Field(default=2, ge=0)
    filing_work_bits: int = Field(default=18, ge=0, le=24)
    filings_per_agency_per_day: int = Field(default=2000, ge=1)
    open311_api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    #: API: whether agencies' webhooks may be http and point at loopback or private addresses (a local case system)
    webhook_allow_private: bool = False
    #: API: origins allowed to read cross-origin, comma-separated ("*": everyone)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    #: API: what one agency key may make the relayer pay for (0: no limit; unset: the relay's defaults)
    relay_tx_per_hour: int | None = Field(default=None, ge=0)
    relay_tx_per_day: int | None = Field(default=None, ge=0)
    relay_gas_per_hour: int | None = Field(default=None, ge=0)
    relay_gas_per_day: int | None = Field(default=None, ge=0)
    #: command line: the password of a keystore named with --key (else --password-file), and the agencies' secret
    #: salt for case ids, hex (else DATA_DIR/keys/case-salt-AGENCY)
    key_password: SecretStr | None = None
    case_salt: SecretStr | None = None
    #: the indexer: blocks before an entry is final (unset: the chain's default, :func:`confirmations_for`), and how
    #: long its leader lease lasts without a heartbeat before another indexer may take over (seconds)
    confirmations: int | None = Field(default=None, ge=0)
    index_lease_seconds: int = Field(default=DEFAULT_LEASE_SECONDS, ge=1)
    #: /readyz: how many blocks the index may lag the node's head, and how many of the newest batches' files it
    #: checks are present (``api.readiness``)
    ready_max_lag_blocks: int = Field(default=20, ge=0)
    ready_batch_files: int = Field(default=16, ge=0)
    #: the local network (``make run``): the chain's and the API's ports on loopback
    chain_port: int = Field(default=8545, gt=0, lt=65536)
    api_port: int = Field(default=8000, gt=0, lt=65536)

    @field_validator("cors_origins", "open311_api_keys", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @classmethod
    def from_env(cls, **given: Any) -> Settings:
        """The settings from the environment (``given`` values first); :class:`InvalidSetting` names each bad
        variable."""
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidSetting(f"bad setting: {problems}") from None

    def deployment(self) -> Deployment | None:
        """The data directory's deployment record, unless the contract's address is given explicitly."""
        return Deployment.of(self.data_dir) if self.contract is None else None

    def ledger_address(self) -> tuple[str | None, int | None]:
        """The ledger's address and chain id: as given, else as the data directory's deployment record says (the
        chain id given, if any, still wins)."""
        deployment = self.deployment()
        if deployment is not None:
            return deployment.address, self.chain_id or deployment.chain_id
        return self.contract, self.chain_id


@dataclass(frozen=True)
class Deployment:
    """Where the ledger this data directory serves was deployed, and from what: enough for anyone to find the contract
    and check its code against the published sources (``civic-ledger deploy`` writes every field, the local network
    the first four; a record without the others still loads)."""

    chain_id: int
    address: str
    block: int
    governance: str
    #: the deployment transaction and the account that sent and paid for it (not the governance, which may be a
    #: multisig with no key on the deploying machine)
    tx_hash: str = ""
    deployer: str = ""
    #: seconds a handover of the governance role waits (AccessControlDefaultAdminRules), as given to the constructor
    admin_delay: int = 0
    #: confirmations waited for before the record was written
    confirmations: int = 0
    #: the compiler's long version and settings (contracts/compiler.json) the shipped bytecode was built with
    compiler: str = ""
    compiler_settings: dict[str, Any] = field(default_factory=dict)
    #: sha256 of the sources' own sha256 hashes by source unit name (``ledger.chain.deploy.source_hash``)
    source_hash: str = ""

    @classmethod
    def load(cls, path: Path) -> Deployment | None:
        """The record at ``path`` (a data directory's ``deployment.json``), or None when there is none."""
        if not path.exists():
            return None
        try:
            recorded = json.loads(path.read_text())
            settings = recorded.get("compiler_settings", {})
            if not isinstance(settings, dict):
                raise TypeError("compiler_settings is not an object")
            return cls(chain_id=int(recorded["chain_id"]), address=str(recorded["address"]),
                       block=int(recorded.get("block", 0)), governance=str(recorded.get("governance", "")),
                       tx_hash=str(recorded.get("tx_hash", "")), deployer=str(recorded.get("deployer", "")),
                       admin_delay=int(recorded.get("admin_delay", 0)),
                       confirmations=int(recorded.get("confirmations", 0)),
                       compiler=str(recorded.get("compiler", "")), compiler_settings=settings,
                       source_hash=str(recorded.get("source_hash", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LedgerError(f"{path} is not a deployment record ({type(exc).__name__}: {exc})") from None

    @classmethod
    def of(cls, data_dir: Path) -> Deployment | None:
        return cls.load(Path(data_dir) / DEPLOYMENT_FILE)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves half a file
