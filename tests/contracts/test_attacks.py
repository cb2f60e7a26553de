"""Attacks on the ledger, each shown refused with the exact custom error the contract raises.

Relayed signatures: replay (same contract, another deployment, another chain id), malleability (high-s twin,
64-byte compact form), tampering with every signed field, expiry and cancellation. Governance: role grants by
outsiders and a one-step admin handover. Encodings: records whose naive encodings coincide still hash apart.

A refused call reverts when web3 estimates its gas, so it is never sent: these tests stay cheap in transactions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_abi.packed import encode_packed
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_keys import keys
from pydantic import ValidationError

from ledger.chain.contract import Chain, Ledger
from ledger.dev.node import AnvilNode
from ledger.encoding import entry_hash, keccak, running_hash
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    DeadlineUnit,
    EntryKind,
    HolidayCalendar,
    Record,
    Retirement,
    day_number,
    short_code,
    text_hash,
)
from tests.support.filings import domain_separator
from tests.support.reverts import refused
from tests.support.world import World, case_id, head

#: order of the secp256k1 group
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_BY_SIG = {
    Commitment: "publishCommitmentBySig",
    Retirement: "retireCommitmentBySig",
    CaseEvent: "recordCaseEventBySig",
    Correction: "recordCorrectionBySig",
    HolidayCalendar: "publishHolidayCalendarBySig",
}


# ---------------------------------------------------------------------------------------------------- helpers


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def relay_call_args(record: Record | list[CaseEvent]) -> tuple[str, Any]:
    """The BySig function and its first argument for `record` (a batch when a list)."""
    if isinstance(record, list):
        return "recordCaseEventsBySig", [e.abi_values() for e in record]
    return _BY_SIG[type(record)], record.abi_values()


def assert_accepted_when_signed(world: World, record: Record | list[CaseEvent], deadline: int) -> None:
    """A genuine signature over `record` would be accepted (checked with eth_call, nothing is sent).

    Used on tampered records: the tampered record is valid in itself, so the only thing wrong with the attack
    is the signature.
    """
    signature = world.ledger.sign(world.signer, record, deadline)
    name, first = relay_call_args(record)
    world.ledger.call_view(name, first, world.signer.address, deadline, signature)


def publish_second_commitment(world: World) -> bytes:
    second = short_code("POTHOLE-5D")
    world.ledger.write(
        world.signer,
        world.commitment(second, service_code=short_code("POTHOLE"), name_zh="坑洼修补", name_en="Pothole repair"),
    )
    return second


def wait_until_after(chain: Chain, timestamp: int) -> None:
    """Make the latest block's time exceed `timestamp` (OpenZeppelin's schedules need `schedule < block.timestamp`).

    eth-tester advances its clock by at least a second per block, so a cheap transaction mines what is needed.
    anvil stamps blocks with the wall clock (several blocks share a second), so move its clock with its own RPC.
    """
    while int(chain.w3.eth.get_block("latest")["timestamp"]) <= timestamp:
        if chain.embedded:
            chain.fund(chain.w3.eth.accounts[1], 1)
        else:
            chain.w3.provider.make_request("evm_increaseTime", [1])
            chain.w3.provider.make_request("evm_mine", [])


# ------------------------------------------------------------------------------------------------------ replay


def test_signature_replayed_on_same_contract_is_refused(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.opened("replay")
    deadline = world.now() + 3600
    signature = ledger.sign(signer, record, deadline)
    assert ledger.nonce(signer.address) == 0

    ledger.relay(world.relayer, record, signer.address, deadline, signature)
    assert ledger.nonce(signer.address) == 1
    after_first = head(world)

    # the same relayer, or anyone else: the nonce moved on, the digest no longer matches
    for relayer in (world.relayer, world.other_signer):
        err = refused("InvalidSignature", ledger.relay, relayer, record, signer.address, deadline, signature)
        assert same_address(err.error_args["signer"], signer.address)
    assert head(world) == after_first
    assert ledger.nonce(signer.address) == 1


def test_signature_replayed_on_another_deployment_is_refused(world: World) -> None:
    first, signer = world.ledger, world.signer
    second = Ledger.deploy(world.chain, world.governance)
    assert second.address != first.address
    second.register_agency(
        world.governance,
        AgencyRegistration(
            agency_id=world.agency_id, jurisdiction=short_code("CN-SH"), name_zh="路政局", name_en="Roads"
        ),
    )
    second.authorize_signer(world.governance, world.agency_id, signer.address)

    record = world.update("cross-deployment", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    for_first = first.sign(signer, record, deadline)
    for_second = second.sign(signer, record, deadline)
    # same signer, same nonce (0), same record: the domains differ only in verifyingContract
    assert first.nonce(signer.address) == second.nonce(signer.address) == 0
    assert for_first != for_second

    err = refused("InvalidSignature", second.relay, world.relayer, record, signer.address, deadline, for_first)
    assert same_address(err.error_args["signer"], signer.address)
    refused("InvalidSignature", first.relay, world.relayer, record, signer.address, deadline, for_second)
    assert second.entry_count() == 2  # registration and authorisation only

    # each signature is good where it was made for
    first.relay(world.relayer, record, signer.address, deadline, for_first)
    second.relay(world.relayer, record, signer.address, deadline, for_second)
    assert second.entry_count() == 3


def test_signature_replayed_on_another_chain_id_is_refused(anvil_node: AnvilNode) -> None:
    """Two anvils, chain ids 31337 and 31338, the ledger deployed by the same fresh key at the same nonce on both:
    same contract address, same agency, same signer, same nonce. Only the chain id in the domain differs."""
    home = Chain.connect(anvil_node.url, expected_chain_id=31337)
    snapshot = home.snapshot()
    foreign_node = AnvilNode(chain_id=31338).start()
    try:
        foreign = Chain.connect(foreign_node.url, expected_chain_id=31338)
        governance, signer, relayer = Account.create(), Account.create(), Account.create()
        agency_id = short_code("SH-ROADS")
        ledgers = []
        for chain in (home, foreign):
            chain.fund(governance.address)
            chain.fund(relayer.address)
            ledger = Ledger.deploy(chain, governance)
            ledger.register_agency(
                governance,
                AgencyRegistration(
                    agency_id=agency_id, jurisdiction=short_code("CN-SH"), name_zh="路政局", name_en="Roads"
                ),
            )
            ledger.authorize_signer(governance, agency_id, signer.address)
            ledgers.append(ledger)
        on_home, on_foreign = ledgers
        assert on_home.address == on_foreign.address

        times = [int(c.w3.eth.get_block("latest")["timestamp"]) for c in (home, foreign)]
        record = CaseEvent(case_id=case_id("cross-chain"), action=CaseAction.ACCEPTED, occurred_at=min(times))
        deadline = max(times) + 3600
        home_data, foreign_data = (on_home.typed_data(record, 0, deadline, agency_id),
                                   on_foreign.typed_data(record, 0, deadline, agency_id))
        assert home_data["domain"] == {**foreign_data["domain"], "chainId": 31337}
        assert {**home_data, "domain": None} == {**foreign_data, "domain": None}

        for_home = on_home.sign(signer, record, deadline)
        for_foreign = on_foreign.sign(signer, record, deadline)
        err = refused("InvalidSignature", on_foreign.relay, relayer, record, signer.address, deadline, for_home)
        assert same_address(err.error_args["signer"], signer.address)
        refused("InvalidSignature", on_home.relay, relayer, record, signer.address, deadline, for_foreign)
        assert on_foreign.entry_count() == on_home.entry_count() == 2

        on_home.relay(relayer, record, signer.address, deadline, for_home)
        on_foreign.relay(relayer, record, signer.address, deadline, for_foreign)
        assert on_foreign.entry_count() == on_home.entry_count() == 3
    finally:
        foreign_node.stop()
        home.revert(snapshot)


def test_single_and_batch_signatures_are_not_interchangeable(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    event = world.update("wrapper", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    single = ledger.sign(signer, event, deadline)
    batch = ledger.sign(signer, [event], deadline)
    refused("InvalidSignature", ledger.relay, world.relayer, [event], signer.address, deadline, single)
    refused("InvalidSignature", ledger.relay, world.relayer, event, signer.address, deadline, batch)
    ledger.relay(world.relayer, [event], signer.address, deadline, batch)
    assert ledger.entry_count() == 6


# ------------------------------------------------------------------------------------------------ malleability


def test_high_s_twin_is_refused_and_original_accepted(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.opened("malleable")
    deadline = world.now() + 3600
    signature = ledger.sign(signer, record, deadline)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    assert v in (27, 28) and s <= SECP256K1_N // 2
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # v: 27 <-> 28

    # the twin is a genuine second signature by the same key over the same digest ...
    digest = _hash_eip191_message(
        encode_typed_data(full_message=ledger.typed_data(record, 0, deadline, world.agency_id))
    )
    twin_key = keys.Signature(vrs=(twin[64] - 27, int.from_bytes(r, "big"), SECP256K1_N - s))
    assert same_address(twin_key.recover_public_key_from_msg_hash(digest).to_checksum_address(), signer.address)

    # ... which the ledger refuses, as it refuses the 64-byte compact (EIP-2098) form of the original
    err = refused("InvalidSignature", ledger.relay, world.relayer, record, signer.address, deadline, twin)
    assert same_address(err.error_args["signer"], signer.address)
    compact = r + ((v - 27) << 255 | s).to_bytes(32, "big")
    refused("InvalidSignature", ledger.relay, world.relayer, record, signer.address, deadline, compact)
    refused("InvalidSignature", ledger.relay, world.relayer, record, signer.address, deadline, signature + b"\0")
    assert ledger.nonce(signer.address) == 0

    ledger.relay(world.relayer, record, signer.address, deadline, signature)
    assert ledger.nonce(signer.address) == 1
    assert ledger.entries()[-1].record == record


def test_zero_signer_with_garbage_signature_is_refused(world: World) -> None:
    """ecrecover answers address(0) for garbage; address(0) is never an authorised key."""
    record = world.update("zero", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    zero = "0x" + "00" * 20
    for garbage in (b"\0" * 65, b"\0" * 64 + b"\x1b"):
        refused("UnauthorizedSigner", world.ledger.relay, world.relayer, record, zero, deadline, garbage)


# --------------------------------------------------------------------------------------------------- tampering


def test_every_signed_field_of_a_case_event_is_bound(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    second_commitment = publish_second_commitment(world)
    deadline = world.now() + 3600
    opened = world.opened("tamper", details_hash=text_hash("intake form"))
    later = world.update("tamper-later", CaseAction.ACCEPTED)
    tampered: list[tuple[CaseEvent, CaseEvent]] = [
        (opened, opened.model_copy(update={"case_id": case_id("tamper-2")})),
        (opened, opened.model_copy(update={"occurred_at": opened.occurred_at - 1})),
        (opened, opened.model_copy(update={"commitment_id": second_commitment})),
        (opened, opened.model_copy(update={"district": short_code("JINGAN")})),
        (opened, opened.model_copy(update={"channel": 3})),
        (opened, opened.model_copy(update={"details_hash": text_hash("another form")})),
        (opened, opened.model_copy(update={"details_hash": b"\0" * 32})),
        (later, later.model_copy(update={"action": CaseAction.ESCALATED})),
        (later, later.model_copy(update={"action": CaseAction.FULFILLED})),
    ]
    before = head(world)
    for original, changed in tampered:
        assert changed != original
        CaseEvent.model_validate(changed.model_dump())  # still a well-formed record
        assert_accepted_when_signed(world, changed, deadline)
        signature = ledger.sign(signer, original, deadline)
        err = refused("InvalidSignature", ledger.relay, world.relayer, changed, signer.address, deadline, signature)
        assert same_address(err.error_args["signer"], signer.address)

    signature = ledger.sign(signer, opened, deadline)
    # the deadline, the signer and the nonce are signed too
    refused("InvalidSignature", ledger.relay, world.relayer, opened, signer.address, deadline + 1, signature)
    err = refused(
        "InvalidSignature", ledger.relay, world.relayer, opened, world.other_signer.address, deadline, signature
    )
    assert same_address(err.error_args["signer"], world.other_signer.address)
    for wrong_nonce in (1, 2**256 - 1):
        wrong = ledger.sign(signer, opened, deadline, nonce=wrong_nonce)
        refused("InvalidSignature", ledger.relay, world.relayer, opened, signer.address, deadline, wrong)
    # a key signing another key's record
    forged = ledger.sign(world.other_signer, opened, deadline, nonce=0)
    refused("InvalidSignature", ledger.relay, world.relayer, opened, signer.address, deadline, forged)
    assert head(world) == before and ledger.nonce(signer.address) == 0

    ledger.relay(world.relayer, opened, signer.address, deadline, signature)
    assert ledger.entry_count() == before[0] + 1


def test_every_change_to_a_signed_batch_is_refused(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    deadline = world.now() + 3600
    batch = [world.opened("b1"), world.opened("b2"), world.update("b1", CaseAction.ACCEPTED)]
    signature = ledger.sign(signer, batch, deadline)
    changed_event = batch[1].model_copy(update={"details_hash": text_hash("x")})
    attacks: dict[str, list[CaseEvent]] = {
        "one event changed": [batch[0], changed_event, batch[2]],
        "last dropped": batch[:2],
        "first dropped": batch[1:],
        "reordered": [batch[1], batch[0], batch[2]],
        "one appended": [*batch, world.update("b2", CaseAction.ACCEPTED)],
        "one repeated": [*batch, batch[2]],
    }
    before = head(world)
    for label, events in attacks.items():
        assert_accepted_when_signed(world, events, deadline)
        err = refused("InvalidSignature", ledger.relay, world.relayer, events, signer.address, deadline, signature)
        assert same_address(err.error_args["signer"], signer.address), label
    for event in batch:  # a batch signature does not authorise its events one by one
        refused("InvalidSignature", ledger.relay, world.relayer, event, signer.address, deadline, signature)
    refused("InvalidSignature", ledger.relay, world.relayer, batch, signer.address, deadline + 1, signature)
    refused(
        "InvalidSignature", ledger.relay, world.relayer, batch, world.other_signer.address, deadline, signature
    )
    wrong_nonce = ledger.sign(signer, batch, deadline, nonce=1)
    refused("InvalidSignature", ledger.relay, world.relayer, batch, signer.address, deadline, wrong_nonce)
    refused("EmptyBatch", ledger.relay, world.relayer, [], signer.address, deadline, signature)
    assert head(world) == before

    ledger.relay(world.relayer, batch, signer.address, deadline, signature)
    assert [e.record for e in ledger.entries()[-3:]] == batch


def _tampered_records(world: World, kind: str, second_commitment: bytes) -> list[tuple[Record, Record]]:
    now = world.now()
    if kind == "Commitment":
        base = world.commitment(short_code("SIDEWALK-10D"), name_zh="人行道修补", name_en="Sidewalk repair")
        changes: list[dict[str, Any]] = [
            {"commitment_id": short_code("SIDEWALK-11D")},
            {"service_code": short_code("SIDEWALK")},
            {"name_zh": "人行道修补!"},
            {"name_en": "Sidewalk repairs"},
            {"deadline": 49},
            {"deadline_unit": DeadlineUnit.WORKING_DAYS},
            {"target_bps": 9501},
            {"valid_from": base.valid_from - 1},
            {"terms_hash": text_hash("other terms")},
            {"occurred_at": now - 1},
        ]
        return [(base, base.model_copy(update=c)) for c in changes]
    if kind == "Retirement":
        base = Retirement(commitment_id=world.commitment_id, reason_hash=text_hash("superseded"), occurred_at=now)
        changes = [
            {"commitment_id": second_commitment},
            {"reason_hash": text_hash("budget cut")},
            {"occurred_at": now - 1},
        ]
        return [(base, base.model_copy(update=c)) for c in changes]
    if kind == "Correction":
        base = Correction(target_seq=4, reason_hash=text_hash("typo"), occurred_at=now)
        changes = [{"target_seq": 3}, {"reason_hash": text_hash("duplicate")}, {"occurred_at": now - 1}]
        return [(base, base.model_copy(update=c)) for c in changes]
    assert kind == "HolidayCalendar"
    base = HolidayCalendar.from_dates(2025, [date(2025, 1, 1)], [date(2025, 1, 26)], now)
    empty = HolidayCalendar(year=2025, occurred_at=now)
    changes = [
        {"holidays": (*base.holidays, day_number(date(2025, 5, 1)))},
        {"holidays": ()},
        {"workdays": (*base.workdays, day_number(date(2025, 2, 8)))},
        {"workdays": ()},
        {"occurred_at": now - 1},
    ]
    pairs: list[tuple[Record, Record]] = [(base, base.model_copy(update=c)) for c in changes]
    return [*pairs, (empty, empty.model_copy(update={"year": 2026}))]


@pytest.mark.parametrize("kind", ["Commitment", "Retirement", "Correction", "HolidayCalendar"])
def test_every_signed_field_of_other_relayed_records_is_bound(world: World, kind: str) -> None:
    ledger, signer = world.ledger, world.signer
    second_commitment = publish_second_commitment(world)
    deadline = world.now() + 3600
    pairs = _tampered_records(world, kind, second_commitment)
    before = head(world)
    for original, changed in pairs:
        assert changed != original
        type(changed).model_validate(changed.model_dump())
        assert_accepted_when_signed(world, changed, deadline)
        signature = ledger.sign(signer, original, deadline)
        refused("InvalidSignature", ledger.relay, world.relayer, changed, signer.address, deadline, signature)
    original = pairs[0][0]
    signature = ledger.sign(signer, original, deadline)
    refused("InvalidSignature", ledger.relay, world.relayer, original, signer.address, deadline + 1, signature)
    refused("InvalidSignature", ledger.relay, world.relayer, original, world.other_signer.address, deadline, signature)
    wrong_nonce = ledger.sign(signer, original, deadline, nonce=1)
    refused("InvalidSignature", ledger.relay, world.relayer, original, signer.address, deadline, wrong_nonce)
    assert head(world) == before

    ledger.relay(world.relayer, original, signer.address, deadline, signature)
    assert ledger.entries()[-1].record.struct_hash() == original.struct_hash()


# ------------------------------------------------------------------------------------ expiry and cancellation


def test_expired_signature_is_refused(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.update("late", CaseAction.ACCEPTED)
    deadline = world.now() - 1
    signature = ledger.sign(signer, record, deadline)
    err = refused("SignatureExpired", ledger.relay, world.relayer, record, signer.address, deadline, signature)
    assert err.error_args["deadline"] == deadline
    assert err.error_args["blockTime"] > deadline
    refused("SignatureExpired", ledger.relay, world.relayer, [record], signer.address, 0, signature)
    assert ledger.nonce(signer.address) == 0


def test_cancelled_signatures_are_refused(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    deadline = world.now() + 3600
    first, second = world.update("c1", CaseAction.ACCEPTED), world.update("c2", CaseAction.ACCEPTED)
    queued = [ledger.sign(signer, first, deadline, nonce=0), ledger.sign(signer, second, deadline, nonce=1)]

    # another account cancelling its own nonces does not touch the signer's
    ledger.cancel_signatures(world.relayer, 5)
    assert ledger.nonce(world.relayer.address) == 5 and ledger.nonce(signer.address) == 0

    ledger.cancel_signatures(signer, 2)
    assert ledger.nonce(signer.address) == 2
    for record, signature in zip((first, second), queued, strict=True):
        err = refused("InvalidSignature", ledger.relay, world.relayer, record, signer.address, deadline, signature)
        assert same_address(err.error_args["signer"], signer.address)

    err = refused("NonceNotIncreasing", ledger.cancel_signatures, signer, 2)
    assert err.error_args == {"current": 2, "requested": 2}
    refused("NonceNotIncreasing", ledger.cancel_signatures, signer, 1)

    fresh = ledger.sign(signer, first, deadline)
    ledger.relay(world.relayer, first, signer.address, deadline, fresh)
    assert ledger.nonce(signer.address) == 3


def test_signature_of_a_revoked_key_is_refused(world: World) -> None:
    ledger, signer = world.ledger, world.signer
    record = world.update("revoked", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    signature = ledger.sign(signer, record, deadline)
    ledger.revoke_signer(world.governance, signer.address)
    err = refused("UnauthorizedSigner", ledger.relay, world.relayer, record, signer.address, deadline, signature)
    assert same_address(err.error_args["signer"], signer.address)
    refused("UnauthorizedSigner", ledger.write, signer, record)


# -------------------------------------------------------------------------------------------------- governance


def test_an_agency_cannot_write_under_another_agencys_commitment(world: World) -> None:
    ledger, intruder = world.ledger, world.other_signer
    deadline = world.now() + 3600
    opened = world.opened("foreign")  # under the Roads agency's commitment
    err = refused("UnknownCommitment", ledger.write, intruder, opened)
    assert err.error_args == {"agencyId": world.other_agency_id, "commitmentId": world.commitment_id}
    signature = ledger.sign(intruder, opened, deadline)
    refused("UnknownCommitment", ledger.relay, world.relayer, opened, intruder.address, deadline, signature)
    retirement = Retirement(
        commitment_id=world.commitment_id, reason_hash=text_hash("hostile"), occurred_at=world.now()
    )
    refused("UnknownCommitment", ledger.write, intruder, retirement)
    # a same-named commitment of its own is a different commitment: the Roads one stays untouched
    ledger.write(intruder, world.commitment())
    assert ledger.commitment_state(world.other_agency_id, world.commitment_id) == (1, False)
    assert ledger.commitment_state(world.agency_id, world.commitment_id) == (1, False)


class _RawCall:
    """Lets ledger._transact send hand-made calldata (gas estimated, so a revert surfaces before sending)."""

    def __init__(self, ledger: Ledger, data: bytes) -> None:
        self.ledger, self.data = ledger, data

    def build_transaction(self, tx: dict[str, Any]) -> dict[str, Any]:
        w3 = self.ledger.w3
        tx = {**tx, "to": self.ledger.address, "data": self.data, "gasPrice": w3.eth.gas_price}
        tx["gas"] = w3.eth.estimate_gas(tx)
        return tx


def test_dirty_high_bits_in_narrow_fields_are_refused(world: World) -> None:
    """The contract hashes a case event straight from calldata. Dirty bits above a uint8 or uint64 would enter the
    on-chain hash but not the emitted (clean) values, so the log could no longer rebuild the running hash: such
    calldata must revert, directly and even when the key signed the dirty encoding itself."""
    ledger, signer, f = world.ledger, world.signer, world.ledger.contract.functions
    event = world.update("dirty", CaseAction.ACCEPTED)
    deadline = world.now() + 3600
    before = head(world)
    types = [t for _, _, t in CaseEvent.FIELDS]
    clean = abi_encode(types, list(event.abi_values()))
    wrapper_typehash = keccak(
        b"RecordCaseEvent(bytes32 agencyId,CaseEvent caseEvent,uint256 nonce,uint256 deadline)"
        + CaseEvent.encode_type().encode()
    )
    separator = domain_separator(ledger.contract)  # as the contract publishes it (ERC-5267)
    private_key = keys.PrivateKey(bytes(signer.key))

    def sign_words(words: bytes) -> bytes:
        """The signer's EIP-712 signature over a RecordCaseEvent whose case event is encoded as `words`."""
        record_hash = keccak(CaseEvent.typehash() + words)
        struct_hash = keccak(
            abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "uint256"],
                       [wrapper_typehash, world.agency_id, record_hash, 0, deadline])
        )
        signed = private_key.sign_msg_hash(keccak(b"\x19\x01" + separator + struct_hash))
        return signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v + 27])

    def calldata(call: Any, words: bytes) -> bytes:
        """`call`'s calldata with the case event (the first, static, argument) replaced by `words`."""
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        return data[:4] + words + data[4 + len(words) :]

    # the hand-made digest is the one the library signs
    assert sign_words(clean) == ledger.sign(signer, event, deadline)

    for word in (1, 2, 5):  # action, occurredAt, channel
        dirty = bytearray(clean)
        dirty[32 * word] = 0x01
        direct = calldata(f.recordCaseEvent(event.abi_values()), bytes(dirty))
        err = refused("UnknownRevert", ledger._transact, signer, _RawCall(ledger, direct))
        assert err.raw in ("", "0x")  # the ABI decoder's bare revert

        # the key signs the dirty encoding: the signature is good, the event still is not
        signature = sign_words(bytes(dirty))
        call = f.recordCaseEventBySig(event.abi_values(), signer.address, deadline, signature)
        relayed = calldata(call, bytes(dirty))
        refused("UnknownRevert", ledger._transact, world.relayer, _RawCall(ledger, relayed))
    assert head(world) == before and ledger.nonce(signer.address) == 0

    # control: the same hand-made path with the clean words goes through, and the log rebuilds the running hash
    relayed = calldata(f.recordCaseEventBySig(event.abi_values(), signer.address, deadline, sign_words(clean)), clean)
    ledger._transact(world.relayer, _RawCall(ledger, relayed))
    assert ledger.entry_count() == before[0] + 1
    assert running_hash(e.entry_hash for e in ledger.entries()) == ledger.running_hash()


