"""Configuration of the API, from the environment (CIVIC_*, read by ``ledger.config.Settings``) or given directly
(tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ledger.config import DEFAULT_DATA_DIR, Settings
from ledger.relay.budgets import RelayBudgets
from ledger.store.db import default_url


@dataclass(frozen=True)
class ApiSettings:
    #: SQLAlchemy URL of the index the API reads
    store_url: str
    #: JSON-RPC URL of the chain (chain facts, and the write API's relaying); None: chain facts from the index only
    rpc_url: str | None = None
    contract_address: str | None = None
    chain_id: int | None = None
    #: directory of the relayer key and its outbox (write API)
    data_dir: Path = DEFAULT_DATA_DIR
    #: directory of the published batch files (``ledger.batches.BatchStore``, named by their hash); None: the
    #: service's default, ``<data_dir>/batches``
    batch_dir: Path | None = None
    #: memory for rebuilt Merkle trees of batches (about 100 bytes per batched entry: a 100,000-entry batch takes
    #: 10 MB), so a batched record's proof is rebuilt from its file once, not on every lookup
    batch_tree_cache_bytes: int = 256 * 2**20
    #: largest page a list endpoint returns
    max_page_size: int = 1000
    default_page_size: int = 100
    #: requests per client address per minute, for reads and for writes (agency and citizen records, audit reports;
    #: 0: no limit); per uvicorn worker
    read_rate_per_minute: int = 6000
    write_rate_per_minute: int = 600
    #: expensive reads per client per minute: figures computed afresh (not served from the cache) and exports
    expensive_rate_per_minute: int = 60
    #: reverse proxies whose X-Forwarded-For names the client (addresses or CIDR networks; ``api.clients``)
    trusted_proxies: tuple[str, ...] = ()
    #: exports streaming at once (per process) and per client
    max_exports: int = 4
    max_exports_per_client: int = 1
    #: figures computed at once per process, requests that may wait for one, and the share of the process's time
    #: computations may take over 10 s (beyond any: 503 overloaded; ``api.overload``)
    max_computations: int = 1
    max_computations_waiting: int = 8
    computation_share: float = 0.25
    #: the longest one statement of a read may run, in milliseconds (0: no limit); past it the request is a 503
    statement_timeout_ms: int = 15_000
    #: origins allowed to read cross-origin ("*": everyone, for a public audit API)
    cors_origins: tuple[str, ...] = ("*",)
    #: what one agency key may make the relayer pay for, per rolling hour and day (0: no limit); shared by every
    #: worker (kept in the relay store). CIVIC_RELAY_TX_PER_HOUR, _TX_PER_DAY, _GAS_PER_HOUR, _GAS_PER_DAY
    relay_budgets: RelayBudgets = field(default_factory=RelayBudgets)
    #: citizens' filings: per client per minute (0: no limit), the proof of work's bits (0: none), per agency per
    #: rolling day, and the Open311 apps' API keys (app name -> key) that may ``POST requests``
    filing_rate_per_minute: int = 2
    filing_work_bits: int = 18
    filings_per_agency_per_day: int = 2000
    open311_api_keys: dict[str, str] = field(default_factory=dict)
    #: whether an agency's webhook may be http and point at loopback or private addresses (a local case system)
    webhook_allow_private: bool = False
    #: readiness (``GET /readyz``, ``api.readiness``): how many blocks the index may be behind the node's head, and how
    #: many of the newest indexed batches must have their file in the batch directory (a stat each)
    ready_max_lag_blocks: int = 20
    ready_batch_files: int = 16
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def batch_directory(self) -> Path:
        """Where the batch files are: ``batch_dir``, or ``<data_dir>/batches``."""
        return Path(self.batch_dir) if self.batch_dir is not None else Path(self.data_dir) / "batches"

    @property
    def audit_report_directory(self) -> Path:
        """Where the audit reports published by their hash are kept: ``<data_dir>/audit-reports``."""
        return Path(self.data_dir) / "audit-reports"

    @classmethod
    def from_env(cls) -> ApiSettings:
        """The API's settings from the CIVIC_* variables (``ledger.config.Settings``, the one definition of them)."""
        env = Settings.from_env()
        address, chain_id = env.ledger_address()
        defaults = RelayBudgets()
        return cls(
            store_url=env.store_url or default_url(env.data_dir),
            rpc_url=env.rpc_url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=env.data_dir,
            batch_dir=env.batch_dir,
            batch_tree_cache_bytes=env.batch_tree_cache_bytes,
            read_rate_per_minute=env.read_rate_per_minute,
            write_rate_per_minute=env.write_rate_per_minute,
            expensive_rate_per_minute=env.expensive_rate_per_minute,
            trusted_proxies=env.trusted_proxies,
            max_exports=env.max_exports,
            max_exports_per_client=env.max_exports_per_client,
            max_computations=env.max_computations,
            max_computations_waiting=env.max_computations_waiting,
            computation_share=env.computation_share,
            statement_timeout_ms=env.statement_timeout_ms,
            cors_origins=env.cors_origins,
            filing_rate_per_minute=env.filing_rate_per_minute,
            filing_work_bits=env.filing_work_bits,
            filings_per_agency_per_day=env.filings_per_agency_per_day,
            open311_api_keys=_api_keys(env.open311_api_keys),
            webhook_allow_private=env.webhook_allow_private,
            ready_max_lag_blocks=env.ready_max_lag_blocks,
            ready_batch_files=env.ready_batch_files,
            relay_budgets=RelayBudgets(
                transactions_per_hour=_or(env.relay_tx_per_hour, defaults.transactions_per_hour),
                transactions_per_day=_or(env.relay_tx_per_day, defaults.transactions_per_day),
                gas_per_hour=_or(env.relay_gas_per_hour, defaults.gas_per_hour),
                gas_per_day=_or(env.relay_gas_per_day, defaults.gas_per_day),
            ),
        )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _api_keys(pairs: tuple[str, ...]) -> dict[str, str]:
    """``name=key`` pairs as app name -> key; a pair without a name or a key of fewer than 16 characters is refused."""
    keys: dict[str, str] = {}
    for pair in pairs:
        name, _, key = pair.partition("=")
        if not name.strip() or len(key.strip()) < 16:
            raise ValueError("CIVIC_OPEN311_API_KEYS: each entry is name=key, the key at least 16 characters")
        keys[name.strip()] = key.strip()
    return keys
