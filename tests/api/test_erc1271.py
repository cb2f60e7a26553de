"""A contract wallet (ERC-1271) as an agency's key, through the agency write API on anvil: a test-only wallet
(``tests/contracts/fixtures/OwnerWallet.sol``, compiled with the project's pipeline) accepts its owner's signature;
the API asks it on chain (``ledger.chain.erc1271``), relays the record with the wallet as signer, and the index shows
the entry. A signature the wallet does not accept is ``bad_signature``; the owner's key alone is no agency key; a node
that does not answer the question is a 503 ``node_unavailable`` within the check's timeout, never an acceptance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.chain.contract import Chain
from ledger.chain.erc1271 import ContractSigners
from ledger.chain.keys import KeyStore
from ledger.errors import NodeUnavailable
from ledger.records import CaseEvent, EntryKind, short_code
from tests.support.citizens import CitizenWorld, citizen_world, relay_rows
from tests.support.faults import FaultProxy
from tests.support.pool import wait_for
from tests.support.solidity import compile_fixture, deploy, transact

URL = "/api/v1/agency/records"


@dataclass
class WalletWorld:
    cw: CitizenWorld
    client: TestClient
    #: the key the wallet accepts signatures from (itself no agency key)
    owner: LocalAccount
    wallet: str

    def body(self, event: CaseEvent, key: LocalAccount, **extra: Any) -> dict[str, Any]:
        """The record signed by `key` over the typed data of the wallet's next nonce, as a wallet app would."""
        ledger = self.cw.ledger
        typed = ledger.typed_data(event, ledger.nonce(self.wallet), int(time.time()) + 3600,
                                  ledger.agency_of(self.wallet))
        signature = bytes(Account.sign_typed_data(key.key, full_message=typed).signature)
        return {"typed_data": typed, "signature": "0x" + signature.hex(), "signer": self.wallet, **extra}


@pytest.fixture(scope="module")
def ww(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WalletWorld]:
    with citizen_world(tmp_path_factory.mktemp("erc1271")) as cw:
        world = cw.world
        owner = Account.create()
        wallet = deploy(cw.chain, world.governance, compile_fixture("OwnerWallet"), owner.address)
        world.ledger.authorize_signer(world.governance, world.agency_id, wallet)
        cw.sync()
        with TestClient(create_app(cw.settings())) as client:
            yield WalletWorld(cw, client, owner, wallet)