def test_outsiders_cannot_grant_roles_or_govern(world: World) -> None:
    ledger, f = world.ledger, world.ledger.contract.functions
    governor, admin = f.GOVERNOR_ROLE().call(), f.DEFAULT_ADMIN_ROLE().call()
    stranger = world.relayer  # a funded account with no role
    before = head(world)
    unauthorized = "AccessControlUnauthorizedAccount"
    for outsider in (world.signer, stranger):
        err = refused(unauthorized, ledger._transact, outsider, f.grantRole(governor, outsider.address))
        assert same_address(err.error_args["account"], outsider.address)
        assert err.error_args["neededRole"] == admin
        refused(unauthorized, ledger._transact, outsider, f.revokeRole(governor, world.governance.address))
        refused(unauthorized, ledger._transact, outsider, f.beginDefaultAdminTransfer(outsider.address))
        refused(
            "AccessControlEnforcedDefaultAdminRules", ledger._transact, outsider, f.grantRole(admin, outsider.address)
        )

        rogue = AgencyRegistration(
            agency_id=short_code("ROGUE"), jurisdiction=short_code("CN-SH"), name_zh="假", name_en="Rogue"
        )
        err = refused(unauthorized, ledger.register_agency, outsider, rogue)
        assert same_address(err.error_args["account"], outsider.address)
        assert err.error_args["neededRole"] == governor
        refused(unauthorized, ledger.authorize_signer, outsider, world.agency_id, outsider.address)
        refused(unauthorized, ledger.revoke_signer, outsider, world.other_signer.address)

    # governance itself writes no agency records
    err = refused("UnauthorizedSigner", ledger.write, world.governance, world.update("gov", CaseAction.ACCEPTED))
    assert same_address(err.error_args["signer"], world.governance.address)
    assert head(world) == before
    assert not f.hasRole(governor, world.signer.address).call()
    assert not f.hasRole(governor, stranger.address).call()


