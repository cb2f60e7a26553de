"""The figures cache of the read API (``api.read.figures.FiguresCache``) and the one-statement case lookup.

Metrics and scorecards are kept per (normalised request, index content) and must never outlive the content they were
computed on: checked on a small index written row by row (no chain: these tests are about what the API does when
rows change), on SQLite and PostgreSQL alike, advancing it, moving only its last block, and re-including its last
entry in another block as a reorganisation would. The case lookup, built from one statement's rows, must be byte for
byte the response model's serialisation.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from api.app import create_app
from api.read._common import read_snapshot, single_read
from api.read.cases import CASE_SQL, case_of, case_view
from api.read.figures import FiguresCache
from api.read.state import index_state
from api.routes import figures as figures_route
from api.settings import ApiSettings
from ledger.index.cells import rebuild as rebuild_cells
from ledger.metrics import CaseRow, EventRow, MetricsFilter, agency_scorecards, compute_metrics, table_values
from ledger.records import CaseAction, EntryKind
from ledger.store.db import Store, open_store
from ledger.store.schema import agencies, case_events, cases, commitments, entries, sync_state
from tests.support import everything as ev

V1 = "/api/v1"
DAY = 86_400
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337
T0 = 1_793_491_200  # 2026-11-01T00:00:00Z: the small index's first entry
RANGE = {"from": str(T0 - DAY), "to": str(T0 + 30 * DAY), "as_of": str(T0 + 30 * DAY)}


# --- a small index, written row by row ------------------------------------------------------------------------------


class SmallIndex:
    """Two agencies, two commitments, four cases: fulfilled; opening voided by a correction; open and overdue; on hold
    (its two events the last entries, not yet final)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seq = 0
        self.case_ids: list[tuple[str, bytes]] = []
        with store.begin() as conn:
            for agency in ("A-ROADS", "A-WATER"):
                seq = self._entry(conn, EntryKind.AGENCY_REGISTERED, agency)
                conn.execute(insert(agencies).values(agency_id=agency, jurisdiction="CITY", name_zh="局",
                                                     name_en=f"{agency} office", seq=seq))  # fmt: skip
            for agency, commitment, hours in (("A-ROADS", "LIGHT-48H", 48), ("A-WATER", "LEAK-24H", 24)):
                seq = self._entry(conn, EntryKind.COMMITMENT_PUBLISHED, agency, occurred=T0)
                conn.execute(insert(commitments).values(
                    agency_id=agency, commitment_id=commitment, version=1, service_code=commitment, name_zh="路灯",
                    name_en=f"{commitment} \"quoted\" \\ tab\t", deadline=hours, deadline_unit=1, target_bps=9500,
                    valid_from=T0, terms_hash=b"\x01" * 32, occurred_at=T0, seq=seq, retired_seq=None,
                ))  # fmt: skip
            self._case(conn, "A-ROADS", "LIGHT-48H", [CaseAction.OPENED, CaseAction.FULFILLED], status="fulfilled")
            # an opening voided by a correction: the events stay, the case has no row
            voided = self._case(conn, "A-WATER", "LEAK-24H", [CaseAction.OPENED], status=None)
            correction = self._entry(conn, EntryKind.CORRECTION, "A-WATER", occurred=self._time(self.seq))
            conn.execute(update(entries).where(entries.c.seq == voided).values(voided_by=correction))
            self._case(conn, "A-ROADS", "LIGHT-48H", [CaseAction.OPENED], status="open")
            self._case(conn, "A-WATER", "LEAK-24H", [CaseAction.OPENED, CaseAction.ON_HOLD], status="on_hold")
            conn.execute(insert(sync_state).values(
                contract_address=CONTRACT, chain_id=CHAIN_ID, deploy_block=0, last_block=self._block(self.seq - 1),
                entry_count=self.seq, running_hash=self.seq.to_bytes(24, "big"), halted_reason=None,
                finalized_block=self._block(self.seq - 3),
            ))  # fmt: skip
            rebuild_cells(conn)  # the rows are written here, not by the index: their figure cells with them

    @staticmethod
    def _block(seq: int) -> int:
        return 10 + seq

    @staticmethod
    def _time(seq: int) -> int:
        return T0 + seq * 3_600

    def _entry(self, conn: Any, kind: EntryKind, agency: str, occurred: int | None = None, latency: int = 60) -> int:
        seq, self.seq = self.seq, self.seq + 1
        block_time = self._time(seq) + (0 if occurred is None else latency)
        conn.execute(insert(entries).values(
            seq=seq, kind=int(kind), agency_id=agency, actor=CONTRACT, record_hash=bytes([seq]) * 32,
            entry_hash=bytes([seq + 100]) * 32, running_hash=bytes([seq]) * 24, block_number=self._block(seq),
            block_hash=bytes([seq + 200]) * 32, block_time=block_time, tx_hash=bytes([seq + 50]) * 32,
            log_index=seq % 3, occurred_at=occurred, voided_by=None,
        ))  # fmt: skip
        return seq

    def _case(self, conn: Any, agency: str, commitment: str, actions: list[CaseAction], *, status: str | None) -> int:
        case_id = bytes([len(self.case_ids) + 1]) * 32
        self.case_ids.append((agency, case_id))
        seqs = []
        for i, action in enumerate(actions):
            occurred = self._time(self.seq)
            seq = self._entry(conn, EntryKind.CASE_EVENT, agency, occurred=occurred, latency=60 if i else 90_000)
            seqs.append(seq)
            opened = action == CaseAction.OPENED
            conn.execute(insert(case_events).values(table_values(EventRow(
                seq=seq, agency_id=agency, case_id=case_id, action=int(action), occurred_at=occurred,
                block_time=occurred + (60 if i else 90_000), details_hash=bytes([seq]) * 32,
                commitment_id=commitment if opened else None, district="EAST" if opened else None,
                channel=2 if opened else None,
            ))))  # fmt: skip
        if status is not None:
            opened_at = self._time(seqs[0])
            closed_at = self._time(seqs[-1]) if status == "fulfilled" else None
            conn.execute(insert(cases).values(table_values(CaseRow(
                agency_id=agency, case_id=case_id, commitment_id=commitment, commitment_version=1, district="EAST",
                channel=2, opened_seq=seqs[0], opened_at=opened_at, status=status, closed_at=closed_at,
                hold_seconds=0, on_hold_since=self._time(seqs[-1]) if status == "on_hold" else None,
                due_at=opened_at + DAY, fulfil_seconds=None if closed_at is None else closed_at - opened_at,
                on_time=None if closed_at is None else closed_at <= opened_at + DAY, escalated=False,
                invalid_transitions=0, last_seq=seqs[-1],
            ))))  # fmt: skip
        return seqs[0]

    def advance(self) -> None:
        """Index one more case (opened in RANGE) and move the state on, as the indexer would."""
        with self.store.begin() as conn:
            self._case(conn, "A-ROADS", "LIGHT-48H", [CaseAction.OPENED], status="open")
            rebuild_cells(conn)
            conn.execute(update(sync_state).values(
                last_block=self._block(self.seq - 1), entry_count=self.seq, running_hash=self.seq.to_bytes(24, "big")
            ))  # fmt: skip

    def empty_blocks(self, n: int) -> None:
        """Blocks without an entry of the ledger: the position moves, the content does not."""
        with self.store.begin() as conn:
            conn.execute(update(sync_state).values(last_block=sync_state.c.last_block + n,
                                                   finalized_block=sync_state.c.finalized_block + n))  # fmt: skip

    def reinclude_last_entry(self, later: int) -> None:
        """A reorganisation that put the last entry in another block, ``later`` seconds later: same entries, same
        count, same running hash and last block; another block hash and time."""
        last = self.seq - 1
        with self.store.begin() as conn:
            conn.execute(update(entries).where(entries.c.seq == last).values(
                block_hash=b"\xee" * 32, block_time=entries.c.block_time + later))  # fmt: skip
            conn.execute(update(case_events).where(case_events.c.seq == last).values(
                block_time=case_events.c.block_time + later))  # fmt: skip
            rebuild_cells(conn)


