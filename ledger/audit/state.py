"""What ``civic-audit monitor`` keeps on disk between rounds and runs (``--state DIR``): everything it has read from the
chain and verified, so that a restart resumes where it stopped and each round reads only new blocks' logs.

The directory holds

``state.json``
    the manifest: the chain id and contract the state is bound to, the first block read, the last block read (number,
    hash, time) with the contract's entry count and running hash there, how many bytes of ``log.jsonl`` are part of
    the state, and the checkpoints of the last :data:`WINDOW` rounds (block number and hash, and the length of
    ``log.jsonl`` then) from which a reorganised chain is followed. Written whole, atomically: a temporary file,
    fsync, rename, fsync of the directory — a kill mid-write leaves the previous manifest.
``log.jsonl``
    one JSON line per decoded entry (``e``), governance role change (``r``) and batch file read (``b``), appended in
    block order. Only the first ``data_bytes`` bytes the manifest names are the state: lines appended by a round whose
    manifest was never written (a kill between the two) are ignored, and cut off by the next round. After a
    reorganisation the kept part is rewritten (temporary file, fsync, rename) before the manifest.
``batches/<file hash>.csv``
    the exact bytes of every batch file read, checked again against its anchor (``ledger.batches.read``) when the state
    is loaded.
``reports/``
    the JSON report of the latest round (``latest.json``) and of a round with findings (``finding-round-N.json``).

Loading checks the state against itself: every line parses, every batch file matches its anchor, and the entries
fold to the running hash and count the manifest recorded from the contract (a state that does not is *damaged*:
:class:`DamagedState`). A state of another chain or contract is refused (:class:`CannotAudit`): one state directory
follows one ledger.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ledger.audit.chainread import RoleChange
from ledger.audit.errors import CannotAudit
from ledger.batches.read import BatchContent, BatchFileProblem, read_batch
from ledger.chain.logs import DecodedEntry
from ledger.files import replacing
from ledger.records import EntryKind

#: the manifest's ``format``: a state of another format is refused, never read as this one
FORMAT = "civic-audit-monitor-state/1"
#: how many rounds' checkpoints (last block number and hash) are kept to find where a reorganised chain forked
WINDOW = 128
MANIFEST = "state.json"
LOG = "log.jsonl"


class DamagedState(Exception):
    """The state directory's files do not make a whole state (truncated, garbage, or not what the manifest says)."""


@dataclass(frozen=True)
class Checkpoint:
    """The end of a round: its last block, and how long the log was then."""

    number: int
    block_hash: bytes
    data_bytes: int


@dataclass
class Stored:
    """A state: what was read and verified up to `block_number`."""

    chain_id: int
    contract: str
    #: the first block logs were read from (the contract's deployment, or --from-block)
    from_block: int
    block_number: int
    block_hash: bytes
    block_time: int
    #: the contract's entryCount() and runningHash() at `block_number`, which the entries fold to
    entry_count: int
    running_hash: bytes
    entries: list[DecodedEntry] = field(default_factory=list)
    role_changes: list[RoleChange] = field(default_factory=list)
    #: every batch file read: its checked content and where it was read from, by the anchor's seq
    batches: dict[int, tuple[BatchContent, str]] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    #: length of the log file that is part of the state
    data_bytes: int = 0
    rounds: int = 0


@dataclass
class BatchFile:
    """A batch file read in a round: its anchor, where it was read from and its exact bytes."""

    anchor: DecodedEntry
    where: str
    content: bytes