def test_admin_handover_is_two_step_only(world: World) -> None:
    ledger, f, chain = world.ledger, world.ledger.contract.functions, world.chain
    governor, admin = f.GOVERNOR_ROLE().call(), f.DEFAULT_ADMIN_ROLE().call()
    old = world.governance
    new = world.relayer
    third = world.other_signer

    refused("AccessControlEnforcedDefaultAdminRules", ledger._transact, old, f.grantRole(admin, new.address))
    refused("AccessControlEnforcedDefaultAdminRules", ledger._transact, old, f.revokeRole(admin, old.address))
    assert f.defaultAdmin().call() == old.address

    ledger._transact(old, f.beginDefaultAdminTransfer(new.address))
    pending, schedule = f.pendingDefaultAdmin().call()
    assert pending == new.address
    wait_until_after(chain, schedule)

    for intruder in (third, old):
        err = refused("AccessControlInvalidDefaultAdmin", ledger._transact, intruder, f.acceptDefaultAdminTransfer())
        assert same_address(err.error_args["defaultAdmin"], intruder.address)
    assert f.defaultAdmin().call() == old.address

    ledger._transact(new, f.acceptDefaultAdminTransfer())
    assert f.defaultAdmin().call() == new.address
    assert f.hasRole(admin, new.address).call() and not f.hasRole(admin, old.address).call()
    # the old admin can no longer hand out roles; the new one can
    err = refused("AccessControlUnauthorizedAccount", ledger._transact, old, f.grantRole(governor, third.address))
    assert same_address(err.error_args["account"], old.address)
    ledger._transact(new, f.grantRole(governor, third.address))
    assert f.hasRole(governor, third.address).call()