@pytest.fixture(params=["sqlite", "postgresql"])
def small(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SmallIndex, TestClient]]:
    with ev.store_url(request.param, tmp_path) as url:
        store = open_store(url)
        try:
            index = SmallIndex(store)
            settings = ApiSettings(store_url=url, rpc_url=None, contract_address=CONTRACT, chain_id=CHAIN_ID,
                                   data_dir=tmp_path, read_rate_per_minute=0)  # fmt: skip
            with TestClient(create_app(settings)) as client:
                yield index, client
        finally:
            store.close()


def counters(client: TestClient) -> tuple[int, int]:
    cache: FiguresCache = client.app.state.figures_cache  # type: ignore[attr-defined]
    return cache.hits, cache.misses


def expected_scorecards(store: Store) -> dict[str, Any]:
    flt = MetricsFilter(start=int(RANGE["from"]), end=int(RANGE["to"]), as_of=int(RANGE["as_of"]))
    return {agency: metrics.to_dict() for agency, metrics in agency_scorecards(store.engine, flt).items()}


def scorecards(client: TestClient, **headers: str) -> Any:
    return client.get(f"{V1}/scorecards", params=RANGE, headers=headers)


# --- the cache in the app -------------------------------------------------------------------------------------------


def test_figures_are_kept_until_the_index_advances(small: tuple[SmallIndex, TestClient]) -> None:
    index, client = small
    first = scorecards(client)
    assert first.status_code == 200, first.text
    assert {c["agency_id"]: c["metrics"] for c in first.json()["items"]} == expected_scorecards(index.store)
    assert counters(client) == (0, 1)
    again = scorecards(client)
    assert (again.content, again.headers["etag"]) == (first.content, first.headers["etag"])
    assert counters(client) == (1, 1)
    # the same selection spelt otherwise is the same answer (its own ETag: the request is part of it)
    spelt = client.get(f"{V1}/scorecards", params={**RANGE, "by": "agency", "from": "2026-10-31"})
    assert spelt.content == first.content and counters(client) == (2, 1)
    # revalidation and HEAD still answer from the position alone
    assert scorecards(client, **{"If-None-Match": first.headers["etag"]}).status_code == 304
    head = client.head(f"{V1}/scorecards", params=RANGE)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == first.headers["etag"]

    index.advance()
    moved = scorecards(client, **{"If-None-Match": first.headers["etag"]})
    assert moved.status_code == 200 and moved.headers["etag"] != first.headers["etag"]
    assert counters(client)[1] == 2  # computed afresh
    cards = {c["agency_id"]: c["metrics"] for c in moved.json()["items"]}
    assert cards == expected_scorecards(index.store)
    assert cards["A-ROADS"]["cases_opened"] == first.json()["items"][0]["metrics"]["cases_opened"] + 1
    assert len(client.app.state.figures_cache) == 1  # type: ignore[attr-defined]  # the old content's answers dropped


