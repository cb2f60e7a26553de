"""A transaction pool the test controls, for the relayer's fairness tests and the hostile agency's (a world on an
anvil of its own with automatic mining off while a test runs: the ``pool`` fixture of ``tests/ledger/conftest.py``),
ratings of receipt cases on it, and waiting for the relay writers' threads."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.types import RPCEndpoint

from ledger import receipts
from ledger.chain.contract import Chain
from ledger.records import CaseAction, Rating, Receipt, text_hash
from ledger.relay.store import RelayStatus, RelayStore
from tests.support.feedback import code_of, receipt_case_id
from tests.support.world import World


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `condition` until it is truthy (the writers run in their own threads); fail saying `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@dataclass
class Pool:
    """A world on an anvil of its own, with automatic mining off while a test runs, and a funded key for the
    citizens' lane."""

    world: World
    citizen_relayer: LocalAccount

    @property
    def chain(self) -> Chain:
        return self.world.chain

    def mine(self) -> None:
        self.chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def in_pool(self, tx_hash: str | None) -> bool:
        if tx_hash is None:
            return False
        found = self.chain.w3.provider.make_request(RPCEndpoint("eth_getTransactionByHash"), [tx_hash]).get("result")
        return found is not None

    def send_copy(self, sender: LocalAccount, call: Any, tip: int) -> str:
        """Send `call` from `sender` with a higher tip than the relayer's, without waiting for it to be mined."""
        w3 = self.chain.w3
        base = int(w3.eth.get_block("latest")["baseFeePerGas"])
        tx = call.build_transaction({
            "from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain.chain_id, "gas": 1_000_000, "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base + tip,
        })
        return "0x" + bytes(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)).hex()

    def receipt_case(self, name: str) -> tuple[bytes, bytes]:
        """A case opened with a receipt and fulfilled (so its receipt holder may rate it): (case id, receipt key)."""
        w = self.world
        case = receipt_case_id(name)
        code = code_of(name)
        w.ledger.write(w.signer, w.opened(name, case_id=case))
        w.ledger.write(w.signer, Receipt(case_id=case, receipt=receipts.address(code), occurred_at=w.now()))
        w.ledger.write(w.signer, w.update(name, CaseAction.FULFILLED, case_id=case,
                                          details_hash=text_hash(f"{name}:done")))
        return case, receipts.private_key(code)


def settled(store: RelayStore, key: str) -> RelayStatus | None:
    status = store.status(key)
    return status if status is not None and status.state in ("recorded", "failed") else None


def rating_of(pool: Pool, name: str, score: int) -> tuple[Rating, bytes]:
    case, key = pool.receipt_case(name)
    rating = Rating(agency_id=pool.world.agency_id, case_id=case, score=score, comment_hash=text_hash(name))
    return rating, pool.world.ledger.sign_citizen(key, rating)
