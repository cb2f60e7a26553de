"""A town for the citizen page's end-to-end tests: a chain of its own on anvil, an agency set up through the operator
CLI (registered, a signing key authorised, commitments published), the citizens' relayer funded, the index synced on
demand, and the real app served by uvicorn on it (:func:`town_on_anvil`). The tests drive the agency through the CLI
(:meth:`Town.cli`) and the citizen through the page in Chromium (``tests.support.browser``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page
from typer.testing import CliRunner

from api.settings import ApiSettings
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.cli import app as cli_app
from ledger.dev import devnet
from ledger.dev.node import AnvilNode
from ledger.index.sync import Indexer
from ledger.relay.store import CITIZEN_LANE, LANES
from ledger.store.db import open_store
from tests.support.browser import Console, serve

runner = CliRunner()


@dataclass
class Town:
    node: AnvilNode
    chain: Chain
    ledger: Ledger
    data: Path
    #: the agency's signing key (named "roads" in the key store: ``--key roads``)
    signer: LocalAccount
    store_url: str
    base_url: str = ""

    def cli(self, *args: str) -> str:
        """Run ``civic-ledger`` on this town; its output (the command must succeed)."""
        result = runner.invoke(cli_app, ["--rpc-url", self.node.url, "--data-dir", str(self.data), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def at(self, offset: int = 0) -> str:
        """The chain's time `offset` seconds from its latest block, as the CLI takes times."""
        now = self.chain.w3.eth.get_block("latest")["timestamp"]
        return datetime.fromtimestamp(now + offset, UTC).isoformat()

    def sync(self) -> None:
        store = open_store(self.store_url)
        try:
            Indexer(self.chain, self.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()

    def block_time(self, block_number: int) -> int:
        return int(self.chain.w3.eth.get_block(block_number)["timestamp"])


@contextmanager
def town_on_anvil(data: Path, agency: str, commitments: list[list[str]], **settings: Any) -> Iterator[Town]:
    """A town whose agency `agency` (key "roads") has published `commitments` (each the arguments of ``commitment
    publish`` after the id, e.g. ``["LIGHT-48H", "--service-code", …]``), indexed, with the app served on it with
    `settings` (``ApiSettings`` fields)."""
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = KeyStore(data / "keys")
        ledger, _ = devnet.ensure_ledger(chain, data, keys)
        signer = keys.get_or_create("roads")
        chain.fund(signer.address)
        chain.fund(keys.get_or_create(LANES[CITIZEN_LANE][1]).address)  # the citizens' lane pays for their entries
        town = Town(node, chain, ledger, data, signer, f"sqlite:///{data / 'index.sqlite'}")
        town.cli("agency", "register", agency, "--jurisdiction", "CN-SH", "--name-zh", "路政局", "--name-en",
                 "Roads Office")
        town.cli("agency", "authorize", agency, signer.address)
        for commitment in commitments:
            town.cli("commitment", "publish", *commitment, "--at", town.at(-7200), "--valid-from", town.at(-7200),
                     "--key", "roads")
        town.sync()
        base = ApiSettings(store_url=town.store_url, rpc_url=node.url, contract_address=ledger.address,
                           chain_id=chain.chain_id, data_dir=data)
        with serve(replace(base, **settings)) as url:
            town.base_url = url
            yield town


def new_page(browser: Browser, console: Console, *, viewport: Any, locale: str) -> Page:
    """A page in a new browser context (`viewport`, `locale`, reduced motion), its console watched."""
    context = browser.new_context(viewport=viewport, locale=locale, reduced_motion="reduce")
    context.set_default_timeout(15_000)
    page = context.new_page()
    console.watch(page)
    return page
