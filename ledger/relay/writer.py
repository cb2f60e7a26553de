"""Sending the relay's stored submissions. :class:`RelayWriter` is a :class:`~ledger.writer.sender.Writer` whose
transactions are one lane's stored submissions (:data:`~ledger.relay.store.LANES`), one per transaction, sent from
that lane's relayer key: agencies' records as ``…BySig`` calls, citizens' ratings and disputes as ``rateCase`` /
``disputeCase`` (:meth:`Ledger.encode_citizen_call`). Everything else — signing before broadcast, re-broadcasting the
same bytes after a crash, receipts, retries with backoff, decoding reverts — is the writer's. A relayed batch is never
split: its one signature covers every event in it, so a revert fails the whole submission with the decoded custom
error. It reads submissions from, and charges the gas paid to, the :class:`~ledger.relay.store.RelayStore` it is
given; it checks no signature (:mod:`ledger.relay.verify`).

Front-running. Anyone who sees a relayed transaction can copy its signed record and send it first. Ours then
reverts (the nonce is used; a case is rated once), yet the record is on chain — once. Before failing a refused
submission the writer looks for it (:meth:`RelayWriter.found_on_chain`): an entry of the same agency, by the same
signer (receipt key), with the same record hashes in order, in a block since the submission was accepted, whose
transaction carries the same signature (for a citizen's record, which has no nonce, the record hash is the signed
message itself). Found, the submission is ``recorded`` with that transaction and its seqs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import to_checksum_address

from ledger.chain.contract import Ledger
from ledger.errors import ContractReverted, OutboxError
from ledger.records import Record
from ledger.relay.store import AGENCY_LANE, RelayStore, _Envelope
from ledger.relay.verify import CITIZEN_TYPES, MAX_RELAY_BATCH, RELAY_TYPES
from ledger.writer.outbox import OutboxItem
from ledger.writer.planner import MAX_BATCH, MAX_CALLDATA
from ledger.writer.sender import FoundOnChain, Writer

# a relayed batch of MAX_RELAY_BATCH case events (ledger.relay.verify) fits the writer's calldata limit
assert 4 + 32 * 8 + 65 + 7 * 32 * MAX_RELAY_BATCH < MAX_CALLDATA


def _submission_key(item: OutboxItem) -> str:
    return item.idempotency_key.rsplit("/", 1)[0]


class RelayWriter(Writer):
    """Sends one lane's stored submissions (:data:`LANES`) from that lane's relayer key: one ``…BySig``
    (``rateCase`` / ``disputeCase``) transaction per submission, in submission order (so each signer's nonces go out in
    order). One relay writer per lane of a store (the outbox's lock file enforces it), each with its own key: the
    lanes' nonces are independent, so neither lane's backlog delays the other's transactions."""

    def __init__(
        self,
        ledger: Ledger,
        relayer: LocalAccount,
        store: RelayStore,
        *,
        lane: str = AGENCY_LANE,
        poll_interval: float = 0.5,
        **options: Any,
    ) -> None:
        options.setdefault("batch_size", MAX_BATCH)  # only sets how many rows a flush reads at once
        options.setdefault("flush_interval", 0.05)
        super().__init__(ledger, relayer, store.lane_outbox(lane), **options)
        self.lane = lane
        self.store = store
        self.poll_interval = poll_interval
        self._envelopes: dict[str, _Envelope] = {}
        self._poller: threading.Thread | None = None
        self._poll_stop = threading.Event()
        store.on_queued.append(self._wake)

    def __repr__(self) -> str:
        return (f"RelayWriter(ledger={self.ledger.address}, relayer={self.address}, lane={self.lane!r}, "
                f"store={str(self.store.directory)!r})")

    def _wake(self) -> None:
        self.notice_pending()

    def _envelope_of(self, item: OutboxItem) -> _Envelope:
        key = _submission_key(item)
        envelope = self._envelopes.get(key)
        if envelope is None:
            envelope = self.store.envelope(key)
            if envelope is None:
                raise OutboxError(f"outbox entry {item.id} belongs to no stored relay submission")
            if len(self._envelopes) > 10_000:
                self._envelopes.clear()
            self._envelopes[key] = envelope
        return envelope

    # -- the Writer hooks

    def ready_rows(self, chunk: list[OutboxItem], records: dict[int, Record]) -> list[OutboxItem]:
        """The writer's ready prefix, cut back to whole submissions (a flush reads rows in chunks, and an entry
        waiting for a newer block holds back the rest of its submission)."""
        ready = super().ready_rows(chunk, records)
        end = 0
        index = 0
        while index < len(ready):
            envelope = self._envelope_of(ready[index])
            if index + envelope.entries > len(ready):
                break
            index += envelope.entries
            end = index
        return ready[:end]

    def plan_units(self, ready: list[OutboxItem]) -> list[list[OutboxItem]]:
        units: list[list[OutboxItem]] = []
        index = 0
        while index < len(ready):
            size = self._envelope_of(ready[index]).entries
            units.append(ready[index : index + size])
            index += size
        return units

    def encode_unit(self, items: list[OutboxItem], records: Sequence[Record]) -> bytes:
        envelope = self._envelope_of(items[0])
        if len(items) != envelope.entries or any(_submission_key(i) != envelope.key for i in items):
            raise OutboxError(f"outbox entries {items[0].id}… do not match relay submission {envelope.key}")
        if envelope.primary_type in CITIZEN_TYPES:
            return self.ledger.citizen_calldata(records[0], envelope.signature)  # type: ignore[arg-type]
        spec = RELAY_TYPES[envelope.primary_type]
        record = [r.abi_values() for r in records] if spec.batch else records[0].abi_values()
        args = [record, envelope.signer, envelope.deadline, envelope.signature]
        return bytes.fromhex(self.ledger.contract.encode_abi(spec.function, args)[2:])

    def unit_splittable(self, items: list[OutboxItem]) -> bool:
        return False  # one signature covers every entry of a submission

    def gas_spent(self, items: list[OutboxItem], gas: int) -> None:
        """Charge what the relayer paid to the submission's signer, in place of its estimate (citizens' records are
        charged to no one: the store keeps no charge for them)."""
        if items:
            self.store.charge_gas(_submission_key(items[0]), gas)

    def found_on_chain(self, items: list[OutboxItem], revert: ContractReverted) -> FoundOnChain | None:
        """The transaction that put exactly this submission on chain, if someone sent a copy of it first.

        An agency's submission can only have been copied once its nonce is used, so the signer's on-chain nonce is
        read first (no nonce used, no look-up). Then the ledger's entries of the submission's agency since it was
        accepted (one ``eth_getLogs``, filtered by agency, and by case for a citizen's record) are searched for a
        transaction whose entries — by this signer (receipt key), in log order — have exactly the submission's
        record hashes. For an agency's record that transaction must also carry the signature: the same record
        written directly by the agency key, with the nonce used by another signed record, is not this submission.
        A citizen's record has no nonce: its record hash is all the receipt key signed."""
        envelope = self._envelope_of(items[0])
        citizen = envelope.primary_type in CITIZEN_TYPES
        if not citizen:
            onchain = self._rpc("read a signer's nonce", lambda: self.ledger.nonce(envelope.signer))
            if onchain <= envelope.nonce:
                return None
        records = envelope.records()
        wanted = [r.struct_hash() for r in records]
        agency_topic = "0x" + envelope.agency_id.hex()
        topics: list[Any] = [["0x" + t.hex() for t in self.ledger.entry_event_topics], None, agency_topic]
        case_id = getattr(records[0], "case_id", None)  # ratings, disputes, claims (a filing has no case yet)
        if citizen and case_id is not None:
            topics.append("0x" + case_id.hex())
        query: Any = {"address": self.ledger.addresses, "fromBlock": self.store.accepted_block(envelope.key),
                      "toBlock": "latest", "topics": topics}
        logs = self._rpc("look for a copy of a relayed record", lambda: self._w3.eth.get_logs(query))
        by_tx: dict[bytes, list[Any]] = {}
        for log_ in logs:
            entry = self.ledger.decode_log(log_)
            if entry is not None and entry.actor == envelope.signer:
                by_tx.setdefault(entry.transaction_hash, []).append(entry)
        for tx_hash, entries in by_tx.items():
            entries.sort(key=lambda e: e.log_index)
            hashes = [e.record_hash for e in entries]
            for start in range(len(hashes) - len(wanted) + 1):
                if hashes[start : start + len(wanted)] != wanted:
                    continue
                tx: Any = self._rpc(
                    "read the copy's transaction", partial(self._w3.eth.get_transaction, Hash32(tx_hash))
                )
                if not citizen and envelope.signature not in bytes(tx["input"]):
                    break  # the same records, but not sent with this signature
                seqs = tuple(e.seq for e in entries[start : start + len(wanted)])
                return FoundOnChain("0x" + bytes(tx_hash).hex(), to_checksum_address(tx["from"]), int(tx["nonce"]),
                                    seqs)
        return None

    # -- picking up submissions other processes stored

    def start(self) -> None:
        super().start()
        if self._poller is None:
            self._poll_stop.clear()
            self._poller = threading.Thread(target=self._poll, name="ledger-relay-poll", daemon=True)
            self._poller.start()

    def stop(self, *, flush: bool = True, timeout: float | None = None) -> None:
        self._poll_stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            self._poller = None
        super().stop(flush=flush, timeout=timeout)

    def close(self) -> None:
        if self._wake in self.store.on_queued:
            self.store.on_queued.remove(self._wake)
        super().close()

    def _poll(self) -> None:
        while not self._poll_stop.wait(self.poll_interval):
            try:
                self.store.queue_orphans()  # what a crash or an outbox failure left stored but not queued
                self.notice_pending()
            except Exception:  # noqa: BLE001 - the outbox may be closing; the next poll tries again
                continue


__all__ = [
    "RelayWriter",
]
