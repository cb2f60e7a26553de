"""Read everything the audit needs from a JSON-RPC node, as of one snapshot block: the contract's code, its own
entry count and running hash, every log it emitted (entries and governance role changes) and the headers of the
blocks holding them.

The node reads are ``ledger.chain.reader.LedgerReader``'s, the ones the indexer makes. Logs come from raw
``eth_getLogs`` in block ranges sized to the node (``ledger.chain.reader.RangeSizer``: halved when it refuses a range
as too large, grown while ranges are sparse), the next range fetched in the background while one is decoded by
:class:`ledger.chain.logs.LogDecoder` (no per-log web3 processing). Headers come in batched ``eth_getBlockByNumber``
requests. Anything odd about a log itself — another address, marked removed, a block hash that is not the canonical
block's, a timestamp that is not the block's — is kept as a problem for the log-completeness check to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from ledger.audit.errors import CannotAudit
from ledger.audit.rpc import Rpc, RpcError
from ledger.chain.logs import DecodedEntry, LogDecoder
from ledger.chain.reader import LedgerReader, RangeSizer
from ledger.encoding import keccak

#: OpenZeppelin AccessControl: the role whose holders may register agencies and change their keys
GOVERNOR_ROLE = keccak(b"GOVERNOR_ROLE")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RoleChange:
    """An AccessControl ``RoleGranted`` / ``RoleRevoked`` event of the contract."""

    block_number: int
    log_index: int
    tx_hash: bytes
    role: bytes
    account: str
    granted: bool


@dataclass(frozen=True)
class LogProblem:
    """Something wrong with a log as the node served it (not with what it records)."""

    message: str
    block_number: int | None = None
    tx_hash: bytes | None = None
    log_index: int | None = None
    seq: int | None = None


@dataclass
class ChainSnapshot:
    """The chain's side of the audit, as of block ``block_number``."""

    rpc_where: str
    chain_id: int
    address: str
    block_number: int
    block_hash: bytes
    block_time: int
    code: bytes
    #: the contract's own entryCount() and runningHash() at the snapshot block
    contract_count: int
    contract_head: bytes
    from_block: int
    #: every entry the logs record, in seq order (as served: duplicates and gaps are the log check's business)
    entries: list[DecodedEntry]
    role_changes: list[RoleChange]
    #: canonical (hash, timestamp) of every block holding a log
    headers: dict[int, tuple[bytes, int]]
    problems: list[LogProblem] = field(default_factory=list)
    log_requests: int = 0
    seconds: float = 0.0
    #: the filings module's runtime code at its derived address (``ledger.encoding.module_address``), the ledger's
    #: ``FILINGS()`` and the module's ``LEDGER()`` at the snapshot block (None: not asked, or not answered): what
    #: the code check needs to know the module is the one the published sources create, bound to this ledger
    module_code: bytes | None = None
    filings_pointer: str | None = None
    module_ledger: str | None = None


