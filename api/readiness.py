"""Whether this API process should be sent traffic (``GET /readyz``, ``api.routes.ops``): three checks, each with why.

- ``database``: the index answers (its ``sync_state`` read in a snapshot: an unreachable server, a pool exhausted, a
  schema missing all fail it).
- ``index``: indexing is not halted and, when a node is configured, the node answers for the ledger's chain and the
  index is at most ``ready_max_lag_blocks`` (``CIVIC_READY_MAX_LAG_BLOCKS``) blocks behind its head; a node that does
  not answer is unready, since the index cannot be known to be current. The node is asked through the app's
  ``NodeProbe`` (``api.routes.chain``: at most once a second, a couple of seconds at most). Without a node the
  distance from the head is not checked.
- ``batch_files``: the files of the newest ``ready_batch_files`` (``CIVIC_READY_BATCH_FILES``) indexed Merkle-anchored
  batches are in the batch directory (a stat each, no hashing), so the batch files and proofs the API serves are
  there (say, the volume holding them is mounted). Batches withheld by the index are not looked for: the index says
  why, and the metrics count them. With no batch indexed there is nothing to look for.

The checks read one row per ledger, one index range of ``ready_batch_files`` rows and stat as many files: they cost
the same on a city's index as on an empty one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc

from api.batches import batch_trees
from api.read._common import read_snapshot
from api.read.ops import IndexProbe, index_probe, newest_batch_files
from api.settings import ApiSettings

log = logging.getLogger(__name__)

#: how long one answer is reused, and how long a request waits for the checks before answering unready, in seconds
FRESH_FOR = 1.0
TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and what it found (why it failed)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def body(self) -> dict[str, Any]:
        """The answer's JSON: ``{"status": "ready"|"unready", "checks": [{"name", "ok", "detail"}, …]}``."""
        return {
            "status": "ready" if self.ready else "unready",
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def timed_out() -> Readiness:
    """The answer when the checks took longer than :data:`TIMEOUT` (a database or node that hangs)."""
    return Readiness((Check("checks", False, f"the checks did not finish within {TIMEOUT:.0f} s"),))


def check(app: Any, node_status: Callable[[], dict[str, Any]]) -> Readiness:
    """Run the checks for ``app`` (blocking: in a worker thread); ``node_status`` is the node probe's answer."""
    settings: ApiSettings = app.state.settings
    try:
        with read_snapshot(app.state.store) as conn:
            probe = index_probe(conn, settings.contract_address, settings.chain_id)
            files = newest_batch_files(conn, settings.ready_batch_files)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        # the type only: the message may quote a statement's parameters or the database's URL
        log.warning("readiness: the index database did not answer (%s)", type(exc).__name__)
        unknown = "not checked: the index database did not answer"
        return Readiness((
            Check("database", False, f"the index database did not answer ({type(exc).__name__})"),
            Check("index", False, unknown),
            Check("batch_files", False, unknown),
        ))
    return Readiness((
        Check("database", True, "the index database answers"),
        index_check(probe, node_status(), settings),
        batch_files_check(app, files),
    ))


def index_check(probe: IndexProbe, node: dict[str, Any], settings: ApiSettings) -> Check:
    """Not halted, and within ``ready_max_lag_blocks`` of the head of a node that answers for the ledger's chain."""
    state = probe.state
    if state.halted_reason:
        return Check("index", False, f"indexing is halted: {state.halted_reason}")
    if not node.get("configured"):
        where = "nothing indexed yet" if state.last_block < 0 else f"indexed to block {state.last_block}"
        return Check("index", True, f"{where}; no node is configured, so the distance from the head is not checked")
    if not node.get("reachable"):
        return Check("index", False, f"the node does not answer ({node.get('error', 'node unreachable')})")
    if settings.chain_id is not None and node.get("chain_id") != settings.chain_id:
        return Check("index", False, f"the node serves chain {node.get('chain_id')}, not the ledger's chain "
                     f"{settings.chain_id}")
    behind = max(0, int(node["head_block"]) - state.last_block)  # a block number: the probe checked it
    limit = settings.ready_max_lag_blocks
    return Check("index", behind <= limit, f"{behind} blocks behind the node's head (at most {limit})")


def batch_files_check(app: Any, files: list[bytes]) -> Check:
    """The files of the newest indexed batches (``files``: their hashes) are in the app's batch directory."""
    if not files:
        return Check("batch_files", True, "no indexed batch among the newest anchored")
    store = batch_trees(app).store
    if not store.directory.is_dir():
        return Check("batch_files", False, "the batch directory does not exist")
    missing = sum(1 for file_hash in files if not store.path(file_hash).is_file())
    if missing:
        return Check("batch_files", False, f"{missing} of the newest {len(files)} indexed batches' files are not in "
                     "the batch directory")
    return Check("batch_files", True, f"the newest {len(files)} indexed batches' files are there")