def test_a_contract_wallets_record_is_accepted_relayed_and_indexed(ww: WalletWorld):
    event = ww.cw.world.opened("wallet-1")
    answer = ww.client.post(URL, json=ww.body(event, ww.owner))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "recorded" and body["signer"] == ww.wallet
    (entry,) = [e for e in ww.cw.ledger.entries(from_block=0) if e.seq == body["seq"]]
    assert entry.kind is EntryKind.CASE_EVENT and entry.actor == ww.wallet  # the wallet, not its owner or the relayer
    assert entry.record_hash == event.struct_hash()
    ww.cw.sync()
    shown = ww.client.get(f"/api/v1/entries/{body['seq']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["actor"] == ww.wallet and shown.json()["record_hash"] == "0x" + event.struct_hash().hex()


def test_a_signature_the_wallet_does_not_accept_is_bad_signature(ww: WalletWorld):
    count, rows = ww.cw.ledger.entry_count(), relay_rows(ww.client)
    stranger = Account.create()
    for body in (
        ww.body(ww.cw.world.opened("wallet-forged"), stranger),  # another key's signature
        {**ww.body(ww.cw.world.opened("wallet-long"), ww.owner), "signature": "0x" + "ab" * 130},  # not the owner's
    ):
        answer = ww.client.post(URL, json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "bad_signature" and "ERC-1271" in error["message"]
    assert ww.cw.ledger.entry_count() == count and relay_rows(ww.client) == rows


def test_the_owners_key_alone_is_no_agency_key(ww: WalletWorld):
    """Without ``signer`` the signature recovers to the owner's key (the EOA path, unchanged), which governance never
    authorised: the wallet's authority is not its owner's."""
    body = ww.body(ww.cw.world.opened("wallet-owner"), ww.owner)
    del body["signer"]
    answer = ww.client.post(URL, json=body)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "unauthorized_signer", answer.text


def test_an_eoa_signer_is_never_asked_on_chain(ww: WalletWorld):
    """An agency's ordinary key keeps the ECDSA path: a signature by another key is ``signer_mismatch`` as before (the
    address holds no code), and a good one is accepted."""
    world = ww.cw.world
    ledger = world.ledger
    typed = ledger.typed_data(world.opened("eoa-1"), ledger.nonce(world.signer.address), int(time.time()) + 3600,
                              world.agency_id)
    forged = bytes(Account.sign_typed_data(Account.create().key, full_message=typed).signature)
    answer = ww.client.post(URL, json={"typed_data": typed, "signature": "0x" + forged.hex(),
                                       "signer": world.signer.address})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "signer_mismatch", answer.text
    good = bytes(Account.sign_typed_data(world.signer.key, full_message=typed).signature)
    answer = ww.client.post(URL, json={"typed_data": typed, "signature": "0x" + good.hex(),
                                       "signer": world.signer.address})
    assert answer.status_code == 202 and answer.json()["signer"] == world.signer.address, answer.text


def test_a_node_that_does_not_answer_the_wallet_check_is_a_503_within_the_timeout(ww: WalletWorld):
    with FaultProxy(ww.cw.node.url) as proxy:
        settings = ww.cw.settings(rpc_url=proxy.url, data_dir=ww.cw.data_dir / "behind-proxy",
                                  extra={"wallet_check_timeout": "0.5"})
        KeyStore(settings.data_dir / "keys").get_or_create("relayer")
        with TestClient(create_app(settings)) as client:
            assert client.get(f"/api/v1/agency/nonce/{ww.wallet}").status_code == 200  # the relay is up
            count = ww.cw.ledger.entry_count()
            proxy.hang(method="eth_getCode", times=2, seconds=3.0)  # the check and its one retry
            started = time.monotonic()
            answer = client.post(URL, json=ww.body(ww.cw.world.opened("wallet-dark"), ww.owner))
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "node_unavailable"
            assert time.monotonic() - started < 2.5  # the timeout, not the node, ends the wait
            assert ww.cw.ledger.entry_count() == count


def test_contract_signers_report_an_unreachable_node_as_unavailable(ww: WalletWorld):
    with FaultProxy(ww.cw.node.url) as proxy:
        signers = ContractSigners(Chain.connect(proxy.url), timeout=0.3)
        assert signers.is_contract(ww.wallet) and not signers.is_contract(ww.owner.address)
        proxy.fail(500, times=2, method="eth_call")
        with pytest.raises(NodeUnavailable, match="cannot reach"):
            signers.accepts(ww.wallet, b"\0" * 32, b"\1" * 65)
        # a call that reverts (the ledger has no isValidSignature) is a refusal, not an outage; so is the wallet's
        # answer to a signature it cannot even parse
        assert not signers.accepts(ww.cw.ledger.address, b"\0" * 32, b"\1" * 65)
        assert not signers.accepts(ww.wallet, b"\0" * 32, b"\1" * 10)
        signers.close()


# --- a hostile agency's wallet (tests/contracts/fixtures/HostileWallet.sol; issue 16's attack pass) -----------------

#: HostileWallet.Mode
APPROVE_ALL, REVERT, BURN_GAS, TWO_FACED, REFUSE_ALL = range(5)


@dataclass
class Hostile:
    ww: WalletWorld
    #: a contract wallet governance authorised as SH-ROADS's key; its answers are set with `mode`
    wallet: str
    contract: Any

    def mode(self, mode: int) -> None:
        transact(self.ww.cw.chain, self.ww.cw.world.governance, self.contract.functions.setMode(mode))

    def body(self, record: Any, agency_id: bytes, nonce: int | None = None) -> dict[str, Any]:
        """`record` for `agency_id`, "signed" by the wallet: a signature by a key nobody authorised, which only the
        wallet's own say-so can make count."""
        ledger = self.ww.cw.ledger
        typed = ledger.typed_data(record, ledger.nonce(self.wallet) if nonce is None else nonce,
                                  int(time.time()) + 3600, agency_id)
        signature = bytes(Account.sign_typed_data(Account.create().key, full_message=typed).signature)
        return {"typed_data": typed, "signature": "0x" + signature.hex(), "signer": self.wallet}


@pytest.fixture(scope="module")
def hostile(ww: WalletWorld) -> Hostile:
    world = ww.cw.world
    spec = compile_fixture("HostileWallet")
    wallet = deploy(ww.cw.chain, world.governance, spec)
    world.ledger.authorize_signer(world.governance, world.agency_id, wallet)
    return Hostile(ww, wallet, ww.cw.chain.w3.eth.contract(address=wallet, abi=spec["abi"]))


def test_a_wallet_approving_every_signature_cannot_write_for_another_agency(hostile: Hostile):
    """The wallet says yes to anything, so the API's ERC-1271 check passes; but the chain says the wallet writes for
    SH-ROADS, so a record it "signs" for SH-WATER is refused (403 ``agency_mismatch``) before anything is stored, as
    the contract would refuse it. What it approves for its own agency is that agency's record: its own doing."""
    ww, world = hostile.ww, hostile.ww.cw.world
    hostile.mode(APPROVE_ALL)
    count, rows = ww.cw.ledger.entry_count(), relay_rows(ww.client)
    answer = ww.client.post(URL, json=hostile.body(world.opened("hostile-other"), world.other_agency_id))
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "agency_mismatch" and "SH-ROADS" in error["message"]
    assert ww.cw.ledger.entry_count() == count and relay_rows(ww.client) == rows
    answer = ww.client.post(URL, json=hostile.body(world.opened("hostile-own"), world.agency_id))
    assert answer.status_code == 202 and answer.json()["status"] == "recorded", answer.text
    (entry,) = [e for e in ww.cw.ledger.entries(from_block=0) if e.seq == answer.json()["seq"]]
    assert entry.actor == hostile.wallet and entry.agency_id == world.agency_id


def test_a_wallet_that_reverts_or_burns_all_gas_is_a_bad_signature_at_once(hostile: Hostile):
    """A wallet that reverts, or loops until the check's gas bound (``CHECK_GAS``) runs out, is a refusal (400
    ``bad_signature``) within a moment — never a 503 blaming the node (anvil words running out of gas "EVM error
    OutOfGas": before this test, that was taken for an unavailable node) — and nothing is stored."""
    ww, world = hostile.ww, hostile.ww.cw.world
    for mode in (REVERT, BURN_GAS):
        hostile.mode(mode)
        count, rows = ww.cw.ledger.entry_count(), relay_rows(ww.client)
        started = time.monotonic()
        answer = ww.client.post(URL, json=hostile.body(world.opened(f"hostile-{mode}"), world.agency_id))
        assert time.monotonic() - started < 5, mode
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "bad_signature" and "ERC-1271" in error["message"], mode
        assert ww.cw.ledger.entry_count() == count and relay_rows(ww.client) == rows


def test_a_wallet_changing_its_answer_between_the_check_and_the_relay_fails_alone(hostile: Hostile):
    """The wallet approves when the API asks (an eth_call from no contract) and refuses when the ledger asks: the
    submission is accepted (202), then fails with the contract's decoded error, at its gas estimate (the relayer pays
    nothing, the wallet's nonce is not used); another agency's record submitted right after it is recorded."""
    ww, world = hostile.ww, hostile.ww.cw.world
    ledger = ww.cw.ledger
    hostile.mode(TWO_FACED)
    relayer = ww.client.app.state.agency_writes.relayer_address  # type: ignore[attr-defined]
    wallet_nonce = ledger.nonce(hostile.wallet)
    count = ledger.entry_count()
    two_faced = ww.client.post(URL, json=hostile.body(world.opened("hostile-two-faced"), world.agency_id))
    assert two_faced.status_code == 202, two_faced.text
    relayer_nonce = ww.cw.chain.w3.eth.get_transaction_count(relayer)
    other = world.commitment(short_code("WATER-MAIN-24H"))
    typed = ledger.typed_data(other, ledger.nonce(world.other_signer.address), int(time.time()) + 3600,
                              world.other_agency_id)
    signature = bytes(Account.sign_typed_data(world.other_signer.key, full_message=typed).signature)
    honest = ww.client.post(URL, json={"typed_data": typed, "signature": "0x" + signature.hex()})
    assert honest.status_code == 202 and honest.json()["status"] == "recorded", honest.text

    def failed() -> dict[str, Any] | None:
        body = ww.client.get(f"{URL}/{two_faced.json()['id']}").json()
        return body if body["status"] == "failed" else None

    body = wait_for(failed, "the two-faced wallet's submission to fail", timeout=20)
    assert body["error"]["code"] == "relay_failed" and body["error"]["name"] != "NotRelayed"
    assert "tx_hash" not in body  # refused at the estimate: never sent
    assert ledger.nonce(hostile.wallet) == wallet_nonce
    assert ledger.entry_count() == count + 1  # the honest record only
    assert ww.cw.chain.w3.eth.get_transaction_count(relayer) == relayer_nonce + 1  # the honest record's transaction
