"""Where the index stands: the ``sync_state`` row of the ledger the API serves (:class:`IndexState`, which every
answer's freshness and ETag depend on) and what identifies everything the index holds (:class:`IndexContent`, the
figures cache's key). Read in a snapshot (:func:`index_state`, :func:`index_content_in`) or in one statement on the
hot paths (:data:`STATE_SQL` through ``api.deps.IndexReader``; :func:`index_content_of`); the case lookup's one
statement (``api.read.cases.CASE_SQL``) selects the same state columns, read here by name (:func:`state_from_row`).
Reads ``sync_state`` and counts withheld ``batches``; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, text

from api.read._common import named, select_list
from ledger.batches.read import WITHHELD_IMPOSSIBLE, WITHHELD_MISSING
from ledger.encoding import ZERO_HEAD
from ledger.store.schema import sync_state


@dataclass(frozen=True)
class IndexState:
    """The ``sync_state`` row of the ledger the API serves (an empty index before the first sync)."""

    contract_address: str | None
    chain_id: int | None
    deploy_block: int | None
    last_block: int
    entry_count: int
    running_hash: bytes
    finalized_block: int
    halted_reason: str | None
    #: batches withheld as missing and as impossible: a batch released (its file published) or found impossible
    #: changes the index without moving the rest
    withheld: tuple[int, int] = (0, 0)

    def is_final(self, block_number: int) -> bool:
        return block_number <= self.finalized_block

    @property
    def position(self) -> tuple[Any, ...]:
        """What changes whenever anything the API shows may change (an ETag part)."""
        return (self.chain_id, self.contract_address, self.entry_count, self.last_block, self.finalized_block,
                *self.withheld)


#: the columns of a ``sync_state`` row the state is made of (:func:`state_from_row`), named as in the table
STATE_COLUMNS = (
    "contract_address",
    "chain_id",
    "deploy_block",
    "last_block",
    "entry_count",
    "running_hash",
    "finalized_block",
    "halted_reason",
)
#: the withheld batches as :attr:`IndexState.withheld` counts them (two columns, for the one-statement reads):
#: ``(name, SQL expression)``
WITHHELD_COLUMNS = (
    ("withheld_missing", f"(SELECT count(*) FROM batches w WHERE w.withheld = '{WITHHELD_MISSING}')"),
    ("withheld_impossible", f"(SELECT count(*) FROM batches w WHERE w.withheld = '{WITHHELD_IMPOSSIBLE}')"),
)
WITHHELD_SQL = select_list(WITHHELD_COLUMNS)


def withheld_of(row: Mapping[Any, Any]) -> tuple[int, int]:
    """:attr:`IndexState.withheld` from a row holding the :data:`WITHHELD_COLUMNS`."""
    return int(row["withheld_missing"] or 0), int(row["withheld_impossible"] or 0)


def index_state(conn: Connection, contract_address: str | None, chain_id: int | None) -> IndexState:
    rows = conn.execute(select(sync_state)).mappings().all()
    row = pick_state_row(rows, contract_address)
    if row is None:
        return IndexState(contract_address, chain_id, None, -1, 0, ZERO_HEAD, -1, None)
    return state_from_row(row, withheld_of(conn.execute(text(f"SELECT {WITHHELD_SQL}")).mappings().one()))


#: where the index stands (every sync_state row), the block hash of the last entry (:class:`IndexContent`; of its
#: batch when that is withheld) and the withheld batches: ``(name, SQL expression)``, in order
STATE_SQL_COLUMNS = (
    *((name, f"s.{name}") for name in STATE_COLUMNS),
    (
        "last_entry_block",
        """COALESCE((SELECT e.block_hash FROM entries e WHERE e.seq = s.entry_count - 1),
                (SELECT b.block_hash FROM batches b WHERE b.seq < s.entry_count ORDER BY b.seq DESC LIMIT 1))""",
    ),
    *WITHHELD_COLUMNS,
)
STATE_SQL = f"""
SELECT {select_list(STATE_SQL_COLUMNS)}
FROM sync_state s ORDER BY contract_address
"""
_STATE_SQL_NAMES = tuple(name for name, _ in STATE_SQL_COLUMNS)


def pick_state_row(rows: Sequence[Mapping[Any, Any]], contract_address: str | None) -> Mapping[Any, Any] | None:
    """The row of the ledger the API serves: the first whose contract address is ``contract_address`` (in any case),
    else the first (None: no row, an empty index)."""
    if not rows:
        return None
    if contract_address is not None:
        wanted = contract_address.lower()
        for row in rows:
            if row["contract_address"].lower() == wanted:
                return row
    return rows[0]


def state_from_row(row: Mapping[Any, Any], withheld: tuple[int, int]) -> IndexState:
    """The state in the :data:`STATE_COLUMNS` of a row (of ``sync_state``, :data:`STATE_SQL` or ``CASE_SQL``)."""
    return IndexState(
        contract_address=row["contract_address"],
        chain_id=int(row["chain_id"]),
        deploy_block=int(row["deploy_block"]),
        last_block=int(row["last_block"]),
        entry_count=int(row["entry_count"]),
        running_hash=bytes(row["running_hash"]),
        finalized_block=int(row["finalized_block"]),
        halted_reason=row["halted_reason"],
        withheld=withheld,
    )


@dataclass(frozen=True)
class IndexContent:
    """Where the index stands, and what identifies everything it holds."""

    state: IndexState
    #: hash of the block holding the last entry (None: no entry)
    last_entry_block: bytes | None

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal exactly when the index holds the same rows: every row is derived from the entries (and their blocks'
        times), the running hash commits to every entry in order, and the block hash of the last one to every block
        up to it, so to every entry's block and time — even after a reorganisation that re-included the same entries
        elsewhere — and the withheld batches say which of the entries are in the index (a batch released or found
        impossible changes them). ``last_block`` is left out on purpose: it moves with blocks that carry no entry,
        which change nothing."""
        s = self.state
        return (s.chain_id, s.contract_address, s.entry_count, s.running_hash, self.last_entry_block, s.withheld)


def index_content_of(rows: Sequence[Sequence[Any]], contract_address: str | None, chain_id: int | None) -> IndexContent:
    """The :class:`IndexContent` in the rows of :data:`STATE_SQL` as the driver gives them (``api.deps.IndexReader``),
    chosen as :func:`index_state` chooses."""
    return _content_of([named(_STATE_SQL_NAMES, row) for row in rows], contract_address, chain_id)


def index_content_in(conn: Connection, contract_address: str | None, chain_id: int | None) -> IndexContent:
    """The :class:`IndexContent` read on ``conn`` (in its transaction, e.g. a snapshot)."""
    return _content_of(conn.execute(text(STATE_SQL)).mappings().all(), contract_address, chain_id)


def _content_of(rows: Sequence[Mapping[Any, Any]], contract_address: str | None, chain_id: int | None) -> IndexContent:
    row = pick_state_row(rows, contract_address)
    if row is None:
        return IndexContent(IndexState(contract_address, chain_id, None, -1, 0, ZERO_HEAD, -1, None), None)
    last = row["last_entry_block"]
    return IndexContent(state_from_row(row, withheld_of(row)), None if last is None else bytes(last))