# ---------------------------------------------------------------------------------------------------- encodings


def _recorded_hashes_agree(world: World, records: list[Record], start: int) -> None:
    """The entries from `start` hold `records`, and the contract's running hash is Python's over all entries."""
    entries = world.ledger.entries()
    assert [e.seq for e in entries] == list(range(world.ledger.entry_count()))
    assert [e.record.struct_hash() for e in entries[start:]] == [r.struct_hash() for r in records]
    assert running_hash(e.entry_hash for e in entries) == world.ledger.running_hash()
    f = world.ledger.filings.functions  # the module publishes the ledger's entry hash
    for e in entries[start:]:
        on_chain = f.entryHashOf(e.seq, int(e.kind), e.agency_id, e.actor, e.record_hash).call()
        assert on_chain == e.entry_hash


def _encode_values(record: Record) -> bytes:
    """A naive encoding: abi.encode of the field values, without the type hash."""
    return abi_encode([t for _, _, t in record.FIELDS], list(record.abi_values()))


def _packed(record: Record) -> bytes:
    """A naive encoding: abi.encodePacked of the field values, without the type hash."""
    return encode_packed([t for _, _, t in record.FIELDS], list(record.abi_values()))


def test_case_event_and_commitment_with_equal_packed_encodings_hash_apart(world: World) -> None:
    """An Opened case and a commitment, both valid, whose field values pack to the very same 138 bytes."""
    now = world.now()
    parent = b"collision-commitment-0123456789A"  # the commitment the case opens under
    assert len(parent) == 32
    world.ledger.write(world.signer, world.commitment(parent))
    start = world.ledger.entry_count()

    # Commitment packed: id 32 | service 32 | names 19 | deadline 4 | unit 1 | bps 2 | validFrom 8 | terms 32 | at 8
    # CaseEvent packed:  id 32 | action 1, at 8, commitmentId[:23] | commitmentId[23:] 9 | district 32 | channel 1
    #                    | details 32
    names = parent[23:] + b"-and-more"  # 9 + 9 bytes ...
    name_zh, name_en = names.decode(), "x"  # ... + 1 byte = 19
    deadline, unit, bps, valid_from = 48, 1, 9500, now
    terms = text_hash("collision terms")
    tail = (
        name_zh[9:].encode() + name_en.encode() + deadline.to_bytes(4, "big") + bytes([unit])
        + bps.to_bytes(2, "big") + valid_from.to_bytes(8, "big") + terms + now.to_bytes(8, "big")
    )
    collider = case_id("collider")
    assert tail[32] != 0  # the channel byte
    case = CaseEvent(
        case_id=collider,
        action=CaseAction.OPENED,
        occurred_at=now,
        commitment_id=parent,
        district=tail[:32],
        channel=tail[32],
        details_hash=tail[33:65],
    )
    commitment = Commitment(
        commitment_id=collider,
        service_code=bytes([1]) + now.to_bytes(8, "big") + parent[:23],
        name_zh=name_zh,
        name_en=name_en,
        deadline=deadline,
        deadline_unit=DeadlineUnit(unit),
        target_bps=bps,
        valid_from=valid_from,
        terms_hash=terms,
        occurred_at=now,
    )
    assert len(_packed(case)) == 138 and _packed(case) == _packed(commitment)
    assert case.struct_hash() != commitment.struct_hash()
    args = (start, world.agency_id, world.signer.address)
    assert entry_hash(args[0], EntryKind.CASE_EVENT, *args[1:], case.struct_hash()) != entry_hash(
        args[0], EntryKind.COMMITMENT_PUBLISHED, *args[1:], commitment.struct_hash()
    )

    world.ledger.write(world.signer, commitment)
    world.ledger.write(world.signer, case)
    _recorded_hashes_agree(world, [commitment, case], start)