class StateDir:
    """The state directory `path` (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifest = self.path / MANIFEST
        self.log = self.path / LOG
        self.batches = self.path / "batches"
        self.reports = self.path / "reports"

    # -- reading

    def load(self, chain_id: int, contract: str) -> Stored | None:
        """The state kept here, or None when there is none. :class:`CannotAudit` when it is another ledger's or of
        another format; :class:`DamagedState` when its files are not whole."""
        try:
            text = self.manifest.read_bytes()
        except FileNotFoundError:
            if self.log.exists():
                raise DamagedState(f"{self.log} is there but {self.manifest} is not") from None
            return None
        except OSError as exc:
            raise CannotAudit(f"cannot read the monitor's state {self.manifest}: {exc}") from exc
        try:
            m = json.loads(text)
            if not isinstance(m, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise DamagedState(f"{self.manifest} is not a JSON object ({exc})") from exc
        if m.get("format") != FORMAT:
            found = str(m.get("format"))[:80]
            raise CannotAudit(f"{self.manifest} is not a state this auditor reads (format {found!r}, not {FORMAT!r}): "
                              "give another --state directory")
        try:
            stored = Stored(
                chain_id=int(m["chain_id"]), contract=str(m["contract"]), from_block=int(m["from_block"]),
                block_number=int(m["block"]["number"]), block_hash=_hex(m["block"]["hash"]),
                block_time=int(m["block"]["time"]), entry_count=int(m["entry_count"]),
                running_hash=_hex(m["running_hash"]), data_bytes=int(m["data_bytes"]), rounds=int(m["rounds"]),
                checkpoints=[Checkpoint(int(n), _hex(h), int(b)) for n, h, b in m["checkpoints"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedState(f"{self.manifest} lacks or garbles {exc}") from exc
        if stored.chain_id != chain_id or stored.contract.lower() != contract.lower():
            raise CannotAudit(
                f"the monitor's state in {self.path} follows the ledger at {stored.contract} on chain "
                f"{stored.chain_id}, not {to_checksum_address(contract)} on chain {chain_id}: give each ledger a "
                "--state directory of its own"
            )
        self._read_log(stored)
        return stored

    def _read_log(self, stored: Stored) -> None:
        try:
            with self.log.open("rb") as f:
                data = f.read(stored.data_bytes)
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise CannotAudit(f"cannot read the monitor's state {self.log}: {exc}") from exc
        if len(data) != stored.data_bytes:
            raise DamagedState(f"{self.log} holds {len(data):,} bytes, the manifest says {stored.data_bytes:,}")
        anchors: dict[int, DecodedEntry] = {}
        for number, line in enumerate(data.splitlines(), 1):
            try:
                item = json.loads(line)
                tag = item[0]
                if tag == "e":
                    e = decode_entry(item)
                    stored.entries.append(e)
                    if e.kind == EntryKind.BATCH_ANCHORED:
                        anchors[e.seq] = e
                elif tag == "r":
                    stored.role_changes.append(RoleChange(int(item[1]), int(item[2]), _hex(item[3]), _hex(item[4]),
                                                          str(item[5]), bool(item[6])))
                elif tag == "b":
                    anchor = anchors[int(item[1])]
                    stored.batches[anchor.seq] = (self._batch(anchor), str(item[2]))
                else:
                    raise ValueError(f"unknown line kind {str(tag)[:20]!r}")
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise DamagedState(f"{self.log} line {number} is not a state line ({type(exc).__name__}: "
                                   f"{str(exc)[:200]})") from exc

    def _batch(self, anchor: DecodedEntry) -> BatchContent:
        r = anchor.record
        path = self.batches / f"{r['file_hash'].hex()}.csv"
        try:
            return read_batch(path.read_bytes(), r["root"], r["count"], r["file_hash"])
        except OSError as exc:
            raise DamagedState(f"the batch file {path} cannot be read: {exc}") from exc
        except BatchFileProblem as exc:
            raise DamagedState(f"the batch file {path} no longer matches its anchor (seq {anchor.seq}): {exc}") from exc

    # -- writing

    def save(self, stored: Stored, entries: Sequence[DecodedEntry], role_changes: Sequence[RoleChange],
             batch_files: Sequence[BatchFile], *, rewrite: bool = False) -> None:
        """Add a round's entries, role changes and batch files to the state, whose manifest fields `stored` holds
        (its ``data_bytes``: the log's length before them; updated here, and its block made a checkpoint), and write
        the manifest. `rewrite`: the kept part of the log is rewritten first (after a reorganisation cut it short)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for item in batch_files:
            self.batches.mkdir(exist_ok=True)
            write_atomically(self.batches / f"{item.anchor.record['file_hash'].hex()}.csv", item.content)
        lines = b"".join(
            json.dumps(line, separators=(",", ":")).encode() + b"\n"
            for line in _lines(entries, role_changes, batch_files)
        )
        if rewrite:
            kept = b""
            if stored.data_bytes:
                with self.log.open("rb") as f:
                    kept = f.read(stored.data_bytes)
            if len(kept) != stored.data_bytes:
                raise DamagedState(f"{self.log} is shorter than the {stored.data_bytes:,} bytes to keep")
            write_atomically(self.log, kept + lines)
        else:
            with open(self.log, "ab") as f:
                f.truncate(stored.data_bytes)  # lines of a round whose manifest was never written
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
        stored.data_bytes += len(lines)
        if not stored.checkpoints or stored.checkpoints[-1].number != stored.block_number:
            stored.checkpoints.append(Checkpoint(stored.block_number, stored.block_hash, stored.data_bytes))
            del stored.checkpoints[:-WINDOW]
        write_atomically(self.manifest, json.dumps(self._manifest(stored), indent=1).encode())

    def _manifest(self, s: Stored) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chain_id": s.chain_id,
            "contract": s.contract,
            "from_block": s.from_block,
            "block": {"number": s.block_number, "hash": "0x" + s.block_hash.hex(), "time": s.block_time},
            "entry_count": s.entry_count,
            "running_hash": "0x" + s.running_hash.hex(),
            "data_bytes": s.data_bytes,
            "checkpoints": [[c.number, "0x" + c.block_hash.hex(), c.data_bytes] for c in s.checkpoints],
            "rounds": s.rounds,
            "saved_at": int(time.time()),
        }

    def set_aside(self) -> Path:
        """Move a damaged state out of the way (into ``damaged-<time>/`` beside its files); where it went."""
        aside = self.path / f"damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        aside.mkdir(parents=True, exist_ok=True)
        for name in (MANIFEST, LOG, "batches"):
            if (self.path / name).exists():
                os.replace(self.path / name, aside / name)
        return aside

    def write_report(self, name: str, data: bytes) -> Path:
        self.reports.mkdir(parents=True, exist_ok=True)
        path = self.reports / name
        write_atomically(path, data)
        return path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` whole or not at all (:func:`ledger.files.replacing`)."""
    with replacing(path) as out:
        out.write(data)


# -- the log's lines

def _lines(entries: Iterable[DecodedEntry], role_changes: Iterable[RoleChange],
           batch_files: Iterable[BatchFile]) -> Iterable[list[Any]]:
    for e in entries:
        yield encode_entry(e)
    for r in role_changes:
        yield ["r", r.block_number, r.log_index, "0x" + r.tx_hash.hex(), "0x" + r.role.hex(), r.account, r.granted]
    for b in batch_files:  # after the entries: a batch line names an anchor above it
        yield ["b", b.anchor.seq, b.where]


def encode_entry(e: DecodedEntry) -> list[Any]:
    """A decoded entry as a JSON array (bytes as hex, record values tagged by type): :func:`decode_entry` gives it
    back equal."""
    return [
        "e", e.seq, int(e.kind), e.agency_id.hex(), e.actor, e.record_hash.hex(), e.entry_hash.hex(), e.block_number,
        e.block_hash.hex(), e.block_time, e.tx_hash.hex(), e.log_index,
        {k: _value(v) for k, v in e.record.items()}, e.version,
        None if e.jurisdiction is None else e.jurisdiction.hex(), e.signer,
    ]


def decode_entry(item: list[Any]) -> DecodedEntry:
    (_, seq, kind, agency, actor, record_hash, entry_hash, block_number, block_hash, block_time, tx_hash, log_index,
     record, version, jurisdiction, signer) = item
    return DecodedEntry(
        int(seq), EntryKind(kind), bytes.fromhex(agency), str(actor), bytes.fromhex(record_hash),
        bytes.fromhex(entry_hash), int(block_number), bytes.fromhex(block_hash),
        None if block_time is None else int(block_time), bytes.fromhex(tx_hash), int(log_index),
        {str(k): _unvalue(v) for k, v in record.items()}, None if version is None else int(version),
        None if jurisdiction is None else bytes.fromhex(jurisdiction), None if signer is None else str(signer),
    )


def _value(v: Any) -> Any:
    """A record value as JSON: bytes as ``"x<hex>"``, text as ``"s<text>"``, integers as they are, a sequence of
    integers (a calendar's days) as a list."""
    if isinstance(v, bytes):
        return "x" + v.hex()
    if isinstance(v, str):
        return "s" + v
    if isinstance(v, bool) or not isinstance(v, (int, tuple, list)):
        raise TypeError(f"a record value of type {type(v).__name__} is not kept in the state")
    return int(v) if isinstance(v, int) else [int(x) for x in v]


def _unvalue(v: Any) -> Any:
    if isinstance(v, str):
        if v[:1] == "x":
            return bytes.fromhex(v[1:])
        if v[:1] == "s":
            return v[1:]
        raise ValueError(f"an untagged record value {v[:40]!r}")
    if isinstance(v, list):
        return tuple(int(x) for x in v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"a record value of type {type(v).__name__}")
    return v


def _hex(text: Any) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError(f"not a 0x hex string: {str(text)[:40]!r}")
    return bytes.fromhex(text[2:])
