// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICivicLedger} from "./ICivicLedger.sol";

/// @title Civic Ledger filings — citizens start the record, and hold the only key that judges it
/// @notice A citizen files a request with a key made on their own device; the filing is an entry of the ledger's one
/// log, so the clock starts at its block, whatever time the agency later claims. The agency answers each filing with
/// an entry: it accepts it, and the case opens bound to the filing (the case id is derived from the filing, the
/// receipt key is the filer's), or rejects it with a reason. The holder of an agency-issued (printed) receipt can
/// claim it: move it to a key of their own, signed with the printed one. Only hashes go on chain.
/// @dev Created by the ledger's constructor, so neither governance nor anyone else can replace it. Every entry it
/// makes goes through {ICivicLedger-appendFromModule}; its events carry the ledger's `seq`. It also publishes the
/// ledger's constants and pure helpers, which the ledger has no room to serve under EIP-170.
interface ICivicFilings {
    /// @notice Where a filing stands. `None` (0): no filing at that seq.
    enum FilingStatus {
        None,
        Filed, // recorded, awaiting the agency's answer
        Accepted, // the agency accepted it: its case is open
        Rejected // the agency rejected it, with a reason
    }

    /// @notice The agency's answer to a filing. `None` (0) is never valid.
    enum FilingDecision {
        None,
        Accepted, // the case opens, bound to the filing
        Duplicate, // rejected: the request duplicates case `duplicateOf` of the same agency
        OutOfScope, // rejected: not a service of this commitment or agency
        Spam // rejected: not a genuine request
    }

    /// @notice A citizen's request, signed with their receipt key (EIP-712, this module's domain). Only hashes and
    /// public codes: the text, photos, exact location and contact details stay in the service's private store.
    struct Filing {
        bytes32 agencyId; // the agency asked
        bytes32 commitmentId; // the commitment (service) the request falls under
        bytes32 district; // district code (no finer location), ASCII right-padded
        uint8 channel; // intake channel code (1 counter, 3 web, 4 app, ...), as in case events
        bytes32 contentHash; // keccak256(salt ‖ content) of the request's text and attachments, never zero
        address receipt; // the filer's receipt key: the signer, and the only key that may rate or dispute the case
    }

    /// @notice The agency's answer to a filing, recorded with its signer key.
    struct FilingAnswer {
        uint64 filingSeq; // the filing's sequence number
        uint8 decision; // a {FilingDecision}
        bytes32 duplicateOf; // for `Duplicate`, the case it duplicates; zero otherwise
        bytes32 reasonHash; // keccak256 of the published reason: required to reject, optional note to accept
    }

    /// @notice The holder of an agency-issued receipt moves it to a key of their own; signed with the issued key.
    struct ReceiptClaim {
        bytes32 agencyId; // the agency whose case it is
        bytes32 caseId; // the case id
        address receipt; // the new key: from now on the only one that may rate or dispute the case
    }

    /// @notice What the module keeps of a filing (two storage slots).
    struct FilingState {
        bytes32 agencyId; // the agency asked
        address receipt; // the filer's key
        uint40 filedAt; // block time of the filing: the case's clock starts here
        FilingStatus status; // where it stands
    }

    /// @notice A citizen filed a request.
    /// @param seq sequence number of this entry (the filing's id)
    /// @param agencyId the agency asked
    /// @param receipt the filer's receipt key (the entry's actor)
    /// @param commitmentId the commitment
    /// @param district the district code
    /// @param channel the intake channel code
    /// @param contentHash hash of the private content
    /// @param relayer the account that submitted the transaction (not signed; shows who relays filings)
    event FilingRecorded(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        address indexed receipt,
        bytes32 commitmentId,
        bytes32 district,
        uint8 channel,
        bytes32 contentHash,
        address relayer
    );

    /// @notice The agency answered a filing.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param filingSeq the filing answered
    /// @param decision a {FilingDecision}
    /// @param caseId the case opened (acceptance), or zero
    /// @param duplicateOf the case it duplicates (`Duplicate`), or zero
    /// @param reasonHash hash of the published reason or note, or zero
    /// @param signer the agency key that answered (the entry's actor)
    event FilingAnswered(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        uint256 indexed filingSeq,
        uint8 decision,
        bytes32 caseId,
        bytes32 duplicateOf,
        bytes32 reasonHash,
        address signer
    );

    /// @notice The holder of an agency-issued receipt moved it to a key of their own.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the case
    /// @param previous the agency-issued key, which signed the claim (the entry's actor) and no longer counts
    /// @param receipt the new key
    event ReceiptClaimed(
        uint256 indexed seq, bytes32 indexed agencyId, bytes32 indexed caseId, address previous, address receipt
    );

    /// @notice The filing is malformed; `field` names what is wrong.
    error InvalidFiling(address receipt, string field);
    /// @notice No filing was recorded at `filingSeq`.
    error UnknownFiling(uint256 filingSeq);
    /// @notice The filing was answered already; `status` is its answer.
    error FilingAlreadyAnswered(uint256 filingSeq, FilingStatus status);
    /// @notice The answer is malformed; `field` names what is wrong.
    error InvalidFilingAnswer(uint256 filingSeq, string field);
    /// @notice The signature is not the plain ECDSA signature of `key` over the record.
    error InvalidKeySignature(address key);
    /// @notice The case's receipt is citizen-held already (from a filing, or claimed once): nothing to claim.
    error ReceiptAlreadyCitizenHeld(bytes32 agencyId, bytes32 caseId);

