"""Fixtures of the auditor's tests: the honest ledger (``tests/support/honest.py``), built once a session, its whole
audit, a fresh build of the sources, and a build cache of the session's own."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.audit import AuditReport, run_audit
from ledger.audit.build import fresh_build
from ledger.chain.contract import Chain, Ledger
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from tests.support.honest import DAY, HOUR, HonestLedger, in_case_order, write_extras


@pytest.fixture(scope="session")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HonestLedger]:
    data_dir = tmp_path_factory.mktemp("audit-honest")
    city = in_case_order(demo.generate_city(end=int(time.time()) - 3 * DAY, days=21, cases=400, seed=7))
    node = AnvilNode(extra_args=["--timestamp", str(city.start - HOUR)]).start()
    try:
        chain = Chain.connect(node.url)
        governance = chain.new_account()
        signers = {agency.agency_id: chain.new_account() for agency in demo.AGENCIES}
        ledger = Ledger.deploy(chain, governance)
        demo.load_city(chain, ledger, governance, signers, city)
        h = HonestLedger(node, chain, ledger, governance, signers, city, data_dir, data_dir / "honest.sqlite")
        write_extras(h)
        h.sync(h.index_path)
        yield h
    finally:
        node.stop()


@pytest.fixture(scope="session", autouse=True)
def _build_cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Audits run by the tests keep their verified builds in a directory of the session's, never the user's cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def compiled() -> dict[str, Any]:
    """A fresh build of the sources, made once for the session (it takes seconds)."""
    return fresh_build()


@pytest.fixture(scope="session")
def honest_report(honest: HonestLedger, compiled: dict[str, Any]) -> AuditReport:
    """The whole audit of the honest ledger: chain, code (fresh build) and the real API."""
    with honest.api() as client:  # batch files from the API too
        return run_audit(honest.config(batches=None), api_client=client, compiled=compiled)