def test_metrics_are_kept_and_invalidated_alike(small: tuple[SmallIndex, TestClient]) -> None:
    index, client = small
    params = {**RANGE, "agency_id": "A-ROADS", "commitment_id": "LIGHT-48H"}
    flt = MetricsFilter(agency_id="A-ROADS", commitment_id="LIGHT-48H", start=int(RANGE["from"]),
                        end=int(RANGE["to"]), as_of=int(RANGE["as_of"]))  # fmt: skip
    first = client.get(f"{V1}/metrics", params=params).json()
    assert first["metrics"] == compute_metrics(index.store.engine, flt).to_dict()
    assert client.get(f"{V1}/metrics", params=params).json() == first
    assert counters(client) == (1, 1)
    index.advance()
    moved = client.get(f"{V1}/metrics", params=params).json()
    assert moved["metrics"] == compute_metrics(index.store.engine, flt).to_dict()
    assert moved["metrics"]["cases_opened"] == first["metrics"]["cases_opened"] + 1
    assert counters(client) == (1, 2)
    # not kept: a selection that is refused
    assert client.get(f"{V1}/metrics", params={**params, "commitment_id": "NONE"}).status_code == 404
    assert client.get(f"{V1}/metrics", params={**params, "commitment_id": "NONE"}).status_code == 404
    assert counters(client) == (1, 2)


def test_empty_blocks_keep_the_figures_and_a_reorganisation_does_not(small: tuple[SmallIndex, TestClient]) -> None:
    index, client = small
    first = scorecards(client)
    index.empty_blocks(5)
    later = scorecards(client)
    assert later.headers["etag"] != first.headers["etag"]  # the position moved (finality may have changed)...
    assert later.content == first.content and counters(client) == (1, 1)  # ...the figures did not, and were kept
    index.reinclude_last_entry(later=7 * 3_600)
    reorganised = scorecards(client)
    assert counters(client) == (1, 2)
    cards = {c["agency_id"]: c["metrics"] for c in reorganised.json()["items"]}
    assert cards == expected_scorecards(index.store)
    assert cards != {c["agency_id"]: c["metrics"] for c in first.json()["items"]}  # its latency changed


