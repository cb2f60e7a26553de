"""Fixtures of the API tests: a small demo city on a real anvil, indexed into SQLite, shared by the API tests
(session-scoped: built once); the ledger with every entry kind indexed into SQLite and PostgreSQL; the page tests'
browser and pages (``tests/support/browser.py``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from api.app import create_app
from api.settings import ApiSettings
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from ledger.store.db import open_store
from tests.support import everything as ev
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, Console, open_page
from tests.support.city import IndexedCity
from tests.support.everything import Everything


@pytest.fixture(scope="session")
def indexed_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexedCity]:
    data_dir = tmp_path_factory.mktemp("api-data")
    city = demo.generate_city(end=int(time.time()) - 120, days=21, cases=400, seed=4)
    node = AnvilNode(extra_args=["--timestamp", str(city.start - 3600)]).start()
    try:
        chain = Chain.connect(node.url)
        keys = KeyStore(data_dir / "keys")
        governance = keys.get_or_create("governance")
        chain.fund(governance.address)
        signers = {}
        for agency in demo.AGENCIES:
            signers[agency.agency_id] = keys.get_or_create(f"agency-{agency.agency_id}")
            chain.fund(signers[agency.agency_id].address)
        ledger = Ledger.deploy(chain, governance)
        demo.load_city(chain, ledger, governance, signers, city)
        store_url = f"sqlite:///{data_dir / 'index.sqlite'}"
        indexed = IndexedCity(node, chain, ledger, governance, signers, city, store_url, data_dir)
        indexed.sync()
        yield indexed
    finally:
        node.stop()


@pytest.fixture(scope="session")
def api_settings(indexed_city: IndexedCity) -> ApiSettings:
    return ApiSettings(
        store_url=indexed_city.store_url,
        rpc_url=indexed_city.node.url,
        contract_address=indexed_city.ledger.address,
        chain_id=indexed_city.chain.chain_id,
        data_dir=indexed_city.data_dir,
    )


@pytest.fixture
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    """The API with the figures' per-client budget and time share lifted: tests compute figures back to back, which on
    a loaded machine exceeds a process's share of time (then 503); the limits are test_abuse's and test_overload's
    subject, with settings of their own."""
    lifted = dataclasses.replace(api_settings, expensive_rate_per_minute=0, computation_share=1.0)
    with TestClient(create_app(lifted)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def city_store(indexed_city: IndexedCity) -> Iterator[Any]:
    store = open_store(indexed_city.store_url)
    yield store
    store.close()


# --- the ledger with every entry kind (tests/support/everything.py) --------------------------------------------------


@pytest.fixture(scope="module")
def world_chain() -> Iterator[ev.EverythingChain]:
    with ev.everything_chain() as built:
        yield built


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def everything(
    request: pytest.FixtureRequest, world_chain: ev.EverythingChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Everything]:
    """The ledger with every entry kind, indexed into a fresh SQLite file or PostgreSQL schema, and a client."""
    tmp = tmp_path_factory.mktemp(f"world-{request.param}")
    with ev.store_url(request.param, tmp) as url:
        ev.sync(world_chain.chain, world_chain.world.ledger.address, url)
        settings = ev.settings_for(world_chain, url, tmp)
        with TestClient(create_app(settings)) as client:
            yield Everything(world_chain, client, url, settings)


# --- the page in Chromium (each page test module serves its app at its own `base_url`) --------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, base_url: str, console: Console) -> Iterator[Page]:
    """A desktop page whose browser prefers English."""
    yield from open_page(browser, console, viewport=DESKTOP, locale="en-US")


@pytest.fixture
def phone(browser: Browser, base_url: str, console: Console) -> Iterator[Page]:
    """A phone-width page whose browser prefers Chinese."""
    yield from open_page(browser, console, viewport=PHONE, locale="zh-CN")
