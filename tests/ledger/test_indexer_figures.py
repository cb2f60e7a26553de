"""What the figures a city publishes need of the index (``ledger.cases``: "Response", "Rectification of a bad
rating"): the ``cases`` columns responded_at, response_due, disputed_at, rectified_at and rectification_due, as the
fold gives them; a calendar published later moves the due times as a sync from scratch would; revision 0009 re-folds
the cases indexed before it. On an anvil of this module's own, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command

from ledger.cases import BAD_RATING_MAX
from ledger.chain.contract import Chain
from ledger.filings import answer_due
from ledger.records import CaseAction, HolidayCalendar
from ledger.store.db import Store, alembic_config, head_revision, open_store
from ledger.workdays import local_day, year_of
from tests.support.feedback import Feedback, write_feedback
from tests.support.indexing import index
from tests.support.world import World, build_world, text_hash

COLUMNS = ("responded_at", "response_due", "disputed_at", "rectified_at", "rectification_due")


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


def case_row(store: Store, f: Feedback, name: str) -> dict[str, Any]:
    with store.connect() as conn:
        found = [dict(r) for r in conn.exec_driver_sql("SELECT * FROM cases").mappings()
                 if bytes(r["case_id"]) == f.cases[name]]
    assert len(found) == 1, name
    return found[0]


def rectify(world: World, f: Feedback, name: str) -> None:
    world.ledger.write(world.signer, world.update(name, CaseAction.RECTIFIED, case_id=f.cases[name],
                                                  details_hash=text_hash(f"{name}:rectified")))


def test_responses_disputes_and_rectifications_are_indexed_and_follow_a_new_calendar(
    world: World, store_url: str, request: pytest.FixtureRequest
) -> None:
    f = write_feedback(world)
    store = open_store(store_url)
    try:
        indexer = index(world, store)
        indexer.sync()
        reopened = case_row(store, f, "reopened")  # rated 2, disputed twice
        assert reopened["rating"] <= BAD_RATING_MAX and reopened["rectified_at"] is None
        assert reopened["rectification_due"] > reopened["rated_at"]
        assert reopened["disputed_at"] is not None and reopened["disputed_at"] <= reopened["rated_at"]
        assert reopened["response_due"] == answer_due(reopened["opened_at"], {})
        assert reopened["responded_at"] is not None  # it was fulfilled, which answers it
        rated = case_row(store, f, "rated")  # rated 5: nothing to rectify
        assert (rated["rectified_at"], rated["rectification_due"]) == (None, None)

        rectify(world, f, "reopened")
        rectify(world, f, "reopened")  # a second rectification is an invalid transition, not a second time
        indexer.sync()
        after = case_row(store, f, "reopened")
        assert after["rectified_at"] is not None and after["rectified_at"] >= reopened["rated_at"]
        assert after["invalid_transitions"] == reopened["invalid_transitions"] + 1
        assert after["rectification_due"] == reopened["rectification_due"]

        # a holiday the day after the rating, published now, moves the rectification's due time a working day on
        day = local_day(after["rated_at"]) + 1
        world.ledger.write(world.signer, HolidayCalendar(year=year_of(day), holidays=(day,), occurred_at=world.now()))
        indexer.sync()
        moved = case_row(store, f, "reopened")
        assert moved["rectification_due"] > after["rectification_due"]
        # as a sync from scratch gives them
        fresh = open_store(request.getfixturevalue("sqlite_url")() if store_url.startswith("sqlite")
                           else request.getfixturevalue("pg_database")())
        try:
            index(world, fresh).sync(to_block=indexer.last_block())
            assert fresh.dump()["cases"] == store.dump()["cases"]
        finally:
            fresh.close()
    finally:
        store.close()


def test_revision_0009_refolds_the_cases_indexed_before_it(world: World, store_url: str) -> None:
    f = write_feedback(world)
    rectify(world, f, "reopened")
    store = open_store(store_url)
    try:
        index(world, store).sync()
        synced = store.dump()
        config = alembic_config()
        with store.engine.begin() as conn:  # as revision 0008 left it: no columns
            config.attributes["connection"] = conn
            command.downgrade(config, "0008")
        with store.connect() as conn:
            assert not set(COLUMNS) & set(conn.exec_driver_sql("SELECT * FROM cases").keys())
    finally:
        store.close()
    migrated = open_store(store_url)
    try:
        assert migrated.revision() == head_revision()
        assert migrated.dump() == synced
        assert case_row(migrated, f, "reopened")["rectified_at"] is not None
    finally:
        migrated.close()
