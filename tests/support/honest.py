"""An honest ledger for the auditor's tests: a small demo city on an anvil of its own, plus key rotation (a key
authorised, used and revoked), a commitment amended and one retired, corrections, a relayed entry, a working-day
case, citizens' feedback (receipts, ratings, disputes answered by a reopening and by a rejection, a receipt case
still open), and Merkle-anchored batches of case events (published in ``data_dir/batches``, where the API serves them
from); indexed into SQLite by the real indexer and served by the real API (the tests may use the indexer; the
auditor never does).

Tests that tamper with the index work on a copy of it (:meth:`HonestLedger.index_copy`); tests that write to the
chain run inside :func:`chain_state` (an anvil snapshot, reverted afterwards), so every test sees the honest ledger.
The ledger is built once a session by the ``honest`` fixture of ``tests/audit/conftest.py``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import HexStr
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger import batches, receipts
from ledger.audit import AuditConfig, AuditReport, run_audit
from ledger.chain.contract import Chain, Ledger
from ledger.chain.logs import DecodedEntry
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from ledger.encoding import ZERO32, entry_hash, keccak
from ledger.index.sync import Indexer
from ledger.records import (
    Attestation,
    AuditVerdict,
    CaseAction,
    CaseEvent,
    Channel,
    Correction,
    DeadlineUnit,
    Dispute,
    EntryKind,
    Filing,
    FilingAnswer,
    FilingDecision,
    Rating,
    Receipt,
    ReceiptClaim,
    Record,
    Retirement,
    filed_case_id,
    short_code,
    text_hash,
)
from ledger.store.db import open_store

HOUR = 3600
DAY = 86_400


@dataclass
class HonestLedger:
    node: AnvilNode
    chain: Chain
    ledger: Ledger
    governance: LocalAccount
    signers: dict[str, LocalAccount]
    city: demo.DemoCity
    data_dir: Path
    index_path: Path
    #: seqs of notable entries written by :func:`write_extras`
    seqs: dict[str, int] = field(default_factory=dict)
    revoked_key: str = ""

    @property
    def url(self) -> str:
        return self.node.url

    def config(self, **changes: Any) -> AuditConfig:
        """The audit's settings: batch files from the honest directory unless `batches` says otherwise (None: from
        the API, when one is audited)."""
        fields: dict[str, Any] = dict(rpc_url=self.node.url, contract=self.ledger.address, compile=False,
                                      batches=str(self.batch_dir))
        fields.update(changes)
        return AuditConfig(**fields)

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def index_copy(self, directory: Path, name: str = "index.sqlite") -> Path:
        """A copy of the honest index (SQLite's backup API: consistent whatever its WAL holds)."""
        target = directory / name
        source = sqlite3.connect(self.index_path)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()
        return target

    def settings(self, index: Path, batch_dir: Path | None = None) -> ApiSettings:
        """The API's settings over `index`; its batch files in `batch_dir` (default: ``<data dir>/batches``)."""
        settings = ApiSettings(
            store_url=f"sqlite:///{index}", rpc_url=self.node.url, contract_address=self.ledger.address,
            chain_id=self.chain.chain_id, data_dir=self.data_dir,
            # the auditor asks for many figures at once, and these tests are of what it finds: no figures budget or
            # time share (tests/audit/test_careful_client.py shows the auditor waits them out)
            expensive_rate_per_minute=0, computation_share=1.0,
        )
        return settings if batch_dir is None else dataclasses.replace(settings, batch_dir=batch_dir)

    @contextmanager
    def api(self, index: Path | None = None, *, wrap: Callable[[FastAPI], Any] | None = None,
            batch_dir: Path | None = None) -> Iterator[TestClient]:
        """The real public API over `index` (default: the honest one) serving batch files from `batch_dir`
        (default: the honest ones); `wrap` may add middleware (a lying API)."""
        app = create_app(self.settings(index or self.index_path, batch_dir))
        if wrap is not None:
            wrap(app)
        with TestClient(app) as client:
            yield client

    @property
    def batch_dir(self) -> Path:
        """Where the batch files are published (the API's default, ``<data dir>/batches``)."""
        return self.data_dir / "batches"

    def anchor(self, events: list[CaseEvent], agency: str = "DEMO-ROADS", at: int | None = None,
               directory: Path | None = None) -> tuple[batches.Batch, int]:
        """Anchor `events` as a Merkle batch (in a block at time `at`), its file published in `directory` (default:
        :attr:`batch_dir`); returns the batch and its first seq."""
        batch = batches.build_batch(events)
        if at is not None:
            demo.set_next_block_time(self.chain, at)
        anchored = batches.anchor(self.ledger, self.signers[agency], batch,
                                  batches.BatchStore(directory or self.batch_dir))
        return batch, anchored.seq

    def sync(self, index: Path, batch_dir: Path | None = None) -> None:
        """Index the chain into `index`, reading batch files from `batch_dir` (default: the honest ones)."""
        store = open_store(f"sqlite:///{index}")
        try:
            Indexer(self.chain, self.ledger.address, store, confirmations=0,
                    batch_dir=batch_dir or self.batch_dir).sync()
        finally:
            store.close()

    def audit(self, index: Path | None = None, *, wrap: Callable[[FastAPI], Any] | None = None,
              batch_dir: Path | None = None, **config: Any) -> AuditReport:
        """Audit the chain and (with `index`, `wrap` or `batch_dir`) the API serving that index and batch files."""
        if index is None and wrap is None and batch_dir is None:
            return run_audit(self.config(**config))
        config.setdefault("batches", None)  # the batch files the API serves
        with self.api(index, wrap=wrap, batch_dir=batch_dir) as client:
            return run_audit(self.config(**config), api_client=client)

    def send(self, signer: LocalAccount, data: bytes, at: int | None = None, *, to: str | None = None) -> None:
        """Send calldata to the ledger (or to `to`: its filings module) from `signer`, mined in a block at time `at`
        (if given). Gas is given, not estimated: an estimate runs at the latest block's time, before the one the next
        block is set to."""
        if at is not None:
            demo.set_next_block_time(self.chain, at)
        w3 = self.chain.w3
        tx: TransactionDictType = {
            "to": HexStr(to or self.ledger.address), "data": data, "chainId": self.chain.chain_id, "gas": 3_000_000,
            "nonce": w3.eth.get_transaction_count(signer.address, "pending"),
            "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 1,
        }
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction)
        )
        if receipt["status"] != 1:
            raise AssertionError(f"the write reverted: {self.ledger.decode_revert(RuntimeError(str(receipt)))}")

    def write(self, record: Record, agency: str = "DEMO-ROADS", at: int | None = None,
              signer: LocalAccount | None = None) -> int:
        """Write one record as the agency's key (in a block at time `at`, if given); returns its seq."""
        self.send(signer or self.signers[agency], self.ledger.encode_write(record), at)
        return self.ledger.entry_count() - 1

    def write_batch(self, events: list[CaseEvent], agency: str = "DEMO-ROADS", at: int | None = None,
                    signer: LocalAccount | None = None) -> int:
        """Write case events in one transaction; returns the last one's seq."""
        self.send(signer or self.signers[agency], self.ledger.encode_batch(events), at)
        return self.ledger.entry_count() - 1

    def issue_receipt(self, name: str, at: int, agency: str = "DEMO-ROADS") -> int:
        """Record the receipt of the receipt case `name` (its key derived from :func:`receipt_code`)."""
        record = Receipt(case_id=receipt_case_id(name), receipt=receipts.address(receipt_code(name)), occurred_at=at)
        return self.write(record, agency, at)

    def citizen(self, record: Rating | Dispute, name: str, at: int | None = None, key: bytes | None = None) -> int:
        """Submit a rating or dispute of case `name` signed with its receipt key (or `key`), relayed by the relayer
        account, in a block at time `at`; returns its seq."""
        signature = self.ledger.sign_citizen(key or receipts.private_key(receipt_code(name)), record)
        call = self.ledger.encode_citizen_call(record, signature)
        self.send(self.relayer, bytes.fromhex(call._encode_transaction_data()[2:]), at)
        return self.ledger.entry_count() - 1

    def rate(self, name: str, score: int, at: int | None = None, agency: str = "DEMO-ROADS",
             key: bytes | None = None) -> int:
        record = Rating(agency_id=short_code(agency), case_id=receipt_case_id(name), score=score,
                        comment_hash=text_hash(f"salt:{name}:{score}"))
        return self.citizen(record, name, at, key)

    def dispute(self, name: str, closure: int, at: int | None = None, agency: str = "DEMO-ROADS") -> int:
        record = Dispute(agency_id=short_code(agency), case_id=receipt_case_id(name), closure=closure,
                         reason_hash=text_hash(f"salt:{name}:still dark"))
        return self.citizen(record, name, at)

    @property
    def relayer(self) -> LocalAccount:
        found = getattr(self, "_relayer", None)
        if found is None:
            found = self._relayer = self.chain.new_account()
        return found


