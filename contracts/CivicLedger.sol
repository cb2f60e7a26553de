// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {ICivicLedger} from "./interfaces/ICivicLedger.sol";
import {LedgerLib} from "./libraries/LedgerLib.sol";
import {CivicFilings} from "./CivicFilings.sol";

/// @title Civic Ledger
/// @notice Append-only, tamper-evident ledger of public-service commitments and cases. Immutable: no proxy,
/// no owner-only edit or delete. Governance (a two-step, time-delayed admin) registers agencies and their keys;
/// agencies append entries directly, in batches, or through a relayer with an EIP-712 signature. Citizens' filings,
/// the agencies' answers and receipt claims are appended by {CivicFilings}, a module the constructor creates: it is
/// the only contract that may call {appendFromModule}, and nothing can ever add another.
contract CivicLedger is ICivicLedger, AccessControlDefaultAdminRules, EIP712 {
    /// @notice Role allowed to register agencies and authorise or revoke their keys.
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// @inheritdoc ICivicLedger
    address public immutable FILINGS;
    // The rules' constants are LedgerLib's; {CivicFilings} publishes them (this contract has no room for getters).
    bytes32 private constant RECEIPT_CASE_FLAG = LedgerLib.RECEIPT_CASE_FLAG;
    uint256 private constant DISPUTE_WINDOW = LedgerLib.DISPUTE_WINDOW;
    uint64 private constant MAX_BATCH_ENTRIES = LedgerLib.MAX_BATCH_ENTRIES;

    // EIP-712 §Definition of encodeType: each record's type string, then the relayed wrappers.
    bytes32 private constant AGENCY_REGISTRATION_TYPEHASH =
        keccak256("AgencyRegistration(bytes32 agencyId,bytes32 jurisdiction,string nameZh,string nameEn)");
    bytes32 private constant SIGNER_CHANGE_TYPEHASH = keccak256("SignerChange(bytes32 agencyId,address signer)");
    bytes32 private constant COMMITMENT_TYPEHASH = keccak256(
        "Commitment(bytes32 commitmentId,bytes32 serviceCode,string nameZh,string nameEn,uint32 deadline,"
        "uint8 deadlineUnit,uint16 targetBps,uint64 validFrom,bytes32 termsHash,uint64 occurredAt)"
    );
    bytes32 private constant RETIREMENT_TYPEHASH =
        keccak256("Retirement(bytes32 commitmentId,bytes32 reasonHash,uint64 occurredAt)");
    bytes32 private constant CASE_EVENT_TYPEHASH = keccak256(
        "CaseEvent(bytes32 caseId,uint8 action,uint64 occurredAt,bytes32 commitmentId,bytes32 district,"
        "uint8 channel,bytes32 detailsHash)"
    );
    bytes32 private constant RECEIPT_TYPEHASH = keccak256("Receipt(bytes32 caseId,address receipt,uint64 occurredAt)");
    bytes32 private constant BATCH_TYPEHASH = keccak256("Batch(bytes32 root,uint64 count,bytes32 fileHash)");
    bytes32 private constant RATING_TYPEHASH =
        keccak256("Rating(bytes32 agencyId,bytes32 caseId,uint8 score,bytes32 commentHash)");
    bytes32 private constant DISPUTE_TYPEHASH =
        keccak256("Dispute(bytes32 agencyId,bytes32 caseId,uint16 closure,bytes32 reasonHash)");
    bytes32 private constant CORRECTION_TYPEHASH =
        keccak256("Correction(uint64 targetSeq,bytes32 reasonHash,uint64 occurredAt)");
    bytes32 private constant HOLIDAY_CALENDAR_TYPEHASH =
        keccak256("HolidayCalendar(uint16 year,uint32[] holidays,uint32[] workdays,uint64 occurredAt)");

    bytes32 private constant PUBLISH_COMMITMENT_TYPEHASH = keccak256(
        "PublishCommitment(bytes32 agencyId,Commitment commitment,uint256 nonce,uint256 deadline)"
        "Commitment(bytes32 commitmentId,bytes32 serviceCode,string nameZh,string nameEn,uint32 deadline,"
        "uint8 deadlineUnit,uint16 targetBps,uint64 validFrom,bytes32 termsHash,uint64 occurredAt)"
    );
    bytes32 private constant RETIRE_COMMITMENT_TYPEHASH = keccak256(
        "RetireCommitment(bytes32 agencyId,Retirement retirement,uint256 nonce,uint256 deadline)"
        "Retirement(bytes32 commitmentId,bytes32 reasonHash,uint64 occurredAt)"
    );
    bytes32 private constant RECORD_CASE_EVENT_TYPEHASH = keccak256(
        "RecordCaseEvent(bytes32 agencyId,CaseEvent caseEvent,uint256 nonce,uint256 deadline)"
        "CaseEvent(bytes32 caseId,uint8 action,uint64 occurredAt,bytes32 commitmentId,bytes32 district,"
        "uint8 channel,bytes32 detailsHash)"
    );
    bytes32 private constant RECORD_CASE_EVENTS_TYPEHASH = keccak256(
        "RecordCaseEvents(bytes32 agencyId,CaseEvent[] caseEvents,uint256 nonce,uint256 deadline)"
        "CaseEvent(bytes32 caseId,uint8 action,uint64 occurredAt,bytes32 commitmentId,bytes32 district,"
        "uint8 channel,bytes32 detailsHash)"
    );
    bytes32 private constant ISSUE_RECEIPT_TYPEHASH = keccak256(
        "IssueReceipt(bytes32 agencyId,Receipt receipt,uint256 nonce,uint256 deadline)Receipt(bytes32 caseId,address receipt,uint64 occurredAt)"
    );
    bytes32 private constant RECORD_CORRECTION_TYPEHASH = keccak256(
        "RecordCorrection(bytes32 agencyId,Correction correction,uint256 nonce,uint256 deadline)"
        "Correction(uint64 targetSeq,bytes32 reasonHash,uint64 occurredAt)"
    );
    bytes32 private constant PUBLISH_HOLIDAY_CALENDAR_TYPEHASH = keccak256(
        "PublishHolidayCalendar(bytes32 agencyId,HolidayCalendar calendar,uint256 nonce,uint256 deadline)"
        "HolidayCalendar(uint16 year,uint32[] holidays,uint32[] workdays,uint64 occurredAt)"
    );

    bytes32 private constant AUDITOR_CHANGE_TYPEHASH = keccak256("AuditorChange(address auditor)");
    bytes32 private constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(uint64 blockNumber,bytes32 blockHash,uint64 entryCount,bytes24 runningHash,bytes32 reportHash,"
        "uint8 verdict,uint32 findings)"
    );

    struct AgencyRecord {
        bool registered;
        uint32 signerCount;
        bytes32 jurisdiction;
    }

    /// @dev One slot per auditor: whether registered, and the block of its latest attestation (attestations only move
    /// forward, so a signed one can be recorded once and never backdated).
    struct AuditorRecord {
        bool authorized;
        uint64 lastBlock;
    }

    struct CommitmentRecord {
        uint32 version;
        bool retired;
    }

    /// @dev The running hash and the count share one storage slot, so an entry costs one storage write, not two
    /// (5,000 gas saved per transaction). The hash is keccak256 truncated to 192 bits: finding a second history
    /// with the same head stays a 2^192 search, and even a collision between two crafted histories 2^96.
    struct LogHead {
        bytes24 runningHash;
        uint64 entryCount;
    }

    LogHead private _head;
    mapping(bytes32 agencyId => AgencyRecord record) private _agencies;
    mapping(address signer => bytes32 agencyId) private _agencyOfSigner;
    mapping(bytes32 agencyId => mapping(bytes32 commitmentId => CommitmentRecord record)) private _commitments;
    mapping(bytes32 jurisdiction => mapping(uint16 year => uint32 version)) private _calendarVersions;
    mapping(address signer => uint256 nonce) private _nonces;
    /// @dev Written only for cases opened with a receipt: what a rating or dispute must be checked against.
    mapping(bytes32 agencyId => mapping(bytes32 caseId => ReceiptCase state)) private _receiptCases;
    mapping(uint256 firstSeq => bytes32 root) private _batchRoots;
    /// @dev Where each receipt key was issued. A key serves one case: otherwise an agency could issue another
    /// agency's citizen's key (copied from the pool) to a case of its own, and a look-up by key would be ambiguous.
    mapping(address receipt => ReceiptIssuance issuance) private _receiptIssuances;
    mapping(address auditor => AuditorRecord record) private _auditors;

    /// @param adminDelay seconds a governance handover must wait between its two steps
    /// @param admin the initial governance admin; it is also granted {GOVERNOR_ROLE}
    constructor(uint48 adminDelay, address admin)
        AccessControlDefaultAdminRules(adminDelay, admin)
        EIP712("CivicLedger", "1")
    {
        _grantRole(GOVERNOR_ROLE, admin);
        FILINGS = address(new CivicFilings());
    }

    // ------------------------------------------------------------- the module

    /// @inheritdoc ICivicLedger
    function appendFromModule(
        EntryKind kind,
        bytes32 agencyId,
        address actor,
        bytes32 recordHash,
        bytes32 caseId,
        address receipt
    ) external returns (uint256 seq) {
        if (msg.sender != FILINGS) revert UnauthorizedSigner(msg.sender);
        seq = _appendOne(kind, agencyId, actor, recordHash);
        if (receipt != address(0)) {
            // Both fit 64 bits for ever, as in {_issueReceipt}.
            _receiptIssuances[receipt] = ReceiptIssuance({seq: uint64(seq), blockNumber: uint64(block.number)});
            if (caseId != bytes32(0)) {
                ReceiptCase storage state = _receiptCases[agencyId][caseId];
                state.receipt = receipt;
                if (state.status == ReceiptCaseStatus.None) state.status = ReceiptCaseStatus.Open;
            }
        }
    }

    // ------------------------------------------------------------- governance

    /// @inheritdoc ICivicLedger
    function registerAgency(bytes32 agencyId, bytes32 jurisdiction, string calldata nameZh, string calldata nameEn)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        if (agencyId == bytes32(0)) revert InvalidAgencyId();
        if (jurisdiction == bytes32(0)) revert InvalidJurisdiction();
        AgencyRecord storage record = _agencies[agencyId];
        if (record.registered) revert AgencyAlreadyRegistered(agencyId);
        record.registered = true;
        record.jurisdiction = jurisdiction;
        bytes32 recordHash = keccak256(
            abi.encode(
                AGENCY_REGISTRATION_TYPEHASH,
                agencyId,
                jurisdiction,
                keccak256(bytes(nameZh)),
                keccak256(bytes(nameEn))
            )
        );
        uint256 seq = _appendOne(EntryKind.AgencyRegistered, agencyId, msg.sender, recordHash);
        emit AgencyRegistered({
            seq: seq,
            agencyId: agencyId,
            jurisdiction: jurisdiction,
            nameZh: nameZh,
            nameEn: nameEn,
            actor: msg.sender
        });
    }

    /// @inheritdoc ICivicLedger
    function authorizeSigner(bytes32 agencyId, address signer) external onlyRole(GOVERNOR_ROLE) {
        if (signer == address(0)) revert InvalidSigner();
        AgencyRecord storage record = _agencies[agencyId];
        if (!record.registered) revert UnknownAgency(agencyId);
        bytes32 current = _agencyOfSigner[signer];
        if (current != bytes32(0)) revert SignerAlreadyAuthorized(signer, current);
        if (_auditors[signer].authorized) revert KeyRoleConflict(signer);
        _agencyOfSigner[signer] = agencyId;
        ++record.signerCount;
        bytes32 recordHash = keccak256(abi.encode(SIGNER_CHANGE_TYPEHASH, agencyId, signer));
        uint256 seq = _appendOne(EntryKind.SignerAuthorized, agencyId, msg.sender, recordHash);
        emit SignerAuthorized({seq: seq, agencyId: agencyId, signer: signer, actor: msg.sender});
    }

    /// @inheritdoc ICivicLedger
    function revokeSigner(address signer) external onlyRole(GOVERNOR_ROLE) {
        bytes32 agencyId = _agencyOfSigner[signer];
        if (agencyId == bytes32(0)) revert UnauthorizedSigner(signer);
        delete _agencyOfSigner[signer];
        --_agencies[agencyId].signerCount;
        bytes32 recordHash = keccak256(abi.encode(SIGNER_CHANGE_TYPEHASH, agencyId, signer));
        uint256 seq = _appendOne(EntryKind.SignerRevoked, agencyId, msg.sender, recordHash);
        emit SignerRevoked({seq: seq, agencyId: agencyId, signer: signer, actor: msg.sender});
    }

    /// @inheritdoc ICivicLedger
    function authorizeAuditor(address auditor) external onlyRole(GOVERNOR_ROLE) {
        if (auditor == address(0)) revert InvalidSigner();
        if (_agencyOfSigner[auditor] != bytes32(0)) revert KeyRoleConflict(auditor);
        AuditorRecord storage record = _auditors[auditor];
        if (record.authorized) revert UnknownAuditor(auditor);
        record.authorized = true;
        _appendAuditorChange(EntryKind.AuditorAuthorized, auditor);
        emit AuditorAuthorized({seq: _head.entryCount - 1, auditor: auditor, actor: msg.sender});
    }

    /// @inheritdoc ICivicLedger
    function revokeAuditor(address auditor) external onlyRole(GOVERNOR_ROLE) {
        AuditorRecord storage record = _auditors[auditor];
        if (!record.authorized) revert UnknownAuditor(auditor);
        record.authorized = false;
        _appendAuditorChange(EntryKind.AuditorRevoked, auditor);
        emit AuditorRevoked({seq: _head.entryCount - 1, auditor: auditor, actor: msg.sender});
    }

    /// @inheritdoc ICivicLedger
    function recordAttestation(Attestation calldata a, address auditor, bytes calldata signature) external {
        AuditorRecord storage record = _auditors[auditor];
        if (!record.authorized) revert UnknownAuditor(auditor);
        bytes32 recordHash = keccak256(abi.encode(ATTESTATION_TYPEHASH, a));
        if (!SignatureChecker.isValidSignatureNow(auditor, _hashTypedDataV4(recordHash), signature)) {
            revert InvalidSignature(auditor);
        }
        if (a.verdict == 0 || a.verdict > uint8(AuditVerdict.Failed)) revert InvalidAttestation(auditor, "verdict");
        bool passed = a.verdict == uint8(AuditVerdict.Passed);
        if (passed != (a.findings == 0)) revert InvalidAttestation(auditor, "findings");
        if (a.blockNumber <= record.lastBlock) revert InvalidAttestation(auditor, "blockNumber");
        // blockhash is zero for the current block, future blocks and blocks more than 256 back: a checkpoint is
        // recorded only while the chain can still vouch for the block it names.
        if (a.blockHash == bytes32(0) || blockhash(a.blockNumber) != a.blockHash) {
            revert InvalidAttestation(auditor, "blockHash");
        }
        if (a.entryCount > _head.entryCount) revert InvalidAttestation(auditor, "entryCount");
        record.lastBlock = a.blockNumber;
        uint256 seq = _appendOne(EntryKind.AuditAttested, bytes32(0), auditor, recordHash);
        emit AuditAttested({
            seq: seq,
            auditor: auditor,
            blockNumber: a.blockNumber,
            blockHash: a.blockHash,
            entryCount: a.entryCount,
            runningHash: a.runningHash,
            reportHash: a.reportHash,
            verdict: a.verdict,
            findings: a.findings
        });
    }

    // ----------------------------------------------------- agency: direct calls

    /// @inheritdoc ICivicLedger
    function publishCommitment(Commitment calldata commitment) external {
        _publishCommitment(_requireSigner(msg.sender), msg.sender, commitment, _hashCommitment(commitment));
    }

    /// @inheritdoc ICivicLedger
    function retireCommitment(Retirement calldata retirement) external {
        _retireCommitment(_requireSigner(msg.sender), msg.sender, retirement, _hashRetirement(retirement));
    }

    /// @inheritdoc ICivicLedger
    function recordCaseEvent(CaseEvent calldata caseEvent) external {
        bytes32 agencyId = _requireSigner(msg.sender);
        LogHead memory head = _head;
        _head = LogHead({
            runningHash: _foldCaseEvent(
                head.runningHash, head.entryCount, agencyId, msg.sender, caseEvent, _hashCaseEvent(caseEvent)
            ),
            entryCount: head.entryCount + 1
        });
    }

    /// @inheritdoc ICivicLedger
    function recordCaseEvents(CaseEvent[] calldata caseEvents) external {
        _recordCaseEvents(_requireSigner(msg.sender), msg.sender, caseEvents, _hashCaseEvents(caseEvents));
    }

    /// @inheritdoc ICivicLedger
    function issueReceipt(Receipt calldata receipt) external {
        _issueReceipt(_requireSigner(msg.sender), msg.sender, receipt, _hashReceipt(receipt));
    }

    /// @inheritdoc ICivicLedger
    function issueReceipts(Receipt[] calldata receipts) external {
        bytes32 agencyId = _requireSigner(msg.sender);
        uint256 n = receipts.length;
        if (n == 0) revert EmptyBatch();
        for (uint256 i = 0; i < n; ++i) {
            _issueReceipt(agencyId, msg.sender, receipts[i], _hashReceipt(receipts[i]));
        }
    }

    /// @inheritdoc ICivicLedger
    function anchorBatch(bytes32 root, uint64 count, bytes32 fileHash) external {
        bytes32 agencyId = _requireSigner(msg.sender);
        if (root == bytes32(0) || count == 0 || fileHash == bytes32(0)) revert InvalidBatch(root, count, fileHash);
        // The count is the one quantity of an anchor that moves the shared log: bounded, so no agency can push the
        // entry count near its type's limit (2^64 / 2^20 anchors would be needed) and freeze every writer.
        if (count > MAX_BATCH_ENTRIES) revert BatchTooLarge(count, MAX_BATCH_ENTRIES);
        LogHead memory head = _head;
        uint64 seq = head.entryCount;
        bytes32 batchHash = keccak256(abi.encode(BATCH_TYPEHASH, root, count, fileHash));
        _head = LogHead({
            runningHash: _fold(head.runningHash, LedgerLib.entryHash(seq, EntryKind.BatchAnchored, agencyId, msg.sender, batchHash)),
            entryCount: seq + count
        });
        _batchRoots[seq] = root;
        emit BatchAnchored({seq: seq, agencyId: agencyId, root: root, count: count, fileHash: fileHash, signer: msg.sender});
    }

    /// @inheritdoc ICivicLedger
    function recordCorrection(Correction calldata correction) external {
        _recordCorrection(_requireSigner(msg.sender), msg.sender, correction, _hashCorrection(correction));
    }

    /// @inheritdoc ICivicLedger
    function publishHolidayCalendar(HolidayCalendar calldata calendar) external {
        _publishHolidayCalendar(_requireSigner(msg.sender), msg.sender, calendar, _hashHolidayCalendar(calendar));
    }

    /// @inheritdoc ICivicLedger
    function cancelSignatures(uint256 newNonce) external {
        uint256 current = _nonces[msg.sender];
        if (newNonce <= current) revert NonceNotIncreasing(current, newNonce);
        _nonces[msg.sender] = newNonce;
        emit SignaturesCancelled({signer: msg.sender, newNonce: newNonce});
    }

    // ---------------------------------------------- agency: relayed signatures

    /// @inheritdoc ICivicLedger
    function publishCommitmentBySig(
        Commitment calldata commitment,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 recordHash = _hashCommitment(commitment);
        bytes32 agencyId = _useSignature(PUBLISH_COMMITMENT_TYPEHASH, recordHash, signer, deadline, signature);
        _publishCommitment(agencyId, signer, commitment, recordHash);
    }

    /// @inheritdoc ICivicLedger
    function retireCommitmentBySig(
        Retirement calldata retirement,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 recordHash = _hashRetirement(retirement);
        bytes32 agencyId = _useSignature(RETIRE_COMMITMENT_TYPEHASH, recordHash, signer, deadline, signature);
        _retireCommitment(agencyId, signer, retirement, recordHash);
    }

    /// @inheritdoc ICivicLedger
    function recordCaseEventBySig(
        CaseEvent calldata caseEvent,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 recordHash = _hashCaseEvent(caseEvent);
        bytes32 agencyId = _useSignature(RECORD_CASE_EVENT_TYPEHASH, recordHash, signer, deadline, signature);
        LogHead memory head = _head;
        _head = LogHead({
            runningHash: _foldCaseEvent(head.runningHash, head.entryCount, agencyId, signer, caseEvent, recordHash),
            entryCount: head.entryCount + 1
        });
    }

    /// @inheritdoc ICivicLedger
    function recordCaseEventsBySig(
        CaseEvent[] calldata caseEvents,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32[] memory recordHashes = _hashCaseEvents(caseEvents);
        // EIP-712 §Definition of encodeData: an array is the keccak256 of its elements' hashStructs, concatenated.
        bytes32 arrayHash = keccak256(abi.encodePacked(recordHashes));
        bytes32 agencyId = _useSignature(RECORD_CASE_EVENTS_TYPEHASH, arrayHash, signer, deadline, signature);
        _recordCaseEvents(agencyId, signer, caseEvents, recordHashes);
    }

    /// @inheritdoc ICivicLedger
    function issueReceiptBySig(Receipt calldata receipt, address signer, uint256 deadline, bytes calldata signature)
        external
    {
        bytes32 recordHash = _hashReceipt(receipt);
        bytes32 agencyId = _useSignature(ISSUE_RECEIPT_TYPEHASH, recordHash, signer, deadline, signature);
        _issueReceipt(agencyId, signer, receipt, recordHash);
    }

    /// @inheritdoc ICivicLedger
    function recordCorrectionBySig(
        Correction calldata correction,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 recordHash = _hashCorrection(correction);
        bytes32 agencyId = _useSignature(RECORD_CORRECTION_TYPEHASH, recordHash, signer, deadline, signature);
        _recordCorrection(agencyId, signer, correction, recordHash);
    }

    /// @inheritdoc ICivicLedger
    function publishHolidayCalendarBySig(
        HolidayCalendar calldata calendar,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 recordHash = _hashHolidayCalendar(calendar);
        bytes32 agencyId = _useSignature(PUBLISH_HOLIDAY_CALENDAR_TYPEHASH, recordHash, signer, deadline, signature);
        _publishHolidayCalendar(agencyId, signer, calendar, recordHash);
    }

    // ---------------------------------------------------- citizens: receipts

    /// @inheritdoc ICivicLedger
    function rateCase(Rating calldata rating, bytes calldata signature) external {
        if (rating.score == 0 || rating.score > 5) revert InvalidScore(rating.score);
        ReceiptCase storage state = _receiptCases[rating.agencyId][rating.caseId];
        ReceiptCase memory current = state;
        if (current.status == ReceiptCaseStatus.None) revert CaseHasNoReceipt(rating.agencyId, rating.caseId);
        if (current.status == ReceiptCaseStatus.Open) {
            revert InvalidReceiptCaseStatus(rating.agencyId, rating.caseId, current.status);
        }
        if (current.rated) revert AlreadyRated(rating.agencyId, rating.caseId);
        bytes32 recordHash = keccak256(
            abi.encode(RATING_TYPEHASH, rating.agencyId, rating.caseId, rating.score, rating.commentHash)
        );
        _requireReceiptSignature(current.receipt, recordHash, signature, rating.agencyId, rating.caseId);
        state.rated = true;
        uint256 seq = _appendOne(EntryKind.CaseRated, rating.agencyId, current.receipt, recordHash);
        emit CaseRated({
            seq: seq,
            agencyId: rating.agencyId,
            caseId: rating.caseId,
            score: rating.score,
            commentHash: rating.commentHash,
            receipt: current.receipt
        });
    }

    /// @inheritdoc ICivicLedger
    function disputeCase(Dispute calldata dispute, bytes calldata signature) external {
        ReceiptCase storage state = _receiptCases[dispute.agencyId][dispute.caseId];
        ReceiptCase memory current = state;
        if (current.status == ReceiptCaseStatus.None) revert CaseHasNoReceipt(dispute.agencyId, dispute.caseId);
        if (current.status != ReceiptCaseStatus.Fulfilled) {
            revert InvalidReceiptCaseStatus(dispute.agencyId, dispute.caseId, current.status);
        }
        if (current.disputed || current.disputedClosure == current.closures) {
            revert AlreadyDisputed(dispute.agencyId, dispute.caseId);
        }
        if (dispute.closure != current.closures) revert StaleClosure(dispute.closure, current.closures);
        // Slither (timestamp, low) accepted: a window of days cannot be moved meaningfully by a validator's seconds.
        // slither-disable-next-line timestamp
        if (block.timestamp > uint256(current.closedAt) + DISPUTE_WINDOW) {
            revert DisputeWindowClosed(current.closedAt, block.timestamp);
        }
        bytes32 recordHash = keccak256(
            abi.encode(DISPUTE_TYPEHASH, dispute.agencyId, dispute.caseId, dispute.closure, dispute.reasonHash)
        );
        _requireReceiptSignature(current.receipt, recordHash, signature, dispute.agencyId, dispute.caseId);
        state.disputed = true;
        state.disputedClosure = current.closures;
        uint256 seq = _appendOne(EntryKind.CaseDisputed, dispute.agencyId, current.receipt, recordHash);
        emit CaseDisputed({
            seq: seq,
            agencyId: dispute.agencyId,
            caseId: dispute.caseId,
            closure: dispute.closure,
            reasonHash: dispute.reasonHash,
            receipt: current.receipt
        });
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ICivicLedger
    function batchRoot(uint256 seq) external view returns (bytes32) {
        return _batchRoots[seq];
    }

    /// @inheritdoc ICivicLedger
    function receiptCase(bytes32 agencyId, bytes32 caseId) external view returns (ReceiptCase memory) {
        return _receiptCases[agencyId][caseId];
    }

    /// @inheritdoc ICivicLedger
    function receiptIssuance(address receipt) external view returns (ReceiptIssuance memory) {
        return _receiptIssuances[receipt];
    }

    /// @inheritdoc ICivicLedger
    function auditorState(address key) external view returns (bool authorized, uint64 lastBlock) {
        AuditorRecord memory record = _auditors[key];
        return (record.authorized, record.lastBlock);
    }

    /// @inheritdoc ICivicLedger
    function runningHash() external view returns (bytes24) {
        return _head.runningHash;
    }

    /// @inheritdoc ICivicLedger
    function entryCount() external view returns (uint256) {
        return _head.entryCount;
    }

    /// @inheritdoc ICivicLedger
    function agencyOf(address signer) external view returns (bytes32 agencyId) {
        return _agencyOfSigner[signer];
    }

    /// @inheritdoc ICivicLedger
    function agency(bytes32 agencyId) external view returns (bool registered, bytes32 jurisdiction, uint32 signerCount) {
        AgencyRecord storage record = _agencies[agencyId];
        return (record.registered, record.jurisdiction, record.signerCount);
    }

    /// @inheritdoc ICivicLedger
    function commitmentState(bytes32 agencyId, bytes32 commitmentId)
        external
        view
        returns (uint32 version, bool retired)
    {
        CommitmentRecord storage record = _commitments[agencyId][commitmentId];
        return (record.version, record.retired);
    }

    /// @inheritdoc ICivicLedger
    function holidayCalendarVersion(bytes32 jurisdiction, uint16 year) external view returns (uint32 version) {
        return _calendarVersions[jurisdiction][year];
    }

    /// @inheritdoc ICivicLedger
    function nonces(address signer) external view returns (uint256) {
        return _nonces[signer];
    }

    // -------------------------------------------------------------- internals

    /// @dev The agency `signer` currently writes for; reverts when the key is unknown or revoked.
    function _requireSigner(address signer) private view returns (bytes32 agencyId) {
        agencyId = _agencyOfSigner[signer];
        if (agencyId == bytes32(0)) revert UnauthorizedSigner(signer);
    }

    /// @dev Checks a relayed signature over `wrapperTypehash(agencyId, recordHash, nonce, deadline)`, `agencyId` the
    /// agency the key writes for now, and consumes the nonce.
    function _useSignature(
        bytes32 wrapperTypehash,
        bytes32 recordHash,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) private returns (bytes32 agencyId) {
        // Slither (timestamp, low) accepted: a validator can shift block time by seconds, which cannot matter for
        // a signature deadline measured in minutes or hours.
        // slither-disable-next-line timestamp
        if (block.timestamp > deadline) revert SignatureExpired(deadline, block.timestamp);
        agencyId = _requireSigner(signer);
        uint256 nonce = _nonces[signer];
        // The agency is part of what was signed: a signature made while the key wrote for one agency can never be
        // attributed to another after governance moves the key.
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(wrapperTypehash, agencyId, recordHash, nonce, deadline)));
        // OpenZeppelin's checker refuses malleable (high-s) ECDSA signatures and supports ERC-1271 signers.
        if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) revert InvalidSignature(signer);
        _nonces[signer] = nonce + 1;
    }

    /// @dev Reverts unless `signature` is the receipt key's plain ECDSA signature over the EIP-712 digest of
    /// `recordHash`. Never ERC-1271: a receipt key belongs to the citizen, and a contract at that address (an agency's
    /// "receipt" wallet, or code delegated to the address later) could approve anything. OpenZeppelin's ECDSA refuses
    /// malleable (high-s) signatures.
    function _requireReceiptSignature(
        address receipt,
        bytes32 recordHash,
        bytes calldata signature,
        bytes32 agencyId,
        bytes32 caseId
    ) private view {
        // Slither (unused-return) accepted: the third value only details why recovery failed; any failure is refused.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(_hashTypedDataV4(recordHash), signature);
        if (error != ECDSA.RecoverError.NoError || recovered != receipt) revert InvalidReceiptSignature(agencyId, caseId);
    }

    /// @dev Starts tracking a case with a receipt; a case gets one receipt.
    function _issueReceipt(bytes32 agencyId, address signer, Receipt calldata r, bytes32 recordHash) private {
        _requireOccurredAt(r.occurredAt);
        if (r.caseId & RECEIPT_CASE_FLAG == 0 || r.receipt == address(0)) revert InvalidReceipt(r.caseId, r.receipt);
        // A receipt key is the citizen's own key pair: an address with code is some contract's, not a citizen's.
        if (r.receipt.code.length != 0) revert ReceiptKeyIsContract(r.caseId, r.receipt);
        ReceiptCase storage state = _receiptCases[agencyId][r.caseId];
        if (state.status != ReceiptCaseStatus.None) revert CaseAlreadyHasReceipt(agencyId, r.caseId);
        ReceiptIssuance storage issuance = _receiptIssuances[r.receipt];
        if (issuance.blockNumber != 0) revert ReceiptKeyAlreadyUsed(r.receipt, issuance.seq);
        state.receipt = r.receipt;
        state.status = ReceiptCaseStatus.Open;
        uint256 seq = _appendOne(EntryKind.ReceiptIssued, agencyId, signer, recordHash);
        // Both fit 64 bits for ever: the entry count is a uint64, and block numbers grow by one a block.
        issuance.seq = uint64(seq);
        issuance.blockNumber = uint64(block.number);
        emit ReceiptIssued({
            seq: seq,
            agencyId: agencyId,
            caseId: r.caseId,
            receipt: r.receipt,
            occurredAt: r.occurredAt,
            signer: signer
        });
    }

    /// @dev Checks a closing, `Reopened`, `DisputeRejected` or `Rectified` event against its receipt case's tracked
    /// state, and moves that state on all but `Rectified`. Closings and `Reopened` come here only for a case whose id
    /// carries {RECEIPT_CASE_FLAG}; other cases' transitions are the auditor's.
    function _applyToReceiptCase(bytes32 agencyId, bytes32 caseId, uint8 action) private {
        ReceiptCase storage state = _receiptCases[agencyId][caseId];
        ReceiptCaseStatus status = state.status;
        if (action == uint8(CaseAction.Rectified)) {
            // It answers the holder's rating and moves nothing: a dispute or a closing is taken after it as before.
            if (!state.rated) revert CaseNotRated(agencyId, caseId);
        } else if (action == uint8(CaseAction.DisputeRejected)) {
            if (!state.disputed) revert CaseNotDisputed(agencyId, caseId);
            state.disputed = false;
        } else if (status == ReceiptCaseStatus.None) {
            return;
        } else if (action == uint8(CaseAction.Reopened)) {
            if (status == ReceiptCaseStatus.Open) revert InvalidReceiptCaseStatus(agencyId, caseId, status);
            state.status = ReceiptCaseStatus.Open;
            state.disputed = false;
        } else {
            // Fulfilled, Rejected or Withdrawn
            if (status != ReceiptCaseStatus.Open) revert InvalidReceiptCaseStatus(agencyId, caseId, status);
            state.status =
                action == uint8(CaseAction.Fulfilled) ? ReceiptCaseStatus.Fulfilled : ReceiptCaseStatus.ClosedUnfulfilled;
            state.closures += 1;
            state.closedAt = uint40(block.timestamp);
        }
    }

    function _appendOne(EntryKind kind, bytes32 agencyId, address actor, bytes32 recordHash)
        private
        returns (uint256 seq)
    {
        LogHead memory head = _head;
        seq = head.entryCount;
        _head = LogHead({
            runningHash: _fold(head.runningHash, LedgerLib.entryHash(seq, kind, agencyId, actor, recordHash)),
            entryCount: head.entryCount + 1
        });
    }

    function _appendAuditorChange(EntryKind kind, address auditor) private {
        _appendOne(kind, bytes32(0), msg.sender, keccak256(abi.encode(AUDITOR_CHANGE_TYPEHASH, auditor)));
    }

    function _requireOccurredAt(uint64 occurredAt) private view {
        // Slither (timestamp, low) accepted: refusing claimed times in the future is a sanity bound, and the
        // auditor measures the gap between claimed and block time anyway.
        // slither-disable-next-line timestamp
        if (occurredAt == 0 || occurredAt > block.timestamp) revert InvalidOccurredAt(occurredAt, block.timestamp);
    }

    function _publishCommitment(bytes32 agencyId, address signer, Commitment calldata c, bytes32 recordHash)
        private
    {
        if (c.commitmentId == bytes32(0)) revert InvalidCommitment(c.commitmentId, "commitmentId");
        if (c.serviceCode == bytes32(0)) revert InvalidCommitment(c.commitmentId, "serviceCode");
        if (bytes(c.nameZh).length == 0 || bytes(c.nameEn).length == 0) revert InvalidCommitment(c.commitmentId, "name");
        if (c.deadline == 0) revert InvalidCommitment(c.commitmentId, "deadline");
        if (c.deadlineUnit != uint8(DeadlineUnit.CalendarHours) && c.deadlineUnit != uint8(DeadlineUnit.WorkingDays)) {
            revert InvalidCommitment(c.commitmentId, "deadlineUnit");
        }
        if (c.targetBps > 10_000) revert InvalidCommitment(c.commitmentId, "targetBps");
        if (c.validFrom == 0) revert InvalidCommitment(c.commitmentId, "validFrom");
        _requireOccurredAt(c.occurredAt);
        CommitmentRecord storage record = _commitments[agencyId][c.commitmentId];
        if (record.retired) revert CommitmentIsRetired(agencyId, c.commitmentId);
        uint32 version = record.version + 1;
        record.version = version;
        uint256 seq = _appendOne(EntryKind.CommitmentPublished, agencyId, signer, recordHash);
        emit CommitmentPublished({
            seq: seq,
            agencyId: agencyId,
            commitmentId: c.commitmentId,
            version: version,
            commitment: c,
            signer: signer
        });
    }

    function _retireCommitment(bytes32 agencyId, address signer, Retirement calldata r, bytes32 recordHash) private {
        _requireOccurredAt(r.occurredAt);
        CommitmentRecord storage record = _commitments[agencyId][r.commitmentId];
        if (record.version == 0) revert UnknownCommitment(agencyId, r.commitmentId);
        if (record.retired) revert CommitmentIsRetired(agencyId, r.commitmentId);
        record.retired = true;
        uint256 seq = _appendOne(EntryKind.CommitmentRetired, agencyId, signer, recordHash);
        emit CommitmentRetired({
            seq: seq,
            agencyId: agencyId,
            commitmentId: r.commitmentId,
            reasonHash: r.reasonHash,
            occurredAt: r.occurredAt,
            signer: signer
        });
    }

    function _recordCaseEvents(
        bytes32 agencyId,
        address signer,
        CaseEvent[] calldata caseEvents,
        bytes32[] memory recordHashes
    ) private {
        // Fold in memory and write the running hash and count once: the point of a batch.
        LogHead memory head = _head;
        bytes24 runningHash_ = head.runningHash;
        uint64 seq = head.entryCount;
        uint256 n = caseEvents.length;
        for (uint256 i = 0; i < n; ++i) {
            runningHash_ = _foldCaseEvent(runningHash_, seq + i, agencyId, signer, caseEvents[i], recordHashes[i]);
        }
        _head = LogHead({runningHash: runningHash_, entryCount: seq + uint64(n)});
    }

    function _hashCaseEvents(CaseEvent[] calldata caseEvents) private pure returns (bytes32[] memory recordHashes) {
        uint256 n = caseEvents.length;
        if (n == 0) revert EmptyBatch();
        recordHashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            recordHashes[i] = _hashCaseEvent(caseEvents[i]);
        }
    }

    /// @dev Validates one case event, emits it, and returns the running hash advanced over it.
    /// Case state transitions are not enforced here (that would cost a storage write per case); the auditor checks them.
    /// Cases with a receipt are the exception: the ledger tracks them, as ratings and disputes depend on it.
    function _foldCaseEvent(
        bytes24 head,
        uint256 seq,
        bytes32 agencyId,
        address signer,
        CaseEvent calldata e,
        bytes32 recordHash
    ) private returns (bytes24) {
        if (e.caseId == bytes32(0)) revert InvalidCaseEvent(e.caseId, "caseId");
        _requireOccurredAt(e.occurredAt);
        if (e.action == uint8(CaseAction.Opened)) {
            if (e.district == bytes32(0)) revert InvalidCaseEvent(e.caseId, "district");
            if (e.channel == 0) revert InvalidCaseEvent(e.caseId, "channel");
            CommitmentRecord storage c = _commitments[agencyId][e.commitmentId];
            if (c.version == 0) revert UnknownCommitment(agencyId, e.commitmentId);
            if (c.retired) revert CommitmentIsRetired(agencyId, e.commitmentId);
            emit CaseOpened({
                seq: seq,
                agencyId: agencyId,
                caseId: e.caseId,
                commitmentId: e.commitmentId,
                occurredAt: e.occurredAt,
                district: e.district,
                channel: e.channel,
                detailsHash: e.detailsHash,
                signer: signer
            });
        } else {
            uint8 action = e.action;
            if (action == uint8(CaseAction.None) || action > uint8(CaseAction.Rectified)) {
                revert InvalidCaseEvent(e.caseId, "action");
            }
            // Intake fields belong to Opened only: one meaning per field, nothing to misread later.
            if (e.commitmentId != bytes32(0) || e.district != bytes32(0) || e.channel != 0) {
                revert InvalidCaseEvent(e.caseId, "intake fields on a later event");
            }
            // Closings and Reopened go to a receipt case's tracked state, the answers (DisputeRejected to a dispute,
            // Rectified to a rating) whatever the id: an unflagged case has no state, so nothing to answer, and is
            // refused there. One call site, so the checks are compiled once (the runtime code is at EIP-170's limit).
            bytes32 caseId = e.caseId;
            if (
                action >= uint8(CaseAction.Fulfilled)
                    && (caseId & RECEIPT_CASE_FLAG != 0 || action >= uint8(CaseAction.DisputeRejected))
            ) {
                _applyToReceiptCase(agencyId, caseId, action);
            }
            emit CaseUpdated({
                seq: seq,
                agencyId: agencyId,
                caseId: e.caseId,
                action: e.action,
                occurredAt: e.occurredAt,
                detailsHash: e.detailsHash,
                signer: signer
            });
        }
        return _fold(head, LedgerLib.entryHash(seq, EntryKind.CaseEvent, agencyId, signer, recordHash));
    }

    function _recordCorrection(bytes32 agencyId, address signer, Correction calldata c, bytes32 recordHash) private {
        _requireOccurredAt(c.occurredAt);
        uint256 count = _head.entryCount;
        if (c.targetSeq >= count) revert InvalidCorrectionTarget(c.targetSeq, count);
        uint256 seq = _appendOne(EntryKind.Correction, agencyId, signer, recordHash);
        emit CorrectionRecorded({
            seq: seq,
            agencyId: agencyId,
            targetSeq: c.targetSeq,
            reasonHash: c.reasonHash,
            occurredAt: c.occurredAt,
            signer: signer
        });
    }

    function _publishHolidayCalendar(
        bytes32 agencyId,
        address signer,
        HolidayCalendar calldata cal,
        bytes32 recordHash
    ) private {
        _requireOccurredAt(cal.occurredAt);
        if (cal.year < 1970 || cal.year > 9999) revert InvalidHolidayCalendar(cal.year, "year");
        uint256 first = _daysFromCivil(cal.year);
        uint256 end = _daysFromCivil(cal.year + 1);
        // 1970-01-01 was a Thursday, so (day + 4) % 7 is 0 on Sundays and 6 on Saturdays.
        _requireDays(cal.year, cal.holidays, first, end, false, "holidays");
        _requireDays(cal.year, cal.workdays, first, end, true, "workdays");
        bytes32 jurisdiction = _agencies[agencyId].jurisdiction;
        uint32 version = _calendarVersions[jurisdiction][cal.year] + 1;
        _calendarVersions[jurisdiction][cal.year] = version;
        uint256 seq = _appendOne(EntryKind.HolidayCalendarPublished, agencyId, signer, recordHash);
        emit HolidayCalendarPublished({
            seq: seq,
            agencyId: agencyId,
            jurisdiction: jurisdiction,
            version: version,
            calendar: cal,
            signer: signer
        });
    }

    /// @dev Each day must lie in [first, end), strictly ascending, and fall on a weekend (`weekend`) or weekday.
    function _requireDays(
        uint16 year,
        uint32[] calldata daysList,
        uint256 first,
        uint256 end,
        bool weekend,
        string memory field
    ) private pure {
        uint256 previous = 0;
        for (uint256 i = 0; i < daysList.length; ++i) {
            uint256 day = daysList[i];
            if (day < first || day >= end || (i > 0 && day <= previous)) revert InvalidHolidayCalendar(year, field);
            uint256 weekday = (day + 4) % 7;
            if ((weekday == 0 || weekday == 6) != weekend) revert InvalidHolidayCalendar(year, field);
            previous = day;
        }
    }

    /// @dev Days from 1970-01-01 to 1 January of `year` (proleptic Gregorian; H. Hinnant's days_from_civil).
    // Slither (divide-before-multiply, medium) accepted: flooring to whole 400-year eras before multiplying is
    // the algorithm itself, not a precision loss.
    // slither-disable-start divide-before-multiply
    function _daysFromCivil(uint256 year) private pure returns (uint256) {
        uint256 y = year - 1; // January counts as month 11 of the previous March-based year
        uint256 era = y / 400;
        uint256 yoe = y - era * 400;
        uint256 doe = yoe * 365 + yoe / 4 - yoe / 100 + 306;
        return era * 146_097 + doe - 719_468;
    }
    // slither-disable-end divide-before-multiply

    function _hashCommitment(Commitment calldata c) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                COMMITMENT_TYPEHASH,
                c.commitmentId,
                c.serviceCode,
                keccak256(bytes(c.nameZh)),
                keccak256(bytes(c.nameEn)),
                c.deadline,
                c.deadlineUnit,
                c.targetBps,
                c.validFrom,
                c.termsHash,
                c.occurredAt
            )
        );
    }

    function _hashRetirement(Retirement calldata r) private pure returns (bytes32) {
        return keccak256(abi.encode(RETIREMENT_TYPEHASH, r.commitmentId, r.reasonHash, r.occurredAt));
    }

    function _hashCaseEvent(CaseEvent calldata e) private pure returns (bytes32 hash) {
        // keccak256(abi.encode(CASE_EVENT_TYPEHASH, e)): a static struct ABI-encodes as its seven words in order,
        // exactly EIP-712's encodeData for these types. Copied straight from calldata and hashed past the free
        // memory pointer, as in {entryHashOf}. Dirty high bits in the narrow fields (uint8, uint64) cannot slip
        // into the hash: {_foldCaseEvent} reads every one of them through the checked ABI decoder, which reverts.
        bytes32 typehash = CASE_EVENT_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), e, 0xe0)
            hash := keccak256(m, 0x100)
        }
    }

    /// @dev One step of the running hash: bytes24(keccak256(abi.encode(head, entryHash))), in scratch space.
    function _fold(bytes24 head, bytes32 entryHash) private pure returns (bytes24 next) {
        assembly ("memory-safe") {
            mstore(0x00, head)
            mstore(0x20, entryHash)
            // A bytes24 is left-aligned: keep the high 24 bytes, clear the low 8 so the value is clean.
            next := and(keccak256(0x00, 0x40), not(0xffffffffffffffff))
        }
    }

    function _hashReceipt(Receipt calldata r) private pure returns (bytes32) {
        return keccak256(abi.encode(RECEIPT_TYPEHASH, r.caseId, r.receipt, r.occurredAt));
    }

    function _hashCorrection(Correction calldata c) private pure returns (bytes32) {
        return keccak256(abi.encode(CORRECTION_TYPEHASH, c.targetSeq, c.reasonHash, c.occurredAt));
    }

    function _hashHolidayCalendar(HolidayCalendar calldata cal) private pure returns (bytes32) {
        // EIP-712 §Definition of encodeData: arrays of atomic values hash their 32-byte-padded elements.
        return keccak256(
            abi.encode(
                HOLIDAY_CALENDAR_TYPEHASH,
                cal.year,
                keccak256(abi.encodePacked(_widen(cal.holidays))),
                keccak256(abi.encodePacked(_widen(cal.workdays))),
                cal.occurredAt
            )
        );
    }

    function _widen(uint32[] calldata values) private pure returns (uint256[] memory widened) {
        widened = new uint256[](values.length);
        for (uint256 i = 0; i < values.length; ++i) {
            widened[i] = values[i];
        }
    }
}