    /// @notice Record a citizen's filing, signed with its receipt key; anyone may relay it (the citizen pays nothing).
    /// @dev The key must be an address without code that no receipt, filing or claim used before.
    /// @param filing the filing
    /// @param signature the receipt key's EIP-712 signature over `filing`
    /// @return seq the filing's sequence number: its public id
    // Slither (shadowing-local, low) accepted: a declaration without a body; the parameter shadows nothing it reads.
    // slither-disable-next-line shadowing-local
    function file(Filing calldata filing, bytes calldata signature) external returns (uint256 seq);

    /// @notice Answer a filing of the caller's agency: accept it (its case opens, bound to it) or reject it.
    /// @dev The case id of an accepted filing is {caseIdOfFiling}; its receipt key is the filer's. Once only.
    /// @param answer the answer
    /// @return seq the answer's sequence number
    function answerFiling(FilingAnswer calldata answer) external returns (uint256 seq);

    /// @notice Move an agency-issued receipt to a key of the holder's own, signed with the issued key and with the
    /// new one; once per case.
    /// @dev A claim shows only that its signer held the issued key: an agency that kept the printed code can claim it
    /// first (the citizen then finds it claimed). The page shows a receipt claimed, or used, before its holder came.
    /// @param claim the claim
    /// @param signature the issued key's EIP-712 signature over `claim`
    /// @param newKeySignature the new key's EIP-712 signature over `claim` (it is held by whoever claims)
    /// @return seq the claim's sequence number
    function claimReceipt(ReceiptClaim calldata claim, bytes calldata signature, bytes calldata newKeySignature)
        external
        returns (uint256 seq);

    /// @notice The ledger this module appends to (its creator).
    /// @return the ledger
    function LEDGER() external view returns (ICivicLedger);

    /// @notice What the module keeps of the filing at `filingSeq` (all zero when none).
    /// @param filingSeq a filing's sequence number
    /// @return the filing's state
    function filing(uint256 filingSeq) external view returns (FilingState memory);

    /// @notice Whether the receipt of the case is held by the citizen: bound from a filing, or claimed.
    /// @param agencyId the agency
    /// @param caseId the case id
    /// @return whether it is citizen-held (false for agency-issued receipts and for cases without one)
    function citizenHeld(bytes32 agencyId, bytes32 caseId) external view returns (bool);

    /// @notice The id of the case an accepted filing opens: `hashStruct(FiledCase(filingSeq))` with the top bit set.
    /// @param filingSeq the filing's sequence number
    /// @return the case id
    function caseIdOfFiling(uint64 filingSeq) external pure returns (bytes32);

    /// @notice Whether the case event with EIP-712 hash `recordHash` is entry number `index` of the batch anchored at
    /// `seq` in the ledger, given its Merkle proof (OpenZeppelin's MerkleProof over the standard tree's leaves).
    /// @param seq the batch's first sequence number
    /// @param index the entry's position in the batch
    /// @param recordHash the case event's EIP-712 hashStruct
    /// @param proof sibling hashes from the leaf up
    /// @return whether the proof holds
    function verifyBatchEntry(uint256 seq, uint256 index, bytes32 recordHash, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice The entry hash the ledger folds into the running hash.
    /// @dev `keccak256(abi.encode(ENTRY_TYPEHASH, seq, kind, agencyId, actor, recordHash))`, where
    /// `recordHash` is the EIP-712 `hashStruct` of the record.
    /// @param seq sequence number
    /// @param kind the {ICivicLedger-EntryKind}
    /// @param agencyId the agency the entry is attributed to
    /// @param actor the signer (agency entries), governance account (governance entries) or receipt key
    /// @param recordHash EIP-712 hashStruct of the record
    /// @return the entry hash
    function entryHashOf(uint256 seq, ICivicLedger.EntryKind kind, bytes32 agencyId, address actor, bytes32 recordHash)
        external
        pure
        returns (bytes32);

    /// @notice The bit of a case id that marks a case with a receipt: only such a case can be issued one, and only
    /// such a case's closing events cost the ledger a storage read, so cases without receipts pay nothing for it.
    /// @return the flag (the top bit of the 32-byte id)
    function RECEIPT_CASE_FLAG() external pure returns (bytes32);

    /// @notice How long after a fulfilment the receipt holder may dispute it, in seconds.
    /// @return the window
    function DISPUTE_WINDOW() external pure returns (uint256);

    /// @notice How long after a dispute the agency has to answer it (reopen, or reject with a reason), in seconds.
    /// @dev Not enforced on chain (the agency cannot be forced to write); the auditor flags late answers.
    /// @return the window
    function DISPUTE_RESPONSE_WINDOW() external pure returns (uint256);

    /// @notice The most entries one anchored batch may hold (the service's batch limit, `ledger.batches.MAX_ENTRIES`).
    /// @dev Bounds what an anchor adds to the shared entry count, so no agency can bring it near 2^64.
    /// @return the maximum
    function MAX_BATCH_ENTRIES() external pure returns (uint64);

    /// @notice How many working days (of the agency's jurisdiction) an agency has to answer a filing.
    /// @dev Not enforced on chain; the figures, the page and the auditor count filings unanswered past it as overdue.
    /// @return the window
    function ANSWER_WINDOW_WORKING_DAYS() external pure returns (uint32);
}