def case_id(name: str) -> bytes:
    """A case id that cannot have a receipt (top bit clear, ``ledger.records.RECEIPT_CASE_FLAG``): its events may be
    written in a batch (``ledger.cases.batched_event_applies``)."""
    raw = bytearray(keccak(b"audit-case:" + name.encode()))
    raw[0] &= 0x7F
    return bytes(raw)


def receipt_case_id(name: str) -> bytes:
    """A case id that can have a receipt (top bit set)."""
    raw = bytearray(keccak(b"audit-receipt-case:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


def receipt_code(name: str) -> str:
    """The receipt code of receipt case `name` (deterministic)."""
    digest = keccak(b"audit-receipt-code:" + name.encode())
    return receipts.format_code("".join(receipts.ALPHABET[b % 32] for b in digest[:20]))


def receipt_opened(name: str, at: int, commitment: str = "STREETLIGHT-48H", district: str = "EAST",
                   channel: int = 1) -> CaseEvent:
    return CaseEvent(case_id=receipt_case_id(name), action=CaseAction.OPENED, occurred_at=at,
                     commitment_id=short_code(commitment), district=short_code(district), channel=channel)


def receipt_later(name: str, action: CaseAction, at: int) -> CaseEvent:
    return CaseEvent(case_id=receipt_case_id(name), action=action, occurred_at=at,
                     details_hash=text_hash(f"{name}:{at}"))


def opened(
    name: str, at: int, commitment: str = "STREETLIGHT-48H", district: str = "EAST", channel: int = 2
) -> CaseEvent:
    return CaseEvent(case_id=case_id(name), action=CaseAction.OPENED, occurred_at=at,
                     commitment_id=short_code(commitment), district=short_code(district), channel=channel)


def later(name: str, action: CaseAction, at: int) -> CaseEvent:
    return CaseEvent(case_id=case_id(name), action=action, occurred_at=at, details_hash=text_hash(f"{name}:{at}"))


def write_extras(h: HonestLedger) -> None:
    """Valid entries of every kind the demo city lacks."""
    gov, ledger, chain = h.governance, h.ledger, h.chain
    roads = short_code("DEMO-ROADS")
    t = h.now() + 60
    # Key rotation: a second key for the roads office writes a case, then is revoked.
    spare = chain.new_account()
    ledger.authorize_signer(gov, roads, spare.address)
    h.seqs["spare authorised"] = ledger.entry_count() - 1
    h.seqs["spare wrote"] = h.write_batch([opened("spare", t), later("spare", CaseAction.ACCEPTED, t)], at=t,
                                          signer=spare)
    ledger.revoke_signer(gov, spare.address)
    h.seqs["spare revoked"] = ledger.entry_count() - 1
    h.revoked_key = spare.address
    # A commitment amended (version 2), another published and retired.
    t += 60
    h.seqs["water v2"] = h.write(demo_commitment("WATER-OUTAGE-24H", t, deadline=24, target_bps=9700), "DEMO-WATER", t)
    h.write(demo_commitment("OLD-SERVICE", t, deadline=72, target_bps=8000), "DEMO-SANITATION", t)
    h.seqs["retired"] = h.write(
        Retirement(commitment_id=short_code("OLD-SERVICE"), reason_hash=text_hash("merged"), occurred_at=t),
        "DEMO-SANITATION", t,
    )
    # Corrections: a fulfilment voided and recorded again; an acceptance voided.
    t += 60
    h.write_batch([opened("corrected", t - 2 * HOUR), later("corrected", CaseAction.ACCEPTED, t - HOUR),
                   later("corrected", CaseAction.FULFILLED, t)], at=t)
    h.seqs["corrected fulfilled"] = h.ledger.entry_count() - 1
    h.seqs["correction"] = h.write(Correction(target_seq=h.seqs["corrected fulfilled"], reason_hash=text_hash("typo"),
                                              occurred_at=t + 60), at=t + 60)
    h.seqs["fulfilled again"] = h.write(later("corrected", CaseAction.FULFILLED, t + 90), at=t + 120)
    h.seqs["accepted voided"] = h.write(later("spare", CaseAction.ESCALATED, t + 120), at=t + 180)
    h.write(Correction(target_seq=h.seqs["accepted voided"], reason_hash=text_hash("not escalated"),
                       occurred_at=t + 180), at=t + 240)
    # A relayed case event: the relayer pays, the roads key signs.
    t = h.now()
    relayer = chain.new_account()
    record = opened("relayed", t - 300, district="WEST", channel=3)
    deadline = t + 3600
    ledger.relay(relayer, record, h.signers["DEMO-ROADS"].address, deadline,
                 ledger.sign(h.signers["DEMO-ROADS"], record, deadline))
    h.seqs["relayed"] = ledger.entry_count() - 1
    # A working-day case of the licensing bureau.
    h.write(opened("licence", t + 30, "BIZ-LICENCE-3WD", "NORTH", 1), "DEMO-LICENSING", t + 60)
    _feedback(h)
    _filings(h)
    _batches(h)
    _attestation(h)
    h.seqs["last"] = ledger.entry_count() - 1


def _attestation(h: HonestLedger) -> None:
    """An independent auditor registered by governance, and its honest checkpoint of the block before the latest
    (its report never uploaded: the API has none to serve)."""
    auditor = h.chain.new_account()
    h.ledger.authorize_auditor(h.governance, auditor.address)
    h.seqs["auditor registered"] = h.ledger.entry_count() - 1
    w3 = h.chain.w3
    block = w3.eth.get_block(w3.eth.block_number - 1)
    number = int(block["number"])
    attestation = Attestation(
        block_number=number, block_hash=bytes(block["hash"]), entry_count=h.ledger.entry_count(number),
        running_hash=h.ledger.running_hash(number), report_hash=text_hash("an honest audit's report"),
        verdict=AuditVerdict.PASSED, findings=0,
    )
    h.ledger.record_attestation(auditor, attestation, auditor.address,
                                h.ledger.sign_attestation(auditor.key, attestation))
    h.seqs["attested"] = h.ledger.entry_count() - 1


def _batches(h: HonestLedger) -> None:
    """Two Merkle-anchored batches: the roads office's hotline (cases opened, some closed in the batch, one closed
    later by an entry of its own, one opened alone and closed in the batch) and a small one of the water office."""
    t = h.now() + 60
    h.seqs["opened alone"] = h.write(opened("batch-alone", t - 10 * 60, district="WEST"), at=t)
    t += 60
    names = [f"hotline-{i}" for i in range(12)]
    events = [opened(n, t - 3 * HOUR + i * 60, district=("EAST", "WEST")[i % 2], channel=2)
              for i, n in enumerate(names)]
    events += [later(n, CaseAction.ACCEPTED, t - 2 * HOUR + i) for i, n in enumerate(names[:8])]
    events += [later(n, CaseAction.FULFILLED, t - HOUR + i) for i, n in enumerate(names[:5])]
    events += [later(names[5], CaseAction.ON_HOLD, t - 50 * 60), later(names[5], CaseAction.RESUMED, t - 20 * 60)]
    events.append(later("batch-alone", CaseAction.FULFILLED, t - 5 * 60))
    batch, h.seqs["hotline batch"] = h.anchor(events, at=t)
    h.seqs["hotline batch count"] = batch.count
    h.seqs["closed alone"] = h.write(later(names[6], CaseAction.FULFILLED, t + 60), at=t + 120)
    t += 300
    water = [opened(f"water-batch-{i}", t - HOUR, "WATER-OUTAGE-24H", "NORTH", 4) for i in range(3)]
    water.append(later("water-batch-0", CaseAction.REJECTED, t - 30 * 60))
    _, h.seqs["water batch"] = h.anchor(water, "DEMO-WATER", at=t)


def _feedback(h: HonestLedger) -> None:
    """Receipt cases at the roads office: each receipt recorded right after its Opened; one rated; one disputed,
    reopened, fulfilled again and rated; one disputed and the dispute rejected (both answered within a day); one
    still open. No dispute is left waiting, so tests that move the clock on do not make one overdue."""
    t = h.now() + 60
    names = ("fb-rated", "fb-reopened", "fb-rejected", "fb-open")
    h.write_batch([receipt_opened(n, t) for n in names], at=t)
    for i, name in enumerate(names):
        h.seqs[f"{name} receipt"] = h.issue_receipt(name, t + 10 + i)
    t += HOUR
    h.seqs["fb fulfilled"] = h.write_batch(
        [receipt_later(n, CaseAction.FULFILLED, t) for n in names[:3]], at=t + 60) - 2
    h.seqs["fb-rated rating"] = h.rate("fb-rated", 4, t + 2 * HOUR)
    h.seqs["fb-reopened dispute"] = h.dispute("fb-reopened", 1, t + 3 * HOUR)
    h.seqs["fb-rejected dispute"] = h.dispute("fb-rejected", 1, t + 3 * HOUR + 60)
    h.seqs["fb-reopened answer"] = h.write(receipt_later("fb-reopened", CaseAction.REOPENED, t + 20 * HOUR),
                                           at=t + 20 * HOUR + 60)
    h.seqs["fb-rejected answer"] = h.write(receipt_later("fb-rejected", CaseAction.DISPUTE_REJECTED, t + 21 * HOUR),
                                           at=t + 21 * HOUR + 60)
    h.write(receipt_later("fb-reopened", CaseAction.FULFILLED, t + 30 * HOUR), at=t + 30 * HOUR + 60)
    h.seqs["fb-reopened rating"] = h.rate("fb-reopened", 2, t + 31 * HOUR)


def to_module(h: HonestLedger, signer: LocalAccount, call: Any, at: int | None = None) -> int:
    """Send a call of the filings module from `signer` (in a block at time `at`); returns the entry's seq."""
    h.send(signer, bytes.fromhex(call._encode_transaction_data()[2:]), at, to=h.ledger.filings_address)
    return h.ledger.entry_count() - 1


def file_request(h: HonestLedger, name: str, at: int | None = None, agency: str = "DEMO-ROADS") -> int:
    """A citizen files request `name` with their own key (:func:`receipt_code` of `name`), relayed; its seq."""
    record = Filing(agency_id=short_code(agency), commitment_id=short_code("STREETLIGHT-48H"),
                    district=short_code("EAST"), channel=Channel.WEB, content_hash=text_hash(f"salt:{name}:lamp out"),
                    receipt=receipts.address(receipt_code(name)))
    signature = h.ledger.sign_filing(receipts.private_key(receipt_code(name)), record)
    h.seqs[f"{name} filing"] = to_module(h, h.relayer, h.ledger.encode_filing_call(record, signature), at)
    return h.seqs[f"{name} filing"]


def answer_filing(h: HonestLedger, name: str, decision: FilingDecision, at: int | None = None,
                  duplicate_of: bytes = ZERO32, agency: str = "DEMO-ROADS") -> int:
    """The agency answers the filing of request `name`; the answer's seq."""
    reason = ZERO32 if decision == FilingDecision.ACCEPTED else text_hash(f"{name}:{decision.name}")
    record = FilingAnswer(filing_seq=h.seqs[f"{name} filing"], decision=decision, duplicate_of=duplicate_of,
                          reason_hash=reason)
    call = h.ledger.filings.functions.answerFiling(record.abi_values())
    h.seqs[f"{name} answer"] = to_module(h, h.signers[agency], call, at)
    return h.seqs[f"{name} answer"]


def _filings(h: HonestLedger) -> None:
    """Citizens' filings at the roads office, each answered within the hour: one accepted, fulfilled and rated by its
    filer; one rejected as a duplicate of a receipt case, one as spam. And a receipt the office printed, claimed by
    its holder, who then rates the case with their own key."""
    ledger, roads = h.ledger, short_code("DEMO-ROADS")
    t = h.now() + 60
    for i, name in enumerate(("filed-accepted", "filed-duplicate", "filed-spam")):
        file_request(h, name, t + i)
    answer_filing(h, "filed-accepted", FilingDecision.ACCEPTED, t + 600)
    answer_filing(h, "filed-duplicate", FilingDecision.DUPLICATE, t + 660, duplicate_of=receipt_case_id("fb-rated"))
    answer_filing(h, "filed-spam", FilingDecision.SPAM, t + 720)
    case_id = filed_case_id(h.seqs["filed-accepted filing"])
    h.write(CaseEvent(case_id=case_id, action=CaseAction.FULFILLED, occurred_at=t + 2 * HOUR,
                      details_hash=text_hash("lamp replaced")), at=t + 2 * HOUR + 60)
    rating = Rating(agency_id=roads, case_id=case_id, score=5, comment_hash=text_hash("salt:filed:5"))
    h.seqs["filed-accepted rating"] = h.citizen(rating, "filed-accepted", t + 3 * HOUR)
    # a printed receipt, claimed
    h.write(receipt_opened("fb-claimed", t + 4 * HOUR), at=t + 4 * HOUR)
    h.seqs["fb-claimed receipt"] = h.issue_receipt("fb-claimed", t + 4 * HOUR + 10)
    claim = ReceiptClaim(agency_id=roads, case_id=receipt_case_id("fb-claimed"),
                         receipt=receipts.address(receipt_code("fb-claimed-own")))
    call = ledger.encode_claim_call(claim, ledger.sign_filing(receipts.private_key(receipt_code("fb-claimed")), claim),
                                    ledger.sign_filing(receipts.private_key(receipt_code("fb-claimed-own")), claim))
    h.seqs["fb-claimed claim"] = to_module(h, h.relayer, call, t + 5 * HOUR)
    h.write(receipt_later("fb-claimed", CaseAction.FULFILLED, t + 6 * HOUR), at=t + 6 * HOUR + 60)
    h.seqs["fb-claimed rating"] = h.rate("fb-claimed", 3, t + 7 * HOUR,
                                         key=receipts.private_key(receipt_code("fb-claimed-own")))


def demo_commitment(code: str, at: int, *, deadline: int, target_bps: int,
                    unit: DeadlineUnit = DeadlineUnit.CALENDAR_HOURS) -> Record:
    from ledger.records import Commitment

    return Commitment(
        commitment_id=short_code(code), service_code=short_code(code.rsplit("-", 1)[0]), name_zh="测试承诺",
        name_en=f"{code} (audit test)", deadline=deadline, deadline_unit=unit, target_bps=target_bps,
        valid_from=at, terms_hash=text_hash(f"{code} terms"), occurred_at=at,
    )


def in_case_order(city: demo.DemoCity) -> demo.DemoCity:
    """The demo city with each case's events recorded in the order they happened.

    ``ledger.dev.demo`` delays a few events' recording by days, which can put an event in the ledger after a later event
    of the same case (an acceptance recorded after the fulfilment): by ``ledger.cases`` (ledger order) that is an
    invalid transition, and the auditor rightly reports it. An honest ledger records a late event late, but not after
    what followed it: here such following events wait for it (moved to its batch, so recorded later, never earlier).
    """
    placed: dict[bytes, int] = {}  # case -> latest batch index one of its events is recorded in
    moves: list[tuple[int, int, CaseEvent]] = []
    natural = sorted(
        ((record.occurred_at, int(record.action), index, record)
         for index, batch in enumerate(city.batches) for record in batch.records),
        key=lambda item: (item[0], item[1], item[2]),
    )
    for _, _, index, record in natural:
        target = max(index, placed.get(record.case_id, -1))
        placed[record.case_id] = target
        if target != index:
            moves.append((index, target, record))
    for index, target, record in moves:
        city.batches[index].records.remove(record)
        city.batches[target].records.append(record)
    for batch in city.batches:
        batch.records.sort(key=lambda r: (r.occurred_at, int(r.action)))
    city.batches = [batch for batch in city.batches if batch.records]
    return city


@contextmanager
def chain_state(h: HonestLedger) -> Iterator[None]:
    """Writes to the chain inside this block are undone afterwards."""
    snapshot = h.chain.snapshot()
    try:
        yield
    finally:
        h.chain.revert(snapshot)


def findings(report: AuditReport, check: str) -> list[Any]:
    return report.check(check).findings


def failed(report: AuditReport) -> set[str]:
    return {c.name for c in report.failed}


def copy_entry(e: DecodedEntry, **changes: Any) -> DecodedEntry:
    """A decoded entry with some fields changed (record fields in `record`), hashes recomputed as the decoder would
    from such a log."""
    import dataclasses

    from ledger.records import (
        AgencyRegistration,
        Commitment,
        HolidayCalendar,
        SignerChange,
        struct_hash_of,
    )
    from ledger.records import CaseEvent as CaseEventRecord
    from ledger.records import Dispute as DisputeRecord
    from ledger.records import Rating as RatingRecord
    from ledger.records import Receipt as ReceiptRecord

    record = {**e.record, **changes.pop("record", {})}
    out = dataclasses.replace(e, record=record, **changes)
    types: dict[EntryKind, type[Record]] = {
        EntryKind.AGENCY_REGISTERED: AgencyRegistration, EntryKind.SIGNER_AUTHORIZED: SignerChange,
        EntryKind.SIGNER_REVOKED: SignerChange, EntryKind.COMMITMENT_PUBLISHED: Commitment,
        EntryKind.COMMITMENT_RETIRED: Retirement, EntryKind.CASE_EVENT: CaseEventRecord,
        EntryKind.CORRECTION: Correction, EntryKind.HOLIDAY_CALENDAR_PUBLISHED: HolidayCalendar,
        EntryKind.RECEIPT_ISSUED: ReceiptRecord, EntryKind.CASE_RATED: RatingRecord,
        EntryKind.CASE_DISPUTED: DisputeRecord,
    }
    record_hash = struct_hash_of(types[out.kind], record)
    out.record_hash = record_hash
    out.entry_hash = entry_hash(out.seq, out.kind, out.agency_id, out.actor, record_hash)
    return out

