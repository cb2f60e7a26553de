// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ICivicFilings} from "./interfaces/ICivicFilings.sol";
import {ICivicLedger} from "./interfaces/ICivicLedger.sol";
import {LedgerLib} from "./libraries/LedgerLib.sol";

/// @title Civic Ledger filings module
/// @notice Citizens' filings, the agencies' answers and receipt claims, appended to the ledger's one log. Created by
/// {CivicLedger}'s constructor: its creator is its ledger, for ever. No owner, no upgrade, no pause.
/// @dev Every check is made here, before the one call that appends (the ledger is fixed and calls nothing back).
contract CivicFilings is ICivicFilings, EIP712 {
    /// @inheritdoc ICivicFilings
    uint32 public constant ANSWER_WINDOW_WORKING_DAYS = 1;

    bytes32 private constant FILING_TYPEHASH = keccak256(
        "Filing(bytes32 agencyId,bytes32 commitmentId,bytes32 district,uint8 channel,bytes32 contentHash,address receipt)"
    );
    bytes32 private constant FILING_ANSWER_TYPEHASH =
        keccak256("FilingAnswer(uint64 filingSeq,uint8 decision,bytes32 duplicateOf,bytes32 reasonHash)");
    bytes32 private constant RECEIPT_CLAIM_TYPEHASH =
        keccak256("ReceiptClaim(bytes32 agencyId,bytes32 caseId,address receipt)");
    bytes32 private constant FILED_CASE_TYPEHASH = keccak256("FiledCase(uint64 filingSeq)");

    /// @inheritdoc ICivicFilings
    ICivicLedger public immutable LEDGER;

    mapping(uint256 filingSeq => FilingState state) private _filings;
    /// @dev Receipt cases whose key the citizen holds: bound from a filing, or claimed from an agency-issued key.
    mapping(bytes32 agencyId => mapping(bytes32 caseId => bool held)) private _citizenHeld;

    constructor() EIP712("CivicFilings", "1") {
        LEDGER = ICivicLedger(msg.sender);
    }

    // ---------------------------------------------------------------- writes

    /// @inheritdoc ICivicFilings
    function file(Filing calldata f, bytes calldata signature) external returns (uint256 seq) {
        if (f.district == bytes32(0)) revert InvalidFiling(f.receipt, "district");
        if (f.channel == 0) revert InvalidFiling(f.receipt, "channel");
        if (f.contentHash == bytes32(0)) revert InvalidFiling(f.receipt, "contentHash");
        // Slither (unused-return, medium) accepted: only whether the agency is registered matters to a filing.
        // slither-disable-next-line unused-return
        (bool registered,,) = LEDGER.agency(f.agencyId);
        if (!registered) revert ICivicLedger.UnknownAgency(f.agencyId);
        (uint32 version, bool retired) = LEDGER.commitmentState(f.agencyId, f.commitmentId);
        if (version == 0) revert ICivicLedger.UnknownCommitment(f.agencyId, f.commitmentId);
        if (retired) revert ICivicLedger.CommitmentIsRetired(f.agencyId, f.commitmentId);
        _requireFreshKey(bytes32(0), f.receipt);
        bytes32 recordHash = keccak256(
            abi.encode(FILING_TYPEHASH, f.agencyId, f.commitmentId, f.district, f.channel, f.contentHash, f.receipt)
        );
        _requireKeySignature(f.receipt, recordHash, signature);
        seq = LEDGER.appendFromModule(
            ICivicLedger.EntryKind.FilingRecorded, f.agencyId, f.receipt, recordHash, bytes32(0), f.receipt
        );
        // Slither (reentrancy-benign, reentrancy-events, low) accepted: the call above is to the immutable ledger,
        // which calls nothing; the filing's state is keyed by the seq it returns.
        // slither-disable-next-line reentrancy-benign
        _filings[seq] = FilingState({
            agencyId: f.agencyId,
            receipt: f.receipt,
            filedAt: uint40(block.timestamp),
            status: FilingStatus.Filed
        });
        // slither-disable-next-line reentrancy-events
        emit FilingRecorded({
            seq: seq,
            agencyId: f.agencyId,
            receipt: f.receipt,
            commitmentId: f.commitmentId,
            district: f.district,
            channel: f.channel,
            contentHash: f.contentHash,
            relayer: msg.sender
        });
    }

    /// @inheritdoc ICivicFilings
    function answerFiling(FilingAnswer calldata a) external returns (uint256 seq) {
        FilingState storage state = _filings[a.filingSeq];
        bytes32 agencyId = state.agencyId;
        if (agencyId == bytes32(0)) revert UnknownFiling(a.filingSeq);
        if (LEDGER.agencyOf(msg.sender) != agencyId) revert ICivicLedger.UnauthorizedSigner(msg.sender);
        if (state.status != FilingStatus.Filed) revert FilingAlreadyAnswered(a.filingSeq, state.status);
        uint8 decision = a.decision;
        if (decision == uint8(FilingDecision.None) || decision > uint8(FilingDecision.Spam)) {
            revert InvalidFilingAnswer(a.filingSeq, "decision");
        }
        if ((decision == uint8(FilingDecision.Duplicate)) != (a.duplicateOf != bytes32(0))) {
            revert InvalidFilingAnswer(a.filingSeq, "duplicateOf");
        }
        if (decision != uint8(FilingDecision.Accepted) && a.reasonHash == bytes32(0)) {
            revert InvalidFilingAnswer(a.filingSeq, "reasonHash");
        }
        bytes32 recordHash =
            keccak256(abi.encode(FILING_ANSWER_TYPEHASH, a.filingSeq, a.decision, a.duplicateOf, a.reasonHash));
        // Zero unless the filing is accepted: a rejection opens no case and binds no key.
        bytes32 caseId = bytes32(0);
        address receipt = address(0);
        if (decision == uint8(FilingDecision.Accepted)) {
            caseId = caseIdOfFiling(a.filingSeq);
            // Only an agency that used the derived id for a receipt case of its own would find it taken: it can then
            // only reject the filing, which is counted. Any other use of the id is the auditor's finding.
            if (LEDGER.receiptCase(agencyId, caseId).status != ICivicLedger.ReceiptCaseStatus.None) {
                revert ICivicLedger.CaseAlreadyHasReceipt(agencyId, caseId);
            }
            receipt = state.receipt;
            state.status = FilingStatus.Accepted;
            _citizenHeld[agencyId][caseId] = true;
        } else {
            state.status = FilingStatus.Rejected;
        }
        seq = LEDGER.appendFromModule(
            ICivicLedger.EntryKind.FilingAnswered, agencyId, msg.sender, recordHash, caseId, receipt
        );
        // Slither (reentrancy-events, low) accepted: the call above is to the immutable ledger, which calls nothing.
        // slither-disable-next-line reentrancy-events
        emit FilingAnswered({
            seq: seq,
            agencyId: agencyId,
            filingSeq: a.filingSeq,
            decision: decision,
            caseId: caseId,
            duplicateOf: a.duplicateOf,
            reasonHash: a.reasonHash,
            signer: msg.sender
        });
    }

    /// @inheritdoc ICivicFilings
    function claimReceipt(ReceiptClaim calldata c, bytes calldata signature, bytes calldata newKeySignature)
        external
        returns (uint256 seq)
    {
        ICivicLedger.ReceiptCase memory current = LEDGER.receiptCase(c.agencyId, c.caseId);
        if (current.status == ICivicLedger.ReceiptCaseStatus.None) {
            revert ICivicLedger.CaseHasNoReceipt(c.agencyId, c.caseId);
        }
        if (_citizenHeld[c.agencyId][c.caseId]) revert ReceiptAlreadyCitizenHeld(c.agencyId, c.caseId);
        _requireFreshKey(c.caseId, c.receipt);
        bytes32 recordHash = keccak256(abi.encode(RECEIPT_CLAIM_TYPEHASH, c.agencyId, c.caseId, c.receipt));
        _requireKeySignature(current.receipt, recordHash, signature);
        // The new key signs too: nobody moves a receipt to a key they do not hold (to a pending filing's key, say,
        // which would make that filing fail).
        _requireKeySignature(c.receipt, recordHash, newKeySignature);
        _citizenHeld[c.agencyId][c.caseId] = true;
        seq = LEDGER.appendFromModule(
            ICivicLedger.EntryKind.ReceiptClaimed, c.agencyId, current.receipt, recordHash, c.caseId, c.receipt
        );
        // Slither (reentrancy-events, low) accepted: the call above is to the immutable ledger, which calls nothing.
        // slither-disable-next-line reentrancy-events
        emit ReceiptClaimed({
            seq: seq,
            agencyId: c.agencyId,
            caseId: c.caseId,
            previous: current.receipt,
            receipt: c.receipt
        });
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc ICivicFilings
    function filing(uint256 filingSeq) external view returns (FilingState memory) {
        return _filings[filingSeq];
    }

    /// @inheritdoc ICivicFilings
    function citizenHeld(bytes32 agencyId, bytes32 caseId) external view returns (bool) {
        return _citizenHeld[agencyId][caseId];
    }

    /// @inheritdoc ICivicFilings
    function caseIdOfFiling(uint64 filingSeq) public pure returns (bytes32) {
        return keccak256(abi.encode(FILED_CASE_TYPEHASH, filingSeq)) | LedgerLib.RECEIPT_CASE_FLAG;
    }

    /// @inheritdoc ICivicFilings
    function verifyBatchEntry(uint256 seq, uint256 index, bytes32 recordHash, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = LEDGER.batchRoot(seq);
        if (root == bytes32(0)) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, recordHash))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @inheritdoc ICivicFilings
    function entryHashOf(uint256 seq, ICivicLedger.EntryKind kind, bytes32 agencyId, address actor, bytes32 recordHash)
        external
        pure
        returns (bytes32)
    {
        return LedgerLib.entryHash(seq, kind, agencyId, actor, recordHash);
    }

    /// @inheritdoc ICivicFilings
    // solhint-disable-next-line func-name-mixedcase
    function RECEIPT_CASE_FLAG() external pure returns (bytes32) {
        return LedgerLib.RECEIPT_CASE_FLAG;
    }

    /// @inheritdoc ICivicFilings
    // solhint-disable-next-line func-name-mixedcase
    function DISPUTE_WINDOW() external pure returns (uint256) {
        return LedgerLib.DISPUTE_WINDOW;
    }

    /// @inheritdoc ICivicFilings
    // solhint-disable-next-line func-name-mixedcase
    function DISPUTE_RESPONSE_WINDOW() external pure returns (uint256) {
        return LedgerLib.DISPUTE_RESPONSE_WINDOW;
    }

    /// @inheritdoc ICivicFilings
    // solhint-disable-next-line func-name-mixedcase
    function MAX_BATCH_ENTRIES() external pure returns (uint64) {
        return LedgerLib.MAX_BATCH_ENTRIES;
    }

    // ------------------------------------------------------------- internals

    /// @dev A key that may start a case: a plain key pair (no code) that no receipt, filing or claim used before.
    function _requireFreshKey(bytes32 caseId, address key) private view {
        if (key == address(0)) revert ICivicLedger.InvalidReceipt(caseId, key);
        if (key.code.length != 0) revert ICivicLedger.ReceiptKeyIsContract(caseId, key);
        ICivicLedger.ReceiptIssuance memory used = LEDGER.receiptIssuance(key);
        if (used.blockNumber != 0) revert ICivicLedger.ReceiptKeyAlreadyUsed(key, used.seq);
    }

    /// @dev Reverts unless `signature` is `key`'s plain ECDSA signature over this module's EIP-712 digest of
    /// `recordHash`. Never ERC-1271, for the reason the ledger gives for receipt keys; OpenZeppelin's ECDSA refuses
    /// malleable (high-s) signatures.
    function _requireKeySignature(address key, bytes32 recordHash, bytes calldata signature) private view {
        // Slither (unused-return) accepted: the third value only details why recovery failed; any failure is refused.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(_hashTypedDataV4(recordHash), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != key) revert InvalidKeySignature(key);
    }
}
