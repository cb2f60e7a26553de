"""Relayed writes as an agency's client makes them: a record signed with the agency key (EIP-712, the ledger's typed
data), and submitted to a relay store (``ledger.relay.store``)."""

from __future__ import annotations

import time

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.records import CaseEvent, Record
from ledger.relay.store import RelayStatus, RelayStore
from ledger.relay.verify import SignedRecord, check_signed_record
from tests.support.world import World


def signed(
    world: World,
    signer: LocalAccount,
    record: Record | list[CaseEvent],
    *,
    nonce: int | None = None,
    deadline: int | None = None,
) -> SignedRecord:
    nonce = world.ledger.nonce(signer.address) if nonce is None else nonce
    typed = world.ledger.typed_data(
        record, nonce, deadline or int(time.time()) + 3600, world.ledger.agency_of(signer.address)
    )
    signature = Account.sign_typed_data(signer.key, full_message=typed).signature
    return check_signed_record(typed, signature, world.ledger.domain())


def submit(world: World, store: RelayStore, item: SignedRecord) -> RelayStatus:
    status, created = store.submit(item, world.ledger.agency_of(item.signer), lambda: world.ledger.nonce(item.signer))
    assert created
    return status
