"""Configuration of the API, from the environment (CIVIC_*) or given directly (tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ledger.config import DEFAULT_DATA_DIR, Deployment
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
    #: origins allowed to read cross-origin ("*": everyone, for a public audit API)
    cors_origins: tuple[str, ...] = ("*",)
    #: what one agency key may make the relayer pay for, per rolling hour and day (0: no limit); shared by every
    #: worker (kept in the relay store). CIVIC_RELAY_TX_PER_HOUR, _TX_PER_DAY, _GAS_PER_HOUR, _GAS_PER_DAY
    relay_budgets: RelayBudgets = field(default_factory=RelayBudgets)
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
        data_dir = Path(os.environ.get("CIVIC_DATA_DIR", DEFAULT_DATA_DIR))
        address, chain_id = os.environ.get("CIVIC_CONTRACT"), os.environ.get("CIVIC_CHAIN_ID")
        deployment = Deployment.of(data_dir) if address is None else None
        if deployment is not None:
            address, chain_id = deployment.address, chain_id or str(deployment.chain_id)
        return cls(
            store_url=os.environ.get("CIVIC_STORE_URL", default_url(data_dir)),
            rpc_url=os.environ.get("CIVIC_RPC_URL", "http://127.0.0.1:8545"),
            contract_address=address,
            chain_id=int(chain_id) if chain_id else None,
            data_dir=data_dir,
            batch_dir=Path(os.environ["CIVIC_BATCH_DIR"]) if os.environ.get("CIVIC_BATCH_DIR") else None,
            batch_tree_cache_bytes=int(
                os.environ.get("CIVIC_BATCH_TREE_CACHE_BYTES", cls.batch_tree_cache_bytes)
            ),
            read_rate_per_minute=int(os.environ.get("CIVIC_READ_RATE_PER_MINUTE", cls.read_rate_per_minute)),
            write_rate_per_minute=int(os.environ.get("CIVIC_WRITE_RATE_PER_MINUTE", cls.write_rate_per_minute)),
            cors_origins=tuple(
                o.strip() for o in os.environ.get("CIVIC_CORS_ORIGINS", "*").split(",") if o.strip()
            ),
            relay_budgets=RelayBudgets(
                transactions_per_hour=_count("CIVIC_RELAY_TX_PER_HOUR", RelayBudgets.transactions_per_hour),
                transactions_per_day=_count("CIVIC_RELAY_TX_PER_DAY", RelayBudgets.transactions_per_day),
                gas_per_hour=_count("CIVIC_RELAY_GAS_PER_HOUR", RelayBudgets.gas_per_hour),
                gas_per_day=_count("CIVIC_RELAY_GAS_PER_DAY", RelayBudgets.gas_per_day),
            ),
        )


def _count(name: str, default: int) -> int:
    """A whole number ≥ 0 from the environment (``_`` as a thousands separator allowed: 50_000_000)."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number (0 for no limit), not {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 (no limit) or more, not {value}")
    return value
