"""A hostile agency against another agency's citizens' receipt keys: issuing a citizen's key (copied from the log
or the pool) to a case of its own must never make the citizen's look-up show that case — from the index, or from
the chain when the index has not read the receipts yet (``ledger.chain.receipt_case``).

On an anvil of its own (``tests.support.citizens``), with the index in SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.chain.keys import KeyStore
from ledger.errors import ContractReverted
from ledger.records import CaseAction, Receipt, text_hash
from tests.support.citizens import CitizenWorld, citizen_world, index_last_block, receipt_case_id


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("attack-review")) as world:
        w = world.world
        w.ledger.write(w.other_signer, w.commitment())  # the other agency (SH-WATER) plays the hostile one
        world.sync()
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings())) as test_client:
        test_client.app.state.agency_writes.warm_up()  # type: ignore[attr-defined]
        keys = KeyStore(cw.data_dir / "keys")
        for path in (cw.data_dir / "keys").glob("*.json"):  # every relay key the app made (one per lane)
            cw.chain.fund(keys.get_or_create(path.stem).address)
        yield test_client


def hostile_receipt_case(cw: CitizenWorld, name: str, address: str) -> bytes:
    """The hostile agency (SH-WATER) opens a case of its own, issues it a receipt to `address` and fulfils it (so
    that a citizen who lands on it is offered to rate it). Refused by the contract: returns the case all the same."""
    w = cw.world
    case = receipt_case_id(name)
    w.ledger.write(w.other_signer, w.opened(name, case_id=case))
    with contextlib.suppress(ContractReverted):  # a contract that refuses a used receipt key
        w.ledger.write(w.other_signer, Receipt(case_id=case, receipt=address, occurred_at=w.now()))
        w.ledger.write(w.other_signer, w.update(name, CaseAction.FULFILLED, case_id=case,
                                                details_hash=text_hash(f"{name}:done")))
    return case


def citizen_receipt_case(cw: CitizenWorld, name: str, code: str) -> tuple[bytes, str]:
    """The roads agency (SH-ROADS) opens the citizen's case and issues its receipt with `code`; if the contract
    refuses the code's key as used, the agency hands out a fresh code instead. Returns (case id, code issued)."""
    w = cw.world
    case = receipt_case_id(name)
    w.ledger.write(w.signer, w.opened(name, case_id=case))
    try:
        w.ledger.write(w.signer, Receipt(case_id=case, receipt=receipts.address(code), occurred_at=w.now()))
    except ContractReverted:
        code = receipts.new_code()
        w.ledger.write(w.signer, Receipt(case_id=case, receipt=receipts.address(code), occurred_at=w.now()))
    cw.codes[name] = code
    return case, code


def looked_up(client: TestClient, address: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/receipts/{address}")
    assert answer.status_code == 200, answer.text
    return answer.json()


# ------------------------------------------------------------------------------ a receipt key issued twice


def test_agency_front_running_a_receipt_key_does_not_take_over_the_citizens_look_up(
    client: TestClient, cw: CitizenWorld
) -> None:
    """The hostile agency got its issue of the key mined first: the contract refuses the citizen's agency's issue
    (ReceiptKeyAlreadyUsed), which gives the citizen a fresh code, and the look-up shows the citizen's case."""
    code = receipts.new_code()
    # the hostile agency saw the roads agency's issue of this key in the pool and got its own mined first
    hostile_receipt_case(cw, "front-run-hijacker", receipts.address(code))
    case, issued = citizen_receipt_case(cw, "front-run-citizen", code)
    cw.sync()
    view = looked_up(client, receipts.address(issued))
    assert (view["agency_id"], view["case_id"]) == (cw.agency, "0x" + case.hex())


def test_agency_reusing_a_citizens_receipt_key_later_does_not_take_over_the_look_up(
    client: TestClient, cw: CitizenWorld
) -> None:
    """Without front-running, the first receipt is the citizen's: the look-up keeps showing it, from the index and
    from the chain when the index has not read either receipt yet."""
    case, code = citizen_receipt_case(cw, "reused-later-indexed", receipts.new_code())
    hostile_receipt_case(cw, "reuse-later-hijacker", receipts.address(code))
    cw.sync()
    view = looked_up(client, receipts.address(code))
    assert (view["agency_id"], view["case_id"]) == (cw.agency, "0x" + case.hex())

    before = index_last_block(cw)
    case, code = citizen_receipt_case(cw, "reused-later-unindexed", receipts.new_code())
    hostile_receipt_case(cw, "reuse-later-hijacker-2", receipts.address(code))
    assert index_last_block(cw) == before  # neither receipt is indexed: the chain fallback answers
    view = looked_up(client, receipts.address(code))
    assert (view["agency_id"], view["case_id"]) == (cw.agency, "0x" + case.hex())
    cw.sync()