def test_retirement_correction_and_case_event_with_equal_field_words_hash_apart(world: World) -> None:
    now = world.now()
    target = 4  # the world's commitment publication
    reason = text_hash("published in error")
    commitment_id = target.to_bytes(32, "big")
    world.ledger.write(world.signer, world.commitment(commitment_id))
    start = world.ledger.entry_count()

    retirement = Retirement(commitment_id=commitment_id, reason_hash=reason, occurred_at=now)
    correction = Correction(target_seq=target, reason_hash=reason, occurred_at=now)
    # a later case event whose first three words are the retirement's, then four zero words
    update = CaseEvent(
        case_id=commitment_id, action=CaseAction.ACCEPTED, occurred_at=now
    )
    retirement_of_accepted = Retirement(
        commitment_id=commitment_id, reason_hash=int(CaseAction.ACCEPTED).to_bytes(32, "big"), occurred_at=now
    )
    assert _encode_values(retirement) == _encode_values(correction)
    assert _encode_values(update) == _encode_values(retirement_of_accepted) + b"\0" * 128
    hashes = {r.struct_hash() for r in (retirement, correction, update, retirement_of_accepted)}
    assert len(hashes) == 4

    for seq in (start, start + 1):
        same_place = (seq, world.agency_id, world.signer.address)
        assert entry_hash(same_place[0], EntryKind.COMMITMENT_RETIRED, *same_place[1:], retirement.struct_hash()) != (
            entry_hash(same_place[0], EntryKind.CORRECTION, *same_place[1:], correction.struct_hash())
        )

    records: list[Record] = [retirement, correction, update]
    for record in records:
        world.ledger.write(world.signer, record)
    _recorded_hashes_agree(world, records, start)