class ChainReader:
    """Reads a :class:`ChainSnapshot` of the ledger at `address` through `rpc`."""

    def __init__(
        self,
        rpc: Rpc,
        address: str,
        *,
        expected_chain_id: int | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
        max_block_range: int = 100_000,
        target_logs: int = 10_000,
        progress: Progress | None = None,
    ) -> None:
        try:
            self.address = to_checksum_address(address)
        except ValueError as exc:
            raise CannotAudit(f"{address!r} is not a contract address") from exc
        self.rpc = rpc
        self.expected_chain_id = expected_chain_id
        self.from_block = from_block
        self.to_block = to_block
        self.max_block_range = max_block_range
        self.target_logs = target_logs
        self.progress = progress or (lambda stage, done, total: None)
        self.node = LedgerReader(rpc, self.address)
        self.decoder = LogDecoder()
        names = {topic: name for topic, (name, _, _) in self.decoder.table.items()}
        self._role_topics = {t: n == "RoleGranted" for t, n in names.items() if n in ("RoleGranted", "RoleRevoked")}

    def preflight(self) -> int:
        """The chain id, once checked to be the expected one (cheap: done before anything slow starts)."""
        rpc = self.rpc
        chain_id_hex, _ = rpc.try_call("eth_chainId", [])
        if chain_id_hex is None:
            raise CannotAudit(f"the node at {rpc.where} does not say which chain it serves (eth_chainId failed)")
        chain_id = int(chain_id_hex, 16)
        if self.expected_chain_id is not None and chain_id != self.expected_chain_id:
            raise CannotAudit(
                f"wrong chain: the node at {rpc.where} serves chain id {chain_id}, but the audit expects "
                f"{self.expected_chain_id}"
            )
        return chain_id

    def read(self) -> ChainSnapshot:
        started = time.perf_counter()
        rpc = self.rpc
        chain_id = self.preflight()
        head = self.node.head()
        number = head if self.to_block is None else min(self.to_block, head)
        block = rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise CannotAudit(f"the node at {rpc.where} has no block {number}")
        block_hash = bytes.fromhex(block["hash"][2:])
        code = bytes.fromhex((rpc.call("eth_getCode", [self.address, hex(number)]) or "0x")[2:])
        if not code:
            raise CannotAudit(
                f"no contract at {self.address} on chain {chain_id} (block {number}): wrong address or wrong chain"
            )
        count, head_hash = self._contract_head(number, block["hash"])
        from_block = self.from_block if self.from_block is not None else self._deploy_block(number)
        snapshot = ChainSnapshot(
            rpc_where=rpc.where, chain_id=chain_id, address=self.address, block_number=number,
            block_hash=block_hash, block_time=int(block["timestamp"], 16), code=code, contract_count=count,
            contract_head=head_hash, from_block=from_block, entries=[], role_changes=[], headers={},
        )
        self._read_module(snapshot)
        self._read_logs(snapshot, from_block, number)
        self._read_headers(snapshot)
        snapshot.entries.sort(key=lambda e: e.seq)  # stable: duplicates stay in the order served
        snapshot.seconds = time.perf_counter() - started
        return snapshot

    # -- contract state

    def _read_module(self, snapshot: ChainSnapshot) -> None:
        """The module's code, ``FILINGS()`` and ``LEDGER()`` at the snapshot block, in one batched request (a node
        that does not answer leaves them None: the code check says it could not compare)."""
        module = self.node.addresses[1]
        block = hex(snapshot.block_number)
        try:
            code, pointer, ledger = self.rpc.batch([
                ("eth_getCode", [module, block]),
                ("eth_call", [{"to": self.address, "data": _SELECTOR_FILINGS}, block]),
                ("eth_call", [{"to": module, "data": _SELECTOR_LEDGER}, block]),
            ])
        except RpcError:
            return
        snapshot.module_code = bytes.fromhex((code or "0x")[2:])
        snapshot.filings_pointer = _address_word(pointer)
        snapshot.module_ledger = _address_word(ledger)

    def _contract_head(self, number: int, block_hash: str) -> tuple[int, bytes]:
        """entryCount() and runningHash() at exactly the snapshot block: by hash (EIP-1898) when the node takes it."""
        last: Exception | None = None
        for where in ({"blockHash": block_hash}, hex(number)):
            try:
                found = self.node.counted_head(where)
            except RpcError as exc:
                last = exc
                continue
            if found is None:
                raise CannotAudit(f"the contract at {self.address} does not answer entryCount()/runningHash()")
            return found
        raise CannotAudit(f"cannot call entryCount()/runningHash() on {self.address}: {last}")

    def contract_head_at(self, number: int) -> tuple[int, bytes] | None:
        """The contract's count and running hash at an earlier block, or None when the node keeps no state there."""
        try:
            return self.node.head_or_zero(hex(number))
        except RpcError:
            return None

    def entries_between(self, first: int, last: int) -> list[DecodedEntry]:
        """Entries logged in blocks first … last (e.g. what a live index added after the snapshot)."""
        out: list[DecodedEntry] = []
        step = 2000
        for start in range(first, last + 1, step):  # a node's refusal is raised as it is: the caller decides
            out += self.decoder.decode(self.node.logs(start, min(last, start + step - 1)))
        return out

    def _deploy_block(self, head: int) -> int:
        """The contract's creation block, by bisection on eth_getCode (0 when the node keeps no old state)."""
        try:
            return self.node.deploy_block(head)
        except RpcError:
            return 0

    # -- logs


    def _read_logs(self, snapshot: ChainSnapshot, first: int, last: int) -> None:
        # Start small and grow towards `target_logs` logs a range: dense chains get several ranges, so the node serves
        # one while the last one is decoded.
        ranges = RangeSizer(self.max_block_range, self.target_logs)
        start = first
        total = max(1, last - first + 1)
        background = self.rpc.clone()  # a session of its own for the prefetching thread
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-logs")
        ahead: tuple[int, int, Future[list[dict[str, Any]]]] | None = None
        try:
            while start <= last:
                if ahead is not None and ahead[0] == start:
                    end, pending = ahead[1], ahead[2]
                else:
                    end, pending = ranges.end(start, last), None
                ahead = None
                try:
                    logs = pending.result() if pending is not None else self.node.logs(start, end)
                    snapshot.log_requests += 1
                except RpcError as exc:
                    if not exc.too_large or end == start:
                        raise CannotAudit(f"cannot read the contract's logs: {exc}") from exc
                    ranges.refused(start, end)
                    continue
                ranges.served(start, end, len(logs))
                if end < last:
                    following = (end + 1, ranges.end(end + 1, last))
                    ahead = (*following, pool.submit(self.node.logs, *following, background))
                self._take(snapshot, logs)
                del logs
                start = end + 1
                self.progress("logs", start - first, total)
        finally:
            if ahead is not None:
                ahead[2].cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            background.close()

    def _take(self, snapshot: ChainSnapshot, logs: list[dict[str, Any]]) -> None:
        # The ledger's events from the ledger, its filings module's from the module: a log of either from elsewhere,
        # or of one from the other's address, is not an entry
        address, module = (a.lower() for a in self.node.addresses)
        module_topics = self.decoder.module_topics
        wanted: list[dict[str, Any]] = []
        for log in logs:
            topics = log.get("topics") or [""]
            expected = module if topics[0] in module_topics else address
            if str(log.get("address", "")).lower() != expected or log.get("removed"):
                why = "was marked removed (reorganised)" if log.get("removed") else f"is from {log.get('address')}"
                snapshot.problems.append(LogProblem(
                    f"the node served a log that {why}", _int(log.get("blockNumber")),
                    _bytes(log.get("transactionHash")), _int(log.get("logIndex")),
                ))
                continue
            topics = log["topics"]
            granted = self._role_topics.get(topics[0]) if topics else None
            if granted is not None:
                snapshot.role_changes.append(RoleChange(
                    int(log["blockNumber"], 16), int(log["logIndex"], 16), bytes.fromhex(log["transactionHash"][2:]),
                    bytes.fromhex(topics[1][2:]), to_checksum_address("0x" + topics[2][-40:]), granted,
                ))
                continue
            wanted.append(log)
        snapshot.entries.extend(self.decoder.decode(wanted))

    # -- headers

    def _read_headers(self, snapshot: ChainSnapshot) -> None:
        numbers = sorted({e.block_number for e in snapshot.entries} | {r.block_number for r in snapshot.role_changes})
        headers: dict[int, tuple[bytes, int]] = {}
        chunk = 500
        for i in range(0, len(numbers), chunk):
            for n, header in self.node.headers(numbers[i : i + chunk], chunk).items():
                if header is not None:
                    headers[n] = (bytes.fromhex(header["hash"][2:]), int(header["timestamp"], 16))
            self.progress("headers", min(i + chunk, len(numbers)), len(numbers))
        snapshot.headers = headers
        for e in snapshot.entries:
            found = headers.get(e.block_number)
            if found is None:
                snapshot.problems.append(LogProblem(
                    f"the log names block {e.block_number}, which the node does not have", e.block_number,
                    e.tx_hash, e.log_index, e.seq,
                ))
                continue
            block_hash, timestamp = found
            if block_hash != e.block_hash:
                snapshot.problems.append(LogProblem(
                    f"the log names block hash 0x{e.block_hash.hex()}, but block {e.block_number} on the chain is "
                    f"0x{block_hash.hex()} (a reorganised block)", e.block_number, e.tx_hash, e.log_index, e.seq,
                ))
            if e.block_time is None:
                e.block_time = timestamp
            elif e.block_time != timestamp:
                snapshot.problems.append(LogProblem(
                    f"the log says block time {e.block_time}, but block {e.block_number} has timestamp {timestamp}",
                    e.block_number, e.tx_hash, e.log_index, e.seq,
                ))
                e.block_time = timestamp


def _address_word(answer: Any) -> str | None:
    """An address returned by an ``eth_call`` (one 32-byte word), checksummed; None when there is none."""
    if not isinstance(answer, str) or len(answer) != 66:
        return None
    return to_checksum_address("0x" + answer[-40:])


_SELECTOR_FILINGS = "0x" + keccak(b"FILINGS()")[:4].hex()
_SELECTOR_LEDGER = "0x" + keccak(b"LEDGER()")[:4].hex()


def _int(value: Any) -> int | None:
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def _bytes(value: Any) -> bytes | None:
    try:
        return bytes.fromhex(value[2:]) if isinstance(value, str) else None
    except ValueError:
        return None
