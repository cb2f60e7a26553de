"""The reads of one deployed ledger that the indexer (``ledger.index.sync``) and the auditor
(``ledger.audit.chainread``) both make of a JSON-RPC node, defined once: the head, the contract's code and creation
block, its own entry count and running hash at a block, its logs over a block range, block headers, and how big the
next range of logs should be.

Raw JSON-RPC through :class:`ledger.chain.rpc.JsonRpc` (no web3 processing per log: the callers decode with
``ledger.chain.logs.LogDecoder``). A node's refusal is raised as it comes (:class:`~ledger.chain.rpc.RpcError`, a
range too large as :class:`~ledger.chain.rpc.RangeTooLarge`); each caller decides what it means for it — the indexer
retries or halts, the auditor says it cannot audit.

Range sizing (:class:`RangeSizer`)
    Start at 10 blocks (or the ceiling, if lower) and aim each next range at about ``target_logs`` entries, growing at
    most twofold a range: a dense chain gets several ranges, so the node serves one while the caller works on the
    last. A range the node refuses as too large is halved and the ceiling lowered to it for the rest of the read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.chain.rpc import JsonRpc, RpcError
from ledger.encoding import ZERO_HEAD, keccak, module_address

SELECTOR_ENTRY_COUNT = "0x" + keccak(b"entryCount()")[:4].hex()
SELECTOR_RUNNING_HASH = "0x" + keccak(b"runningHash()")[:4].hex()
#: the first range's size in blocks (before anything is known of the chain's density)
FIRST_RANGE = 10


class LedgerReader:
    """Reads the ledger contract at `address` (checksummed by the caller) and the filings module it created, through
    `rpc`."""

    def __init__(self, rpc: JsonRpc, address: str) -> None:
        self.rpc = rpc
        self.address = address
        #: whose logs are the ledger's entries: the ledger's own and its module's (which appends through the ledger)
        self.addresses = [address, module_address(address)]

    def head(self) -> int:
        """The node's latest block number."""
        return int(self.rpc.call("eth_blockNumber", []), 16)

    def has_code(self, block: int) -> bool:
        """Whether the address holds code at `block`."""
        return self.rpc.call("eth_getCode", [self.address, hex(block)]) not in ("0x", "", None)

    def deploy_block(self, head: int) -> int:
        """The contract's creation block, by bisection on eth_getCode up to `head` (where it must have code). Raises
        :class:`~ledger.chain.rpc.RpcError` when the node keeps no state that old (callers start at block 0)."""
        low, high = 0, head
        while low < high:
            mid = (low + high) // 2
            if self.has_code(mid):
                high = mid
            else:
                low = mid + 1
        return low

    def counted_head(self, where: Any) -> tuple[int, bytes] | None:
        """The contract's own ``entryCount()`` and ``runningHash()`` (its 24 bytes) at `where` — a block number as
        hex, or ``{"blockHash": ...}`` (EIP-1898) to be sure of the block — in one batched request; None when the
        address has no code there (before the deployment). Raises :class:`~ledger.chain.rpc.RpcError` when the node
        refuses the calls (no state that old, a block hash it does not know, or EIP-1898 not supported)."""
        count_hex, hash_hex = self.rpc.batch([
            ("eth_call", [{"to": self.address, "data": SELECTOR_ENTRY_COUNT}, where]),
            ("eth_call", [{"to": self.address, "data": SELECTOR_RUNNING_HASH}, where]),
        ])
        if count_hex in (None, "0x") or hash_hex in (None, "0x"):
            return None
        return int(count_hex, 16), bytes.fromhex(hash_hex[2:])[:24]

    def head_or_zero(self, where: Any) -> tuple[int, bytes]:
        """:meth:`counted_head`, with no code yet read as the empty ledger (count 0, the zero running hash)."""
        found = self.counted_head(where)
        return (0, ZERO_HEAD) if found is None else found

    def logs(self, start: int, end: int, rpc: JsonRpc | None = None) -> list[dict[str, Any]]:
        """The raw logs of the ledger and its module in blocks `start` … `end`, through `rpc` (default: the reader's; a
        prefetching thread passes a session of its own)."""
        logs = (rpc or self.rpc).call(
            "eth_getLogs", [{"address": self.addresses, "fromBlock": hex(start), "toBlock": hex(end)}]
        )
        if not isinstance(logs, list):
            raise RpcError("eth_getLogs", None, f"unexpected answer {str(logs)[:200]!r}")
        return logs

    def headers(self, numbers: Iterable[int], chunk: int = 100) -> dict[int, dict[str, Any] | None]:
        """The headers of blocks `numbers` (None for a block the node does not have), `chunk` a batched request."""
        wanted = sorted(set(numbers))
        out: dict[int, dict[str, Any] | None] = {}
        for i in range(0, len(wanted), chunk):
            part = wanted[i : i + chunk]
            out.update(zip(part, self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part],
                                                chunk=chunk), strict=True))
        return out


class RangeSizer:
    """How many blocks the next ``eth_getLogs`` range should span (see the module docstring)."""

    def __init__(self, ceiling: int, target_logs: int) -> None:
        if ceiling < 1 or target_logs < 1:
            raise ValueError("the range ceiling and target_logs must be >= 1")
        self.limit = ceiling  # the caller's maximum
        self.ceiling = ceiling  # lowered when the node refuses a range as too large
        self.target_logs = target_logs
        self._span = min(ceiling, FIRST_RANGE)

    @property
    def span(self) -> int:
        """Blocks in the next range."""
        return min(self._span, self.ceiling)

    def end(self, start: int, last: int) -> int:
        """The last block of the range that starts at `start`, never past `last`."""
        return min(last, start + self.span - 1)

    def refused(self, start: int, end: int) -> int:
        """The node refused blocks `start` … `end` as too large: halve, and never ask for more again. Returns the new
        span."""
        self._span = self.ceiling = max(1, (end - start + 1) // 2)
        return self._span

    def served(self, start: int, end: int, weight: int) -> None:
        """The node served blocks `start` … `end` holding `weight` entries: aim the next range at ``target_logs``."""
        blocks = end - start + 1
        wanted = blocks * 2 if not weight else max(1, blocks * self.target_logs // weight)
        self._span = max(1, min(wanted, blocks * 2, self.limit))