def test_commitment_names_split_differently_hash_apart(world: World) -> None:
    start = world.ledger.entry_count()
    ab_c = world.commitment(name_zh="ab", name_en="c")
    a_bc = world.commitment(name_zh="a", name_en="bc")
    assert _packed(ab_c) == _packed(a_bc)
    assert ab_c.struct_hash() != a_bc.struct_hash()
    empty_zh = Commitment.model_construct(**{**a_bc.__dict__, "name_zh": "", "name_en": "abc"})
    assert empty_zh.struct_hash() not in {ab_c.struct_hash(), a_bc.struct_hash()}

    world.ledger.write(world.signer, ab_c)
    world.ledger.write(world.signer, a_bc)
    _recorded_hashes_agree(world, [ab_c, a_bc], start)
    assert world.ledger.commitment_state(world.agency_id, world.commitment_id) == (3, False)


def test_holiday_lists_moved_between_fields_hash_apart(world: World) -> None:
    """A day moved from holidays to workdays (or split differently across them) changes the hash.

    A valid calendar can never hold the same day in either list (holidays are weekdays, workdays weekend days), so
    the moved calendars are built without validation to check the hashing, and the contract is shown refusing them.
    """
    now = world.now()
    wed, thu = day_number(date(2025, 1, 1)), day_number(date(2025, 5, 1))
    sat, sun = day_number(date(2025, 2, 8)), day_number(date(2025, 1, 26))

    def raw(holidays: tuple[int, ...], workdays: tuple[int, ...]) -> HolidayCalendar:
        return HolidayCalendar.model_construct(year=2025, holidays=holidays, workdays=workdays, occurred_at=now)

    moved = [raw((wed,), ()), raw((), (wed,)), raw((wed, thu), ()), raw((wed,), (thu,)), raw((), (wed, thu))]
    assert len({c.struct_hash() for c in moved}) == len(moved)
    assert len({_packed(c) for c in moved[:2]}) == 1 and len({_packed(c) for c in moved[2:]}) == 1
    with pytest.raises(ValidationError):
        HolidayCalendar(year=2025, workdays=(wed,), occurred_at=now)
    err = refused("InvalidHolidayCalendar", world.ledger.write, world.signer, moved[1])
    assert err.error_args == {"year": 2025, "field": "workdays"}

    # valid calendars with the lists in different places, recorded: the contract hashes them as Python does
    start = world.ledger.entry_count()
    valid = [
        HolidayCalendar(year=2025, holidays=(wed,), occurred_at=now),
        HolidayCalendar(year=2025, workdays=(sun,), occurred_at=now),
        HolidayCalendar(year=2025, holidays=(wed,), workdays=(sun,), occurred_at=now),
        HolidayCalendar(year=2025, holidays=(wed, thu), workdays=(sun, sat), occurred_at=now),
        HolidayCalendar(year=2025, occurred_at=now),
    ]
    assert len({c.struct_hash() for c in valid}) == len(valid)
    for calendar in valid:
        world.ledger.write(world.signer, calendar)
    _recorded_hashes_agree(world, valid, start)


def test_entry_hash_binds_seq_kind_agency_and_actor(world: World) -> None:
    f = world.ledger.filings.functions  # the module publishes the ledger's entry hash
    record_hash = world.opened("bound").struct_hash()
    base = dict(
        seq=7, kind=EntryKind.CASE_EVENT, agency_id=world.agency_id, actor=world.signer.address, record_hash=record_hash
    )
    variants = [
        base,
        {**base, "seq": 8},
        {**base, "seq": 2**64},
        {**base, "kind": EntryKind.CORRECTION},
        {**base, "kind": EntryKind.COMMITMENT_RETIRED},
        {**base, "agency_id": world.other_agency_id},
        {**base, "actor": world.other_signer.address},
        {**base, "record_hash": world.opened("bound2").struct_hash()},
    ]
    hashes = []
    for v in variants:
        python = entry_hash(v["seq"], v["kind"], v["agency_id"], v["actor"], v["record_hash"])
        on_chain = f.entryHashOf(v["seq"], int(v["kind"]), v["agency_id"], v["actor"], v["record_hash"]).call()
        assert on_chain == python
        hashes.append(python)
    assert len(set(hashes)) == len(variants)
    assert record_hash not in hashes  # the entry type hash keeps entry hashes apart from struct hashes
