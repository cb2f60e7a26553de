"""Citizens' filings on chain for the contract tests (``contracts/CivicFilings.sol``, the module the ledger's
constructor creates): a request signed with a receipt key made from a code (``ledger.receipts``, as the citizen's
device makes it) and relayed by the world's relayer, the agency's answer, the claim of an agency-issued receipt, a move
of the chain's clock, and the EIP-712 domain separator of the ledger or its module as the contract publishes it
(ERC-5267).

Records are built without validation (``model_construct``), as ``tests.support.receipts`` builds ratings, so that the
module's own checks are what refuse a bad field."""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3.types import RPCEndpoint, TxReceipt

from ledger import receipts
from ledger.encoding import ZERO32, keccak
from ledger.records import (
    Channel,
    Filing,
    FilingAnswer,
    FilingDecision,
    ReceiptClaim,
    filed_case_id,
    short_code,
    text_hash,
)
from tests.support.world import World

#: the hash of a request's private content (text, photos, exact place): all the chain ever holds of it
CONTENT = text_hash("salt:the streetlight at gate 3 of the park has been dark for a week")
#: the hash of an agency's published reason for a rejection
REASON = text_hash("salt:reported already, see the case it duplicates")
#: a case of the agency that a filing duplicates
DUPLICATE_OF = keccak(b"case:the earlier report")
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
#: ERC-5267's field bitmap for a domain of name, version, chainId and verifyingContract (no salt, no extensions)
DOMAIN_FIELDS = b"\x0f"


def filing(world: World, code: str, **changes: Any) -> Filing:
    """A filing to the world's agency under its commitment, made with the receipt key of `code`."""
    fields: dict[str, Any] = dict(
        agency_id=world.agency_id,
        commitment_id=world.commitment_id,
        district=short_code("PUDONG"),
        channel=Channel.APP,
        content_hash=CONTENT,
        receipt=receipts.address(code),
    )
    fields.update(changes)
    return Filing.model_construct(**fields)


def submit(world: World, record: Filing, key: bytes, relayer: LocalAccount | None = None) -> TxReceipt:
    """Sign `record` with the citizen's `key` in the module's domain and relay it (the world's relayer by default)."""
    signature = world.ledger.sign_filing(key, record)
    return world.ledger.submit_filing(relayer or world.relayer, record, signature)


def file(world: World, code: str, **changes: Any) -> int:
    """File a request signed with the key of `code`, the key it names; the filing's sequence number (its id)."""
    seq = world.ledger.entry_count()
    submit(world, filing(world, code, **changes), receipts.private_key(code))
    return seq


def answer(
    world: World, filing_seq: int, decision: int, signer: LocalAccount | None = None, **changes: Any
) -> TxReceipt:
    """The agency's answer to a filing, sent by `signer` (the world's agency key by default): a rejection gives the
    hash of its reason (:data:`REASON`), a duplicate names the case it duplicates (:data:`DUPLICATE_OF`)."""
    fields: dict[str, Any] = dict(
        filing_seq=filing_seq,
        decision=decision,
        duplicate_of=DUPLICATE_OF if decision == FilingDecision.DUPLICATE else ZERO32,
        reason_hash=ZERO32 if decision == FilingDecision.ACCEPTED else REASON,
    )
    fields.update(changes)
    return world.ledger.answer_filing(signer or world.signer, FilingAnswer.model_construct(**fields))


def accept(world: World, filing_seq: int) -> bytes:
    """The agency accepts the filing; the id of the case it opens."""
    answer(world, filing_seq, FilingDecision.ACCEPTED)
    return filed_case_id(filing_seq)


def claim(
    world: World, case_id: bytes, receipt: str, key: bytes, agency_id: bytes | None = None,
    receipt_key: bytes | None = None,
) -> TxReceipt:
    """Move the receipt of the case (of the world's agency by default) to the key at address `receipt`, signed with
    `key` (the issued key, for a claim that must go through) and with `receipt_key`, the new key's own (without it,
    some other key signs in its place: enough for a claim the module refuses before it looks at that signature)."""
    record = ReceiptClaim.model_construct(agency_id=agency_id or world.agency_id, case_id=case_id, receipt=receipt)
    ledger = world.ledger
    signature = ledger.sign_filing(key, record)
    new_key_signature = ledger.sign_filing(receipt_key or receipts.private_key(receipts.new_code()), record)
    return ledger.submit_claim(world.relayer, record, signature, new_key_signature)


def advance(world: World, seconds: int) -> None:
    """Move the chain's clock `seconds` forward and mine a block there (on either backend)."""
    chain = world.chain
    if chain.embedded:
        chain._tester.time_travel(world.now() + seconds)
    else:
        chain.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def block_time(world: World, tx: TxReceipt) -> int:
    """The time of the block that holds the transaction."""
    return int(world.chain.w3.eth.get_block(tx["blockNumber"])["timestamp"])


def domain_separator(contract: Any) -> bytes:
    """The EIP-712 domain separator of `contract` (the ledger's or its module's web3 contract), from what its
    ERC-5267 ``eip712Domain()`` publishes: the ledger has no ``DOMAIN_SEPARATOR()`` (no room left under EIP-170).
    The domain must have exactly the four fields the Python side signs with, and no salt or extensions."""
    fields, name, version, chain_id, verifying_contract, salt, extensions = contract.functions.eip712Domain().call()
    assert (bytes(fields), bytes(salt), list(extensions)) == (DOMAIN_FIELDS, ZERO32, [])
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [DOMAIN_TYPEHASH, keccak(name.encode()), keccak(version.encode()), chain_id, verifying_contract],
        )
    )


def case_of(world: World, filing_seq: int) -> bytes:
    """The id of the case the filing opens once accepted, as the module derives it (``caseIdOfFiling``); equal to
    ``ledger.records.filed_case_id``."""
    case_id = bytes(world.ledger.filings.functions.caseIdOfFiling(filing_seq).call())
    assert case_id == filed_case_id(filing_seq)
    return case_id
