"""Citizens' filings on chain (``contracts/CivicFilings.sol``, the module ``CivicLedger``'s constructor creates).

A citizen files a request signed with a receipt key of their own; anyone relays it, and its block starts the case's
clock. The agency accepts it (the case opens under an id derived from the filing, bound to the filer's key) or rejects
it with a reason. The holder of an agency-issued receipt can claim it once, moving it to a key of their own. A hostile
agency can neither take the filer's key, nor answer another agency's filing, nor change an answer; nobody but the
module appends its entries. The module also publishes the ledger's constants and pure helpers.

Runs on both backends against the shared world of ``tests/conftest.py`` (rolled back after each test); the helpers are
``tests/support/filings.py``. Receipt keys derive from codes as the citizen's page derives them (``ledger.receipts``).
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from ledger import receipts
from ledger.batches import MAX_ENTRIES, build_batch
from ledger.cases import DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW
from ledger.chain.contract import MODULE_NAME, FilingState, Ledger, citizen_typed_data
from ledger.encoding import ZERO32, entry_hash, keccak, module_address, running_hash
from ledger.errors import ChainMismatch
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS
from ledger.records import (
    RECEIPT_CASE_FLAG,
    CaseAction,
    Channel,
    EntryKind,
    Filing,
    FilingAnswer,
    FilingDecision,
    FilingStatus,
    Receipt,
    ReceiptCaseStatus,
    ReceiptClaim,
    Retirement,
    filed_case_id,
    short_code,
    text_hash,
)
from tests.support.filings import (
    CONTENT,
    DOMAIN_TYPEHASH,
    DUPLICATE_OF,
    REASON,
    accept,
    advance,
    answer,
    block_time,
    case_of,
    claim,
    domain_separator,
    file,
    filing,
    submit,
)
from tests.support.nodes import set_code
from tests.support.receipts import CODE, close, dispute, open_with_receipt, rate, receipt_case_id, state
from tests.support.reverts import refused
from tests.support.world import World, head

DAY = 86_400
REJECTIONS = [FilingDecision.DUPLICATE, FilingDecision.OUT_OF_SCOPE, FilingDecision.SPAM]


def same_address(a: str, b: str) -> bool:
    return to_checksum_address(a) == to_checksum_address(b)


def hashes_agree(world: World) -> None:
    """The running hash the contract keeps is Python's fold over every entry rebuilt from the logs of the ledger
    and its module."""
    assert running_hash(e.entry_hash for e in world.ledger.entries()) == world.ledger.running_hash()


def new_key() -> tuple[str, bytes]:
    """A fresh receipt code's (address, private key), as a citizen's device makes one."""
    code = receipts.new_code()
    return receipts.address(code), receipts.private_key(code)


# --------------------------------------------------------------------------------------------------------- filing


def test_a_filing_is_recorded_by_any_relayer(world: World) -> None:
    code = receipts.new_code()
    filer = receipts.address(code)
    stranger = world.chain.new_account()  # any funded account relays a filing; it signs nothing of it
    seq = world.ledger.entry_count()
    tx = submit(world, filing(world, code), receipts.private_key(code), stranger)

    assert world.ledger.entry_count() == seq + 1
    entry = world.ledger.entries()[-1]
    assert (entry.seq, entry.kind, entry.agency_id, entry.actor) == (
        seq, EntryKind.FILING_RECORDED, world.agency_id, filer
    )
    assert entry.record == Filing(
        agency_id=world.agency_id, commitment_id=world.commitment_id, district=short_code("PUDONG"),
        channel=Channel.APP, content_hash=CONTENT, receipt=filer,
    )
    assert world.ledger.filing_state(seq) == FilingState(world.agency_id, filer, block_time(world, tx),
                                                         FilingStatus.FILED)
    # the key's one use is this filing: where a citizen's page finds its case from the key alone
    assert world.ledger.receipt_issuance(filer) == (seq, tx["blockNumber"])
    [event] = world.ledger.filings.events.FilingRecorded().process_receipt(tx, errors=DISCARD)
    assert event["args"]["relayer"] == stranger.address and event["args"]["seq"] == seq
    hashes_agree(world)

    # the world's relayer relays the next one; each filing is its own, numbered by its entry
    second = file(world, receipts.new_code())
    assert second == seq + 1 and world.ledger.filing_state(second).status is FilingStatus.FILED
    hashes_agree(world)


def test_a_filing_must_carry_the_signature_of_the_key_it_names(world: World) -> None:
    code = receipts.new_code()
    filer, key = receipts.address(code), receipts.private_key(code)
    record = filing(world, code)
    signature = world.ledger.sign_filing(key, record)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high_s_twin = r + (receipts.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    twin = Ledger.deploy(world.chain, world.governance)  # another deployment: another module, another domain
    before = head(world)
    forged = {
        "not a signature": b"\x01" * 65,
        "too short": signature[:64],
        "another key": world.ledger.sign_filing(new_key()[1], record),
        "the agency's key": world.ledger.sign_filing(bytes(world.signer.key), record),
        "signed in the ledger's domain": bytes(Account.sign_typed_data(
            key, full_message=citizen_typed_data(world.ledger.domain(), record)
        ).signature),
        "another deployment's module": twin.sign_filing(key, record),
        "the high-s twin": high_s_twin,
    }
    for what, bad in forged.items():
        err = refused("InvalidKeySignature", world.ledger.submit_filing, world.relayer, record, bad)
        assert same_address(err.error_args["key"], filer), what
    # the genuine signature does not carry over to another district, channel, content or key
    for tampered in (record.model_copy(update={"district": short_code("MINHANG")}),
                     record.model_copy(update={"channel": Channel.WEB}),
                     record.model_copy(update={"content_hash": text_hash("salt:something else")}),
                     record.model_copy(update={"receipt": new_key()[0]})):
        refused("InvalidKeySignature", world.ledger.submit_filing, world.relayer, tampered, signature)
    assert head(world) == before and world.ledger.receipt_issuance(filer) is None
    world.ledger.submit_filing(world.relayer, record, signature)
    assert world.ledger.entries()[-1].actor == filer


def test_a_filing_to_an_unknown_agency_is_refused(world: World) -> None:
    code = receipts.new_code()
    nope = short_code("SH-NOPE")
    err = refused("UnknownAgency", submit, world, filing(world, code, agency_id=nope), receipts.private_key(code))
    assert err.error_args["agencyId"] == nope


def test_a_filing_under_an_unknown_commitment_is_refused(world: World) -> None:
    code = receipts.new_code()
    key = receipts.private_key(code)
    unknown = short_code("NO-SUCH-SERVICE")
    err = refused("UnknownCommitment", submit, world, filing(world, code, commitment_id=unknown), key)
    assert err.error_args == {"agencyId": world.agency_id, "commitmentId": unknown}
    # commitments are the agency's own: the water agency published none, so the roads commitment is unknown to it
    refused("UnknownCommitment", submit, world, filing(world, code, agency_id=world.other_agency_id), key)
    file(world, code)  # the same key files under the live commitment


def test_a_filing_under_a_retired_commitment_is_refused(world: World) -> None:
    retired = short_code("POTHOLE-72H")
    world.ledger.write(world.signer, world.commitment(retired))
    world.ledger.write(world.signer, Retirement(commitment_id=retired, reason_hash=ZERO32, occurred_at=world.now()))
    code = receipts.new_code()
    err = refused("CommitmentIsRetired", submit, world, filing(world, code, commitment_id=retired),
                  receipts.private_key(code))
    assert err.error_args == {"agencyId": world.agency_id, "commitmentId": retired}


@pytest.mark.parametrize(
    ("field", "change"),
    [("district", {"district": ZERO32}), ("channel", {"channel": 0}), ("contentHash", {"content_hash": ZERO32})],
)
def test_a_filing_without_district_channel_or_content_is_refused(
    world: World, field: str, change: dict[str, object]
) -> None:
    code = receipts.new_code()
    record = filing(world, code, **change)
    before = head(world)
    err = refused("InvalidFiling", submit, world, record, receipts.private_key(code))
    assert same_address(err.error_args["receipt"], receipts.address(code)) and err.error_args["field"] == field
    assert head(world) == before


def test_a_filing_by_a_key_that_filed_before_is_refused(world: World) -> None:
    code = receipts.new_code()
    seq = file(world, code)
    again = filing(world, code, content_hash=text_hash("salt:another request"))
    err = refused("ReceiptKeyAlreadyUsed", submit, world, again, receipts.private_key(code))
    assert same_address(err.error_args["receipt"], receipts.address(code)) and err.error_args["seq"] == seq


def test_a_replayed_filing_is_refused(world: World) -> None:
    code = receipts.new_code()
    record = filing(world, code)
    signature = world.ledger.sign_filing(receipts.private_key(code), record)
    seq = world.ledger.entry_count()
    world.ledger.submit_filing(world.relayer, record, signature)
    for relayer in (world.relayer, world.chain.new_account()):
        err = refused("ReceiptKeyAlreadyUsed", world.ledger.submit_filing, relayer, record, signature)
        assert err.error_args["seq"] == seq
    assert world.ledger.entry_count() == seq + 1


def test_a_filing_by_a_key_an_agency_issued_is_refused(world: World) -> None:
    code = receipts.new_code()
    open_with_receipt(world, "issued-first", code)
    issued = world.ledger.receipt_issuance(receipts.address(code))
    assert issued is not None
    err = refused("ReceiptKeyAlreadyUsed", submit, world, filing(world, code), receipts.private_key(code))
    assert err.error_args["seq"] == issued[0]


def test_a_filing_by_a_key_a_claim_took_is_refused(world: World) -> None:
    case_id = open_with_receipt(world, "claimed-first")
    code = receipts.new_code()
    claim(world, case_id, receipts.address(code), receipts.private_key(CODE), receipt_key=receipts.private_key(code))
    claimed = world.ledger.entry_count() - 1
    err = refused("ReceiptKeyAlreadyUsed", submit, world, filing(world, code), receipts.private_key(code))
    assert err.error_args["seq"] == claimed


def test_a_filing_names_a_plain_key_pair(world: World) -> None:
    """A receipt key is the citizen's own key pair: an address with code is a contract's, and zero is no key. The
    key is checked before the signature, so any signature will do here."""
    any_key = new_key()[1]
    for contract in (world.ledger.filings_address, world.ledger.address):
        record = filing(world, receipts.new_code(), receipt=contract)
        err = refused("ReceiptKeyIsContract", submit, world, record, any_key)
        assert same_address(err.error_args["receipt"], contract) and err.error_args["caseId"] == ZERO32
    refused("InvalidReceipt", submit, world, filing(world, receipts.new_code(), receipt="0x" + "00" * 20), any_key)


# ---------------------------------------------------------------------------------------------------------- clock


def test_the_filings_block_time_is_its_clock_whenever_the_agency_answers(world: World) -> None:
    code = receipts.new_code()
    seq = world.ledger.entry_count()
    filed_at = block_time(world, submit(world, filing(world, code), receipts.private_key(code)))
    assert world.ledger.filing_state(seq).filed_at == filed_at
    advance(world, 3 * DAY)
    answered_at = block_time(world, answer(world, seq, FilingDecision.ACCEPTED))
    assert answered_at >= filed_at + 3 * DAY
    state_now = world.ledger.filing_state(seq)
    assert state_now.filed_at == filed_at and state_now.status is FilingStatus.ACCEPTED
    # the log agrees: the filing's entry sits in the block of its time, the answer days later
    entries = {e.seq: e for e in world.ledger.entries()}
    blocks = world.chain.w3.eth
    assert blocks.get_block(entries[seq].block_number)["timestamp"] == filed_at
    assert blocks.get_block(entries[seq + 1].block_number)["timestamp"] == answered_at


# --------------------------------------------------------------------------------------------------------- accept


def test_an_accepted_filing_opens_its_case_bound_to_the_filers_key(world: World) -> None:
    code = receipts.new_code()
    filer = receipts.address(code)
    seq = file(world, code)
    case_id = case_of(world, seq)
    assert case_id[0] & RECEIPT_CASE_FLAG  # a receipt case's id
    assert world.ledger.receipt_case(world.agency_id, case_id).status == ReceiptCaseStatus.NONE
    assert not world.ledger.citizen_held(world.agency_id, case_id)

    note = text_hash("salt:crew sent")  # a reason is optional for an acceptance
    tx = answer(world, seq, FilingDecision.ACCEPTED, reason_hash=note)
    entry = world.ledger.entries()[-1]
    assert (entry.seq, entry.kind, entry.agency_id, entry.actor) == (
        seq + 1, EntryKind.FILING_ANSWERED, world.agency_id, world.signer.address
    )
    assert entry.record == FilingAnswer(filing_seq=seq, decision=FilingDecision.ACCEPTED, reason_hash=note)
    [event] = world.ledger.filings.events.FilingAnswered().process_receipt(tx, errors=DISCARD)
    assert event["args"]["caseId"] == case_id and event["args"]["filingSeq"] == seq

    tracked = world.ledger.receipt_case(world.agency_id, case_id)
    assert tracked.receipt == filer and tracked.status is ReceiptCaseStatus.OPEN
    assert (tracked.closures, tracked.rated, tracked.disputed) == (0, False, False)
    assert world.ledger.citizen_held(world.agency_id, case_id)
    assert world.ledger.filing_state(seq).status is FilingStatus.ACCEPTED
    assert world.ledger.receipt_issuance(filer) == (seq + 1, tx["blockNumber"])
    # the case is the asked agency's: the other agency has no case of that id
    assert world.ledger.receipt_case(world.other_agency_id, case_id).status == ReceiptCaseStatus.NONE
    hashes_agree(world)


def test_the_filer_rates_the_accepted_case_once_the_agency_fulfils_it(world: World) -> None:
    code = receipts.new_code()
    key = receipts.private_key(code)
    case_id = accept(world, file(world, code))
    err = refused("InvalidReceiptCaseStatus", rate, world, case_id, 5, key)
    assert err.error_args["status"] == ReceiptCaseStatus.OPEN
    close(world, case_id)  # an ordinary Fulfilled case event on the case the acceptance opened
    assert world.ledger.receipt_case(world.agency_id, case_id).status is ReceiptCaseStatus.FULFILLED
    # the agency's own key cannot rate the case it fulfilled, nor can any key but the filer's
    refused("InvalidReceiptSignature", rate, world, case_id, 5, bytes(world.signer.key))
    refused("InvalidReceiptSignature", rate, world, case_id, 5, new_key()[1])
    rate(world, case_id, 2, key)
    entry = world.ledger.entries()[-1]
    assert entry.kind is EntryKind.CASE_RATED and entry.actor == receipts.address(code)
    assert world.ledger.receipt_case(world.agency_id, case_id).rated
    refused("AlreadyRated", rate, world, case_id, 5, key)
    hashes_agree(world)


# --------------------------------------------------------------------------------------------------------- reject


@pytest.mark.parametrize("decision", REJECTIONS)
def test_a_rejected_filing_opens_no_case(world: World, decision: FilingDecision) -> None:
    code = receipts.new_code()
    filer = receipts.address(code)
    seq = file(world, code)
    tx = answer(world, seq, decision)
    entry = world.ledger.entries()[-1]
    assert entry.kind is EntryKind.FILING_ANSWERED and entry.actor == world.signer.address
    duplicate_of = DUPLICATE_OF if decision is FilingDecision.DUPLICATE else ZERO32
    assert entry.record == FilingAnswer(filing_seq=seq, decision=decision, duplicate_of=duplicate_of,
                                        reason_hash=REASON)
    [event] = world.ledger.filings.events.FilingAnswered().process_receipt(tx, errors=DISCARD)
    assert event["args"]["caseId"] == ZERO32 and event["args"]["decision"] == decision

    assert world.ledger.filing_state(seq).status is FilingStatus.REJECTED
    case_id = case_of(world, seq)
    assert world.ledger.receipt_case(world.agency_id, case_id).status == ReceiptCaseStatus.NONE
    assert not world.ledger.citizen_held(world.agency_id, case_id)
    assert world.ledger.receipt_issuance(filer) == (seq, world.ledger.entries()[-2].block_number)
    refused("CaseHasNoReceipt", rate, world, case_id, 3, receipts.private_key(code))
    hashes_agree(world)


def test_a_rejection_needs_a_reason_and_only_a_duplicate_names_a_case(world: World) -> None:
    seq = file(world, receipts.new_code())
    malformed = [
        (FilingDecision.OUT_OF_SCOPE, {"reason_hash": ZERO32}, "reasonHash"),
        (FilingDecision.SPAM, {"reason_hash": ZERO32}, "reasonHash"),
        (FilingDecision.DUPLICATE, {"reason_hash": ZERO32}, "reasonHash"),
        (FilingDecision.DUPLICATE, {"duplicate_of": ZERO32}, "duplicateOf"),
        (FilingDecision.SPAM, {"duplicate_of": DUPLICATE_OF}, "duplicateOf"),
        (FilingDecision.ACCEPTED, {"duplicate_of": DUPLICATE_OF}, "duplicateOf"),
    ]
    before = head(world)
    for decision, change, field in malformed:
        err = refused("InvalidFilingAnswer", lambda d=decision, c=change: answer(world, seq, d, **c))
        assert err.error_args == {"filingSeq": seq, "field": field}, (decision, change)
    assert head(world) == before and world.ledger.filing_state(seq).status is FilingStatus.FILED


def test_a_decision_outside_accept_and_the_three_rejections_is_refused(world: World) -> None:
    seq = file(world, receipts.new_code())
    for decision in (0, len(FilingDecision) + 1, 255):
        err = refused("InvalidFilingAnswer", answer, world, seq, decision)
        assert err.error_args == {"filingSeq": seq, "field": "decision"}
    assert world.ledger.filing_state(seq).status is FilingStatus.FILED


# ------------------------------------------------------------------------------------------------ hostile agency


def test_only_the_asked_agencys_keys_answer_a_filing(world: World) -> None:
    seq = file(world, receipts.new_code())
    before = head(world)
    for outsider in (world.other_signer, world.governance, world.relayer):
        err = refused("UnauthorizedSigner", answer, world, seq, FilingDecision.SPAM, outsider)
        assert same_address(err.error_args["signer"], outsider.address)
    assert head(world) == before and world.ledger.filing_state(seq).status is FilingStatus.FILED


def test_a_revoked_signer_cannot_answer_a_filing(world: World) -> None:
    seq = file(world, receipts.new_code())
    world.ledger.revoke_signer(world.governance, world.signer.address)
    refused("UnauthorizedSigner", answer, world, seq, FilingDecision.ACCEPTED)
    # the filing waits for the agency's next key
    successor = world.chain.new_account()
    world.ledger.authorize_signer(world.governance, world.agency_id, successor.address)
    answer(world, seq, FilingDecision.ACCEPTED, successor)
    assert world.ledger.entries()[-1].actor == successor.address


def test_a_filing_is_answered_once(world: World) -> None:
    accepted = file(world, receipts.new_code())
    accept(world, accepted)
    for decision in (FilingDecision.ACCEPTED, *REJECTIONS):
        err = refused("FilingAlreadyAnswered", answer, world, accepted, decision)
        assert err.error_args == {"filingSeq": accepted, "status": FilingStatus.ACCEPTED}
    rejected = file(world, receipts.new_code())
    answer(world, rejected, FilingDecision.SPAM)
    for decision in (FilingDecision.ACCEPTED, FilingDecision.OUT_OF_SCOPE):
        err = refused("FilingAlreadyAnswered", answer, world, rejected, decision)
        assert err.error_args == {"filingSeq": rejected, "status": FilingStatus.REJECTED}
    assert world.ledger.receipt_case(world.agency_id, filed_case_id(rejected)).status == ReceiptCaseStatus.NONE


def test_only_a_filing_can_be_answered(world: World) -> None:
    seq = file(world, receipts.new_code())
    # entries that are not filings (the agency's registration, the commitment), the next seq, the largest
    for not_a_filing in (0, 4, seq + 1, 2**64 - 1):
        err = refused("UnknownFiling", answer, world, not_a_filing, FilingDecision.ACCEPTED)
        assert err.error_args == {"filingSeq": not_a_filing}


def test_the_agency_cannot_take_the_filers_key_for_a_case_of_its_own(world: World) -> None:
    code = receipts.new_code()
    filer = receipts.address(code)
    seq = file(world, code)
    own_case = receipt_case_id("hijack")
    hijack = Receipt(case_id=own_case, receipt=filer, occurred_at=world.now())
    err = refused("ReceiptKeyAlreadyUsed", world.ledger.write, world.signer, hijack)
    assert err.error_args["seq"] == seq
    refused("ReceiptKeyAlreadyUsed", world.ledger.write, world.other_signer, hijack)
    case_id = accept(world, seq)
    err = refused("ReceiptKeyAlreadyUsed", world.ledger.write, world.signer, hijack)
    assert err.error_args["seq"] == seq + 1
    # nor give the accepted case another key
    other = Receipt(case_id=case_id, receipt=new_key()[0], occurred_at=world.now())
    refused("CaseAlreadyHasReceipt", world.ledger.write, world.signer, other)
    assert world.ledger.receipt_case(world.agency_id, case_id).receipt == filer
    assert world.ledger.receipt_case(world.agency_id, own_case).status == ReceiptCaseStatus.NONE


def test_an_agency_that_took_the_filed_case_id_can_only_reject_the_filing(world: World) -> None:
    """The case id of an accepted filing is derived from its seq, so an agency can take it beforehand for a receipt
    case of its own (with a key it holds). It then cannot accept the filing: it can only reject it, which counts."""
    seq = file(world, receipts.new_code())
    case_id = case_of(world, seq)
    agency_key = new_key()[0]
    world.ledger.write(world.signer, Receipt(case_id=case_id, receipt=agency_key, occurred_at=world.now()))
    err = refused("CaseAlreadyHasReceipt", answer, world, seq, FilingDecision.ACCEPTED)
    assert err.error_args == {"agencyId": world.agency_id, "caseId": case_id}
    assert world.ledger.filing_state(seq).status is FilingStatus.FILED
    answer(world, seq, FilingDecision.OUT_OF_SCOPE)
    assert world.ledger.filing_state(seq).status is FilingStatus.REJECTED
    assert world.ledger.receipt_case(world.agency_id, case_id).receipt == agency_key
    assert not world.ledger.citizen_held(world.agency_id, case_id)


def test_nobody_but_the_module_appends_for_it(world: World) -> None:
    """appendFromModule binds keys to cases and appends entries the module alone checks: governance, an agency key
    or anyone else calling it directly is refused, whatever the entry."""
    ledger = world.ledger
    filer, _ = new_key()
    case_id = receipt_case_id("forged")
    before = head(world)
    for kind in (EntryKind.FILING_RECORDED, EntryKind.FILING_ANSWERED, EntryKind.RECEIPT_CLAIMED):
        call = ledger.contract.functions.appendFromModule(int(kind), world.agency_id, filer, keccak(b"forged"),
                                                          case_id, filer)
        for sender in (world.governance, world.signer, world.relayer):
            err = refused("UnauthorizedSigner", ledger._transact, sender, call)
            assert same_address(err.error_args["signer"], sender.address)
    assert head(world) == before
    assert ledger.receipt_case(world.agency_id, case_id).status == ReceiptCaseStatus.NONE
    assert ledger.receipt_issuance(filer) is None


# ---------------------------------------------------------------------------------------------------------- claim


def test_an_issued_receipt_is_claimed_with_the_printed_key(world: World) -> None:
    printed = receipts.address(CODE)
    case_id = open_with_receipt(world, "printed")
    assert not world.ledger.citizen_held(world.agency_id, case_id)
    own, own_key = new_key()
    seq = world.ledger.entry_count()
    tx = claim(world, case_id, own, receipts.private_key(CODE), receipt_key=own_key)

    entry = world.ledger.entries()[-1]
    assert (entry.seq, entry.kind, entry.agency_id, entry.actor) == (
        seq, EntryKind.RECEIPT_CLAIMED, world.agency_id, printed
    )
    assert entry.record == ReceiptClaim(agency_id=world.agency_id, case_id=case_id, receipt=own)
    [event] = world.ledger.filings.events.ReceiptClaimed().process_receipt(tx, errors=DISCARD)
    assert (event["args"]["previous"], event["args"]["receipt"]) == (printed, own)
    tracked = state(world, case_id)
    assert tracked.receipt == own and tracked.status is ReceiptCaseStatus.OPEN
    assert world.ledger.citizen_held(world.agency_id, case_id)
    assert world.ledger.receipt_issuance(own) == (seq, tx["blockNumber"])
    hashes_agree(world)

    close(world, case_id)
    # the printed key (which the agency may have kept) no longer counts; the claimed one does
    refused("InvalidReceiptSignature", rate, world, case_id, 1, receipts.private_key(CODE))
    rate(world, case_id, 5, own_key)
    assert world.ledger.entries()[-1].actor == own and state(world, case_id).rated


def test_a_receipt_is_claimed_once(world: World) -> None:
    case_id = open_with_receipt(world, "twice")
    own, own_key = new_key()
    claim(world, case_id, own, receipts.private_key(CODE), receipt_key=own_key)
    for key in (receipts.private_key(CODE), own_key):
        err = refused("ReceiptAlreadyCitizenHeld", claim, world, case_id, new_key()[0], key)
        assert err.error_args == {"agencyId": world.agency_id, "caseId": case_id}
    assert state(world, case_id).receipt == own


def test_a_filed_case_cannot_be_claimed(world: World) -> None:
    code = receipts.new_code()
    case_id = accept(world, file(world, code))
    err = refused("ReceiptAlreadyCitizenHeld", claim, world, case_id, new_key()[0], receipts.private_key(code))
    assert err.error_args == {"agencyId": world.agency_id, "caseId": case_id}
    assert state(world, case_id).receipt == receipts.address(code)


def test_a_case_without_a_receipt_cannot_be_claimed(world: World) -> None:
    world.ledger.write(world.signer, world.opened("plain"))
    plain = world.opened("plain").case_id
    pending = file(world, receipts.new_code())  # filed, not answered: its case is not open yet
    rejected = file(world, receipts.new_code())
    answer(world, rejected, FilingDecision.SPAM)
    issued_elsewhere = open_with_receipt(world, "roads-only")
    cases = [
        (world.agency_id, plain),
        (world.agency_id, receipt_case_id("never-opened")),
        (world.agency_id, filed_case_id(pending)),
        (world.agency_id, filed_case_id(rejected)),
        (world.other_agency_id, issued_elsewhere),  # the id is the roads agency's case, not the water agency's
    ]
    for agency_id, case_id in cases:
        err = refused("CaseHasNoReceipt", claim, world, case_id, new_key()[0], receipts.private_key(CODE), agency_id)
        assert err.error_args == {"agencyId": agency_id, "caseId": case_id}


def test_a_claim_to_a_used_key_or_a_contract_is_refused(world: World) -> None:
    case_id = open_with_receipt(world, "to-used")
    printed_key = receipts.private_key(CODE)
    filer_code = receipts.new_code()
    filing_seq = file(world, filer_code)
    other_code = receipts.new_code()
    open_with_receipt(world, "other-issued", other_code)
    other_issued = world.ledger.receipt_issuance(receipts.address(other_code))
    assert other_issued is not None
    printed = world.ledger.receipt_issuance(receipts.address(CODE))
    assert printed is not None
    used = [
        (receipts.address(CODE), printed[0]),  # the printed key itself
        (receipts.address(filer_code), filing_seq),
        (receipts.address(other_code), other_issued[0]),
    ]
    for key_address, seq in used:
        err = refused("ReceiptKeyAlreadyUsed", claim, world, case_id, key_address, printed_key)
        assert err.error_args["seq"] == seq
    for contract in (world.ledger.filings_address, world.ledger.address):
        err = refused("ReceiptKeyIsContract", claim, world, case_id, contract, printed_key)
        assert err.error_args["caseId"] == case_id
    refused("InvalidReceipt", claim, world, case_id, "0x" + "00" * 20, printed_key)
    assert state(world, case_id).receipt == receipts.address(CODE)
    assert not world.ledger.citizen_held(world.agency_id, case_id)


def test_a_claim_must_be_signed_by_the_issued_key(world: World) -> None:
    case_id = open_with_receipt(world, "forged-claim")
    printed = receipts.address(CODE)
    own, own_key = new_key()
    for key in (own_key, bytes(world.signer.key), new_key()[1]):
        err = refused("InvalidKeySignature", claim, world, case_id, own, key, None, own_key)
        assert same_address(err.error_args["key"], printed)
    # a relayer cannot redirect a genuine claim to a key of its choosing
    record = ReceiptClaim(agency_id=world.agency_id, case_id=case_id, receipt=own)
    signature = world.ledger.sign_filing(receipts.private_key(CODE), record)
    own_signature = world.ledger.sign_filing(own_key, record)
    redirected = record.model_copy(update={"receipt": new_key()[0]})
    refused("InvalidKeySignature", world.ledger.submit_claim, world.relayer, redirected, signature, own_signature)
    assert state(world, case_id).receipt == printed
    world.ledger.submit_claim(world.relayer, record, signature, own_signature)
    assert state(world, case_id).receipt == own


def test_a_claim_must_be_signed_by_the_new_key_too(world: World) -> None:
    """Nobody moves a receipt to a key they do not hold: not to a key seen in a pending filing (which would make
    that filing fail), nor to one nobody holds."""
    case_id = open_with_receipt(world, "unheld")
    own, _ = new_key()
    for stranger in (new_key()[1], receipts.private_key(CODE), bytes(world.signer.key)):
        err = refused("InvalidKeySignature", claim, world, case_id, own, receipts.private_key(CODE), None, stranger)
        assert same_address(err.error_args["key"], own)
    assert state(world, case_id).receipt == receipts.address(CODE)
    assert not world.ledger.citizen_held(world.agency_id, case_id)


def test_a_rating_made_with_the_printed_key_before_the_claim_stays(world: World) -> None:
    """The receipt was used before its claim: the rating stands, and the claimed key cannot rate the case again."""
    case_id = open_with_receipt(world, "rated-then-claimed")
    close(world, case_id)
    rate(world, case_id, 1)  # with the printed key
    rated_at = world.ledger.entries()[-1]
    own, own_key = new_key()
    claim(world, case_id, own, receipts.private_key(CODE), receipt_key=own_key)
    tracked = state(world, case_id)
    assert tracked.rated and tracked.receipt == own
    refused("AlreadyRated", rate, world, case_id, 5, own_key)
    assert rated_at in world.ledger.entries()
    # the claimed key holds the case from now on: it, not the printed key, may still dispute the fulfilment
    refused("InvalidReceiptSignature", dispute, world, case_id)
    dispute(world, case_id, 1, own_key)
    assert state(world, case_id).disputed
    hashes_agree(world)


# ---------------------------------------------------------------------------------------------------------- views


def test_the_modules_entry_hash_is_the_one_python_folds(world: World) -> None:
    code = receipts.new_code()
    accept(world, file(world, code))
    case_id = open_with_receipt(world, "views")
    own, own_key = new_key()
    claim(world, case_id, own, receipts.private_key(CODE), receipt_key=own_key)
    answer(world, file(world, receipts.new_code()), FilingDecision.DUPLICATE)
    entries = world.ledger.entries()
    kinds = {EntryKind.FILING_RECORDED, EntryKind.FILING_ANSWERED, EntryKind.RECEIPT_CLAIMED}
    assert kinds <= {e.kind for e in entries}
    f = world.ledger.filings.functions
    for e in entries:
        on_chain = bytes(f.entryHashOf(e.seq, int(e.kind), e.agency_id, e.actor, e.record_hash).call())
        assert on_chain == e.entry_hash == entry_hash(e.seq, e.kind, e.agency_id, e.actor, e.record_hash)
    hashes_agree(world)


def test_the_modules_constants_are_the_ones_python_uses(world: World) -> None:
    f = world.ledger.filings.functions
    assert bytes(f.RECEIPT_CASE_FLAG().call()) == bytes([RECEIPT_CASE_FLAG]) + bytes(31)
    assert f.DISPUTE_WINDOW().call() == DISPUTE_WINDOW == receipts.DISPUTE_DAYS * DAY
    assert f.DISPUTE_RESPONSE_WINDOW().call() == DISPUTE_RESPONSE_WINDOW
    assert world.ledger.dispute_windows() == (DISPUTE_WINDOW, DISPUTE_RESPONSE_WINDOW)
    assert f.MAX_BATCH_ENTRIES().call() == MAX_ENTRIES
    assert f.ANSWER_WINDOW_WORKING_DAYS().call() == ANSWER_WINDOW_WORKING_DAYS
    # the ledger's views of the same name fall back to its module
    assert world.ledger.call_view("MAX_BATCH_ENTRIES") == MAX_ENTRIES


def test_the_module_verifies_entries_of_anchored_batches(world: World) -> None:
    batch = build_batch([world.opened("batched"), world.update("batched", CaseAction.ACCEPTED),
                         world.update("batched", CaseAction.FULFILLED)])
    seq = world.ledger.entry_count()
    world.ledger.anchor_batch(world.signer, batch.root, batch.count, batch.file_hash)
    f = world.ledger.filings.functions
    for index, record_hash in enumerate(batch.record_hashes):
        proof = batch.proof(index)
        assert world.ledger.verify_batch_entry(seq, index, record_hash, proof)
        assert f.verifyBatchEntry(seq, index, record_hash, proof).call()
        # not at another place, nor another record, nor in a batch that is not there
        assert not world.ledger.verify_batch_entry(seq, (index + 1) % batch.count, record_hash, proof)
        assert not world.ledger.verify_batch_entry(seq, index, keccak(record_hash), proof)
        assert not world.ledger.verify_batch_entry(seq + 1, index, record_hash, proof)
        assert not world.ledger.verify_batch_entry(0, index, record_hash, proof)


def test_the_ledger_and_its_module_name_each_other(world: World) -> None:
    ledger = world.ledger
    assert ledger.call_view("FILINGS") == ledger.filings_address == module_address(ledger.address)
    assert ledger.filings.functions.LEDGER().call() == ledger.address
    # the module signs in a domain of its own: its name, this chain, its address
    expected = keccak(
        DOMAIN_TYPEHASH + keccak(MODULE_NAME.encode()) + keccak(b"1")
        + world.chain.chain_id.to_bytes(32, "big") + bytes(12) + bytes.fromhex(ledger.filings_address[2:])
    )
    assert domain_separator(ledger.filings) == expected
    record = filing(world, CODE)
    assert encode_typed_data(full_message=citizen_typed_data(ledger.filings_domain(), record)).header == expected
    assert domain_separator(ledger.contract) != expected


def test_a_ledger_whose_module_is_not_this_packages_is_refused(world: World) -> None:
    if world.chain.embedded:
        pytest.skip("eth-tester cannot put code at an address")
    address = world.ledger.address
    Ledger(world.chain, address)  # the genuine pair is accepted
    ledger_code = world.chain.w3.eth.get_code(address)
    set_code(world.chain, world.ledger.filings_address, bytes(ledger_code))
    with pytest.raises(ChainMismatch, match="not this package's CivicFilings"):
        Ledger(world.chain, address)
    set_code(world.chain, world.ledger.filings_address, b"")
    with pytest.raises(ChainMismatch, match="no contract at"):
        Ledger(world.chain, address)
