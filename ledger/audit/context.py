"""What every check reads: the audit's settings and thresholds, the chain snapshot, the state rebuilt from it, and
(when one was named) the public API."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.chainread import ChainReader, ChainSnapshot, RoleChange
from ledger.audit.rebuild import LedgerModel, rebuild
from ledger.batches.read import BatchContent
from ledger.chain.logs import DecodedEntry
from ledger.metrics import LATE_RECORDING_SECONDS

DAY = 86_400


@dataclass(frozen=True)
class Thresholds:
    """The audit's judgement calls, each documented where it is used (``ledger/audit/checks``) and in the report."""

    #: a case event recorded more than this long after its claimed time is a late recording (a warning); the
    #: published metrics use the same 24 h (``ledger.metrics.LATE_RECORDING_SECONDS``)
    late_recording_seconds: int = LATE_RECORDING_SECONDS
    #: ... and more than this long after it, a finding: an entry claimed a week before it was recorded
    extreme_recording_seconds: int = 7 * DAY
    #: an agency with at least `agency_min_events` case events, more than this share of them recorded late, is a finding
    agency_late_share: float = 0.05
    agency_min_events: int = 50
    #: a hold is "late" when it starts after this fraction of the case's deadline (hold time excluded) has passed
    late_hold_fraction: float = 0.8
    #: a case on hold for more than this many times its deadline is listed as a long hold (a warning)
    long_hold_factor: float = 3.0
    #: an agency with at least `agency_min_holds` holds, more than this share of them late, is a finding
    agency_late_hold_share: float = 0.25
    agency_min_holds: int = 8

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AuditConfig:
    """What to audit, and how."""

    rpc_url: str
    contract: str
    #: base URL of the public API to cross-check (None: chain checks only)
    api_url: str | None = None
    #: where batch files are published: a directory of files named by their hash, or a public API's base URL
    #: (GET /api/v1/batches/{seq}/file); None: the API given as `api_url`, if any
    batches: str | None = None
    from_block: int | None = None
    to_block: int | None = None
    #: the chain id the auditor expects; another one is "could not run" (exit code 2)
    chain_id: int | None = None
    #: at most this many cases are fetched from the API one by one (all of them when there are no more)
    case_sample: int = 1000
    #: what every sample of the API is drawn from (:meth:`AuditContext.rng`): secret until the report prints it, so
    #: an operator cannot know which views will be looked at; give one (``--seed``) to replay a run exactly
    seed: int = field(default_factory=lambda: secrets.randbits(64))
    #: when given, the case-view sample size is the least n that catches a lie in at least one of `assume_lies` case
    #: views with this probability (``ledger.audit.sampling.sample_size``), in place of `case_sample`
    confidence: float | None = None
    assume_lies: int = 1
    #: metric selections drawn at random (beyond the fixed ones), and scorecard selections likewise
    metric_sample: int = 24
    scorecard_sample: int = 4
    #: an API whose position is more than this many blocks, or whose first unindexed block is more than this many
    #: seconds (block time), behind the audited block is a finding
    max_lag_blocks: int = 50
    max_lag_seconds: int = 600
    #: whether to compile the published sources afresh (off: the code check is skipped, and says so)
    compile: bool = True
    #: where verified builds are cached (``ledger.audit.build``; None: ``$XDG_CACHE_HOME/civic-ledger/builds``), and
    #: whether to use the cache at all (off: compiled afresh every run, nothing kept)
    build_cache: str | None = None
    use_build_cache: bool = True
    #: the largest API answer read whole, and the largest bulk export or published file (``ledger.audit.apiread``)
    max_response_bytes: int = 64 << 20
    max_export_bytes: int = 4 << 30
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: findings (and warnings) listed per check; the rest are counted
    max_findings: int = 1000
    timeout: float = 60.0


@dataclass
class AuditContext:
    config: AuditConfig
    chain: ChainSnapshot
    model: LedgerModel
    #: for calls a check needs beyond the snapshot (historical contract state); None in unit tests
    reader: ChainReader | None = None
    #: the public API (ledger.audit.apiread.PublicApi) when one was named
    api: Any = None
    #: the fresh build: returns the artifact, or raises ledger.errors.BuildError (None: compiling is off)
    compiled: Callable[[], dict[str, Any]] | None = None
    #: filled by checks for the report's charts
    stats: dict[str, Any] = field(default_factory=dict)
    #: shared between checks (e.g. the API's view of the chain, read once)
    cache: dict[str | tuple[str, int], Any] = field(default_factory=dict)
    #: each anchored batch's file as fetched and checked (ledger.audit.batchfiles.BatchOutcome), by the anchor's seq;
    #: None when no source of batch files was given
    batch_files: dict[int, Any] | None = None
    #: where batch files were read from (None: nowhere)
    batch_source: str | None = None
    #: whether they were read from the audited public API itself (GET /api/v1/batches/{seq}/file)
    batches_from_api: bool = False

    @property
    def thresholds(self) -> Thresholds:
        return self.config.thresholds

    def rng(self, purpose: str) -> random.Random:
        """A random source for one sample of the API (`purpose` names it, e.g. ``"case views"``), drawn from the
        audit's secret seed: each purpose gets its own stream, so adding a sample elsewhere never changes this one,
        and ``--seed`` replays every sample exactly."""
        return random.Random(f"{self.config.seed}:{purpose}")

    @property
    def as_of(self) -> int:
        """The audit's "now": the snapshot block's time."""
        return self.chain.block_time

    @classmethod
    def for_entries(
        cls,
        entries: Sequence[DecodedEntry],
        *,
        role_changes: Sequence[RoleChange] = (),
        block_time: int | None = None,
        config: AuditConfig | None = None,
        contract_count: int | None = None,
        contract_head: bytes | None = None,
        batches: Mapping[int, BatchContent] | None = None,
    ) -> AuditContext:
        """A context over decoded entries alone (no node): for the checks that need nothing else, and for tests that
        feed them crafted streams. `batches`: the checked contents of batch anchors' files, by the anchor's seq."""
        ordered = sorted(entries, key=lambda e: e.seq)
        model = rebuild(ordered, batches)
        last_time = max((e.block_time or 0 for e in ordered), default=0)
        snapshot = ChainSnapshot(
            rpc_where="(entries given)", chain_id=0, address="0x" + "00" * 20,
            block_number=max((e.block_number for e in ordered), default=0), block_hash=b"\0" * 32,
            block_time=block_time if block_time is not None else last_time, code=b"",
            contract_count=model.count if contract_count is None else contract_count,
            contract_head=model.head if contract_head is None else contract_head, from_block=0,
            entries=list(ordered), role_changes=list(role_changes),
            headers={e.block_number: (e.block_hash, e.block_time or 0) for e in ordered},
        )
        return cls(config=config or AuditConfig(rpc_url="", contract=snapshot.address), chain=snapshot, model=model)