def test_an_answer_as_of_now_is_never_an_older_one(
    small: tuple[SmallIndex, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without as_of or a past `to`, the figures are of "now" (open and overdue move with it), taken to the whole
    minute: every request of one minute is one answer, computed once; the next minute is another."""
    _, client = small
    minute = int(time.time()) // 60 * 60
    answers = []
    for now in (minute + 5, minute + 59, minute + 60):
        monkeypatch.setattr(figures_route, "unix_now", lambda now=now: now)
        answers.append(client.get(f"{V1}/scorecards", params={"from": RANGE["from"]}).json()["filter"]["as_of"])
    assert answers == [minute, minute, minute + 60]
    assert counters(client) == (1, 2)


# --- the cache alone --------------------------------------------------------------------------------------------------


def test_one_computation_per_key_however_many_ask_at_once() -> None:
    cache = FiguresCache()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> bytes:
        calls.append(1)
        started.set()
        release.wait(5)
        return b"answer"

    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get_or_compute("q", "c1", compute)))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    assert started.wait(5)
    time.sleep(0.05)  # the others are waiting for it by now
    release.set()
    for thread in threads:
        thread.join(5)
    assert answers == [b"answer"] * 8 and len(calls) == 1
    assert (cache.hits, cache.misses) == (7, 1)


def test_errors_are_not_kept_and_waiters_compute_again() -> None:
    cache = FiguresCache()

    def fail() -> bytes:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("q", "c1", fail)
    assert cache.get("q", "c1") is None
    assert cache.get_or_compute("q", "c1", lambda: b"ok") == b"ok"


def test_another_content_drops_the_answers_and_the_size_is_bounded() -> None:
    cache = FiguresCache(max_entries=3)
    for i in range(5):
        cache.get_or_compute(f"q{i}", "c1", lambda i=i: f"a{i}".encode())
    assert len(cache) == 3 and cache.get("q0", "c1") is None and cache.get("q4", "c1") == b"a4"
    assert cache.get("q4", "c2") is None and len(cache) == 0  # the index moved on: nothing of c1 is served again
    assert cache.get_or_compute("q4", "c2", lambda: b"new") == b"new"
    assert cache.get("q4", "c1") is None


# --- the case lookup --------------------------------------------------------------------------------------------------


def test_the_case_lookup_is_the_models_json_byte_for_byte(small: tuple[SmallIndex, TestClient]) -> None:
    index, client = small
    now = T0 + 40 * DAY
    unknown = ("A-ROADS", b"\xab" * 32)
    for agency, case_id in [*index.case_ids, unknown]:
        rows = single_read(index.store.engine, CASE_SQL, {"agency_id": agency, "case_id": case_id})
        fast = case_of(rows, CONTRACT, agency, case_id, now)
        assert fast is not None
        with read_snapshot(index.store) as conn:
            state = index_state(conn, CONTRACT, CHAIN_ID)
            view = case_view(conn, state, agency, case_id, now)
        assert fast.state == state
        if view is None:
            assert (agency, case_id) == unknown and fast.body is None
            continue
        assert fast.body == view.model_dump_json(by_alias=True).encode(), agency
        assert fast.overdue == view.overdue
    # what the cases are: fulfilled, no state (voided opening), open and overdue, on hold
    views = [client.get(f"{V1}/cases/{a}/0x{c.hex()}").json() for a, c in index.case_ids]
    assert [v["status"] for v in views] == ["fulfilled", None, "open", "on_hold"]
    assert views[1]["overdue"] is None and views[2]["overdue"] is True and views[3]["overdue"] is False
    assert views[1]["events"][0]["voided_by"] is not None and views[1]["commitment_name_en"] is None
    assert views[2]["commitment_name_en"] == 'LIGHT-48H "quoted" \\ tab\t'
    assert [e["final"] for e in views[0]["events"]] == [True, True]
    assert [e["final"] for e in views[3]["events"]] == [False, False]


def test_a_case_on_an_index_without_its_state_row(small: tuple[SmallIndex, TestClient]) -> None:
    """Before the indexer's first write the state row may be missing: the general path answers (as it did)."""
    index, client = small
    agency, case_id = index.case_ids[0]
    with index.store.begin() as conn:
        conn.execute(sync_state.delete())
    answer = client.get(f"{V1}/cases/{agency}/0x{case_id.hex()}")
    assert answer.status_code == 200 and answer.json()["status"] == "fulfilled"
    assert not any(e["final"] for e in answer.json()["events"])  # nothing is final in an empty index
    with index.store.connect() as conn:
        assert conn.execute(select(cases.c.status).where(cases.c.case_id == case_id)).scalar() == "fulfilled"


def test_read_connections_are_bounded(small: tuple[SmallIndex, TestClient]) -> None:
    index, client = small
    settings = dataclasses.replace(client.app.state.settings, extra={"read_connections": "1"})  # type: ignore[attr-defined]
    with TestClient(create_app(settings)) as one:
        agency, case_id = index.case_ids[0]
        for _ in range(3):
            assert one.get(f"{V1}/cases/{agency}/0x{case_id.hex()}").status_code == 200
        reader = one.app.state.index_reader  # type: ignore[attr-defined]
        assert reader.size == 1


@pytest.mark.parametrize("small", ["postgresql"], indirect=True)  # the reader's own connections: PostgreSQL only
def test_a_dropped_read_connection_is_replaced(small: tuple[SmallIndex, TestClient]) -> None:
    """An idle connection the server dropped (e.g. it restarted) is replaced, not reported as an error."""
    index, client = small
    agency, case_id = index.case_ids[0]
    url = f"{V1}/cases/{agency}/0x{case_id.hex()}"
    assert client.get(url).status_code == 200
    reader = client.app.state.index_reader  # type: ignore[attr-defined]
    pids = [conn.info.backend_pid for conn in reader._idle]
    assert pids
    with index.store.connect() as conn:  # as a server restart would
        for pid in pids:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    assert client.get(url).status_code == 200
    assert all(conn.info.backend_pid not in pids for conn in reader._idle)
