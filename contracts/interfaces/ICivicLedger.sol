// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Civic Ledger — the interface the outside world sees
/// @notice An append-only ledger of public-service commitments and of every case recorded under them.
/// Every entry advances an on-chain running hash and count, and emits an event carrying every public field
/// needed to rebuild state, plus the address that authorised it. No personal data is ever recorded:
/// case ids are opaque, and free text appears only as a hash.
/// @dev The encoding of each record is its EIP-712 `hashStruct`; the entry hash and running hash are
/// documented on {ICivicFilings-entryHashOf} and {runningHash}. The Python package mirrors them byte for byte.
interface ICivicLedger {
    // ------------------------------------------------------------------ enums

    /// @notice Kinds of ledger entry, in the order they were introduced. Stored as `uint8` in events.
    enum EntryKind {
        AgencyRegistered, // governance registered an agency
        SignerAuthorized, // governance authorised a signer key for an agency
        SignerRevoked, // governance revoked a signer key
        CommitmentPublished, // an agency published a commitment or a new version of one
        CommitmentRetired, // an agency retired a commitment
        CaseEvent, // an agency recorded an event of one of its cases
        Correction, // an agency voided one of its earlier entries, giving a reason
        HolidayCalendarPublished, // an agency published its jurisdiction's holiday calendar for a year
        ReceiptIssued, // an agency recorded the public key of the receipt it gave the citizen who opened a case
        CaseRated, // a receipt holder rated their closed case (relayed; the actor is the receipt key)
        CaseDisputed, // a receipt holder disputed the fulfilment of their case (relayed; the actor is the receipt key)
        BatchAnchored, // an agency anchored a Merkle batch of case events: `count` entries, one running-hash step
        AuditorAuthorized, // governance registered an auditor key (never an agency key)
        AuditorRevoked, // governance revoked an auditor key
        AuditAttested, // a registered auditor attested its audit of the ledger up to a block (relayed or direct)
        FilingRecorded, // a citizen filed a request, signed with their own receipt key (relayed; appended by CivicFilings)
        FilingAnswered, // the agency accepted a filing (its case opens, bound to it) or rejected it (by CivicFilings)
        ReceiptClaimed // the holder of an agency-issued receipt moved it to a key of their own (by CivicFilings)
    }

    /// @notice An audit's verdict. `None` (0) is never valid.
    enum AuditVerdict {
        None,
        Passed, // every check passed: zero findings
        Failed // the audit found `findings` findings
    }

    /// @notice Case life cycle actions. `None` (0) is never valid.
    enum CaseAction {
        None,
        Opened,
        Accepted,
        OnHold,
        Resumed,
        Escalated,
        Fulfilled,
        Rejected,
        Withdrawn,
        Reopened, // the agency reopened a closed case (its answer to a dispute, or on its own)
        DisputeRejected, // the agency answered a dispute by standing by the fulfilment; `detailsHash` is its reason
        Rectified // the agency rectified what a bad rating (1 or 2) pointed at (差评整改); `detailsHash` is its report;
        // valid on a rated receipt case only (the score is the auditor's and the metrics' to judge, not stored here)
    }

    /// @notice What the ledger tracks of a case that has a receipt. `None` (0): the case has no receipt.
    enum ReceiptCaseStatus {
        None,
        Open, // opened or reopened, not closed
        Fulfilled, // closed as fulfilled
        ClosedUnfulfilled // closed as rejected or withdrawn
    }

    /// @notice How a commitment's deadline is counted. `None` (0) is never valid.
    enum DeadlineUnit {
        None,
        CalendarHours, // hours on the clock, every day counts
        WorkingDays // working days of the agency's jurisdiction, per its published holiday calendars
    }

    // ---------------------------------------------------------------- records

    /// @notice A service commitment (promise), or a new version of one.
    struct Commitment {
        bytes32 commitmentId; // agency-scoped id of the commitment, stable across versions
        bytes32 serviceCode; // Open311-style service code, ASCII, right-padded with zero bytes
        string nameZh; // service name in Chinese (public)
        string nameEn; // service name in English (public)
        uint32 deadline; // amount of `deadlineUnit` within which a case must be fulfilled
        uint8 deadlineUnit; // a {DeadlineUnit}
        uint16 targetBps; // target on-time rate, in basis points (0..10000)
        uint64 validFrom; // unix seconds from which this version applies
        bytes32 termsHash; // keccak256 of the full published terms document
        uint64 occurredAt; // agency-claimed unix time of publication
    }

    /// @notice Retirement of a commitment: no case may be opened under it afterwards.
    struct Retirement {
        bytes32 commitmentId; // agency-scoped id of the commitment
        bytes32 reasonHash; // keccak256 of the published reason
        uint64 occurredAt; // agency-claimed unix time
    }

    /// @notice One event in the life of a case.
    struct CaseEvent {
        bytes32 caseId; // agency-scoped opaque case id (never derived from personal data without a secret salt)
        uint8 action; // a {CaseAction}
        uint64 occurredAt; // agency-claimed unix time at which the action happened
        bytes32 commitmentId; // commitment the case falls under; required for Opened, zero otherwise
        bytes32 district; // district code (no finer location), ASCII right-padded; Opened only, zero otherwise
        uint8 channel; // intake channel code (1 counter, 2 hotline, 3 web, 4 app, 5 mail, 6 proactive); Opened only
        bytes32 detailsHash; // keccak256 of off-chain details (documents, reasons); zero when none
    }

    /// @notice The public side of the receipt a citizen got when their case opened: the address of the key
    /// derived from the receipt's secret. Only cases whose id has its top bit set can have a receipt.
    struct Receipt {
        bytes32 caseId; // agency-scoped case id, top bit set (see {ICivicFilings-RECEIPT_CASE_FLAG})
        address receipt; // address of the receipt key
        uint64 occurredAt; // agency-claimed unix time the receipt was issued
    }

    /// @notice A receipt holder's rating of their closed case, signed with the receipt key (EIP-712).
    struct Rating {
        bytes32 agencyId; // the agency whose case it is
        bytes32 caseId; // the agency-scoped case id
        uint8 score; // 1 (worst) to 5 (best)
        bytes32 commentHash; // keccak256(salt ‖ comment) of the off-chain comment, or zero for none
    }

    /// @notice A receipt holder's dispute of a fulfilment, signed with the receipt key (EIP-712).
    struct Dispute {
        bytes32 agencyId; // the agency whose case it is
        bytes32 caseId; // the agency-scoped case id
        uint16 closure; // which closure of the case is disputed (1 for the first), so a dispute is never replayed
        bytes32 reasonHash; // keccak256(salt ‖ reason) of the off-chain reason, or zero for none
    }

    /// @notice The state the ledger keeps for a case opened with a receipt (one storage slot).
    struct ReceiptCase {
        address receipt; // the receipt key's address
        ReceiptCaseStatus status; // where the case stands
        uint16 closures; // how many times the case was closed
        uint40 closedAt; // block time of the last closure (0 while never closed)
        bool rated; // the receipt holder rated the case (at most once)
        bool disputed; // a dispute awaits the agency's answer
        uint16 disputedClosure; // the last closure disputed: each closure can be disputed once, so an answered
        // dispute cannot be replayed from its calldata
    }

    /// @notice Where a receipt key was last used to start or bind a case (all zero when never): its ReceiptIssued
    /// entry, or the module's FilingRecorded, FilingAnswered (acceptance) or ReceiptClaimed entry, and its block, so
    /// a citizen's key finds its case with one call and one log read, whatever the index knows.
    struct ReceiptIssuance {
        uint64 seq; // sequence number of the entry
        uint64 blockNumber; // the block it was recorded in (never zero once issued)
    }

    /// @notice An auditor's checkpoint: what it re-derived from the chain up to block `blockNumber` (its hash binds the
    /// checkpoint to one chain history; the EIP-712 domain binds it to this chain id and contract), and its verdict.
    struct Attestation {
        uint64 blockNumber; // the block audited up to (included): one of the last 256 blocks when recorded
        bytes32 blockHash; // that block's hash
        uint64 entryCount; // the ledger's entry count at that block, as the auditor re-derived it
        bytes24 runningHash; // the ledger's running hash at that block, as the auditor re-derived it
        bytes32 reportHash; // keccak256 of the audit's JSON report (served by the public API by this hash)
        uint8 verdict; // an {AuditVerdict}: Passed exactly when `findings` is zero
        uint32 findings; // how many findings the audit made
    }

    /// @notice A correction: voids an earlier entry of the same agency. The original stays visible.
    struct Correction {
        uint64 targetSeq; // sequence number of the entry being voided
        bytes32 reasonHash; // keccak256 of the published reason
        uint64 occurredAt; // agency-claimed unix time
    }

    /// @notice Non-working days and swapped working days of the agency's jurisdiction for one year.
    struct HolidayCalendar {
        uint16 year; // Gregorian year the calendar covers
        uint32[] holidays; // weekdays that are not working days, as days since 1970-01-01, strictly ascending
        uint32[] workdays; // weekend days that are working days, as days since 1970-01-01, strictly ascending
        uint64 occurredAt; // agency-claimed unix time of publication
    }

    // ----------------------------------------------------------------- events

    /// @notice Governance registered an agency.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency's public id
    /// @param jurisdiction the jurisdiction whose holiday calendars apply to the agency
    /// @param nameZh the agency's name in Chinese
    /// @param nameEn the agency's name in English
    /// @param actor the governance account that registered it
    event AgencyRegistered(
        uint256 indexed seq, bytes32 indexed agencyId, bytes32 jurisdiction, string nameZh, string nameEn, address actor
    );

    /// @notice Governance authorised `signer` to write for `agencyId`.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param signer the key now authorised
    /// @param actor the governance account that authorised it
    event SignerAuthorized(uint256 indexed seq, bytes32 indexed agencyId, address indexed signer, address actor);

    /// @notice Governance revoked `signer`, which may no longer write for `agencyId`.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency the key belonged to
    /// @param signer the key now revoked
    /// @param actor the governance account that revoked it
    event SignerRevoked(uint256 indexed seq, bytes32 indexed agencyId, address indexed signer, address actor);

    /// @notice An agency published a commitment (version 1) or a new version of it.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param commitmentId the commitment
    /// @param version 1 for the first publication, then 2, 3, …
    /// @param commitment every public field of the commitment
    /// @param signer the agency key that authorised the entry
    event CommitmentPublished(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed commitmentId,
        uint32 version,
        Commitment commitment,
        address signer
    );

    /// @notice An agency retired a commitment.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param commitmentId the commitment
    /// @param reasonHash keccak256 of the published reason
    /// @param occurredAt agency-claimed unix time
    /// @param signer the agency key that authorised the entry
    event CommitmentRetired(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed commitmentId,
        bytes32 reasonHash,
        uint64 occurredAt,
        address signer
    );

    /// @notice An agency opened a case.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @param commitmentId the commitment the case falls under
    /// @param occurredAt agency-claimed unix time the case was opened
    /// @param district district code
    /// @param channel intake channel code
    /// @param detailsHash keccak256 of off-chain details, or zero
    /// @param signer the agency key that authorised the entry
    event CaseOpened(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed caseId,
        bytes32 commitmentId,
        uint64 occurredAt,
        bytes32 district,
        uint8 channel,
        bytes32 detailsHash,
        address signer
    );

    /// @notice An agency recorded a later event of a case (any action but Opened).
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @param action the {CaseAction}
    /// @param occurredAt agency-claimed unix time of the action
    /// @param detailsHash keccak256 of off-chain details, or zero
    /// @param signer the agency key that authorised the entry
    event CaseUpdated(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed caseId,
        uint8 action,
        uint64 occurredAt,
        bytes32 detailsHash,
        address signer
    );

    /// @notice An agency voided one of its earlier entries.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param targetSeq the voided entry; it belongs to the same agency unless the auditor says otherwise
    /// @param reasonHash keccak256 of the published reason
    /// @param occurredAt agency-claimed unix time
    /// @param signer the agency key that authorised the entry
    event CorrectionRecorded(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        uint64 indexed targetSeq,
        bytes32 reasonHash,
        uint64 occurredAt,
        address signer
    );

    /// @notice An agency published the holiday calendar of its jurisdiction for one year.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param jurisdiction the agency's jurisdiction
    /// @param version 1 for the first calendar of that jurisdiction and year, then 2, 3, … (latest applies)
    /// @param calendar the calendar
    /// @param signer the agency key that authorised the entry
    event HolidayCalendarPublished(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed jurisdiction,
        uint32 version,
        HolidayCalendar calendar,
        address signer
    );

    /// @notice An agency recorded the receipt key of a case; from now on the ledger tracks the case's state.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @param receipt address of the receipt key
    /// @param occurredAt agency-claimed unix time of issue
    /// @param signer the agency key that authorised the entry
    event ReceiptIssued(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed caseId,
        address receipt,
        uint64 occurredAt,
        address signer
    );

    /// @notice The holder of a case's receipt rated the closed case. The agency answers a bad rating (1 or 2) with a
    /// `Rectified` case event (差评整改), which the ledger takes only for a rated case ({CaseNotRated}).
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @param score 1 to 5
    /// @param commentHash hash of the off-chain comment, or zero
    /// @param receipt the receipt key that signed (the entry's actor)
    event CaseRated(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed caseId,
        uint8 score,
        bytes32 commentHash,
        address receipt
    );

    /// @notice The holder of a case's receipt disputed its fulfilment; the agency must answer with a
    /// `Reopened` or `DisputeRejected` case event within {ICivicFilings-DISPUTE_RESPONSE_WINDOW}.
    /// @param seq sequence number of this entry
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @param closure the closure disputed
    /// @param reasonHash hash of the off-chain reason, or zero
    /// @param receipt the receipt key that signed (the entry's actor)
    event CaseDisputed(
        uint256 indexed seq,
        bytes32 indexed agencyId,
        bytes32 indexed caseId,
        uint16 closure,
        bytes32 reasonHash,
        address receipt
    );

    /// @notice An agency anchored a batch of `count` case events, kept off chain in a published batch file and
    /// committed to by `root`: they are entries `seq` to `seq + count - 1`. The running hash advances once, over
    /// the batch's entry hash (see {anchorBatch}); the count advances by `count`.
    /// @param seq sequence number of the batch's first entry
    /// @param agencyId the agency
    /// @param root Merkle root over the batch's leaves (OpenZeppelin standard tree; see {ICivicFilings-verifyBatchEntry})
    /// @param count number of entries in the batch
    /// @param fileHash keccak256 of the published batch file
    /// @param signer the agency key that anchored it
    event BatchAnchored(
        uint256 indexed seq, bytes32 indexed agencyId, bytes32 root, uint64 count, bytes32 fileHash, address signer
    );

    /// @notice Governance registered `auditor`, whose attestations the ledger now records.
    /// @param seq sequence number of this entry
    /// @param auditor the auditor key
    /// @param actor the governance account that registered it
    event AuditorAuthorized(uint256 indexed seq, address indexed auditor, address actor);

    /// @notice Governance revoked `auditor`: its earlier attestations stay; it can record no more.
    /// @param seq sequence number of this entry
    /// @param auditor the auditor key
    /// @param actor the governance account that revoked it
    event AuditorRevoked(uint256 indexed seq, address indexed auditor, address actor);

    /// @notice A registered auditor attested its audit of the ledger up to block `blockNumber`.
    /// @param seq sequence number of this entry
    /// @param auditor the auditor key that signed the attestation (the entry's actor)
    /// @param blockNumber the block audited up to
    /// @param blockHash that block's hash
    /// @param entryCount the entry count at that block the auditor re-derived
    /// @param runningHash the running hash at that block the auditor re-derived
    /// @param reportHash keccak256 of the audit's JSON report
    /// @param verdict an {AuditVerdict}
    /// @param findings how many findings the audit made
    event AuditAttested(
        uint256 indexed seq,
        address indexed auditor,
        uint64 indexed blockNumber,
        bytes32 blockHash,
        uint64 entryCount,
        bytes24 runningHash,
        bytes32 reportHash,
        uint8 verdict,
        uint32 findings
    );

    /// @notice `signer` invalidated every relayed signature with a nonce below `newNonce`.
    /// @param signer the key whose outstanding signatures are cancelled
    /// @param newNonce the next nonce a relayed signature of `signer` must carry
    event SignaturesCancelled(address indexed signer, uint256 newNonce);

    // ----------------------------------------------------------------- errors

    /// @notice The agency id is zero.
    error InvalidAgencyId();
    /// @notice The jurisdiction is zero.
    error InvalidJurisdiction();
    /// @notice An agency with this id is already registered.
    error AgencyAlreadyRegistered(bytes32 agencyId);
    /// @notice No agency with this id is registered.
    error UnknownAgency(bytes32 agencyId);
    /// @notice The signer address is zero.
    error InvalidSigner();
    /// @notice The signer is already authorised (for `agencyId`).
    error SignerAlreadyAuthorized(address signer, bytes32 agencyId);
    /// @notice The key is not, or no longer, authorised for any agency.
    error UnauthorizedSigner(address signer);
    /// @notice The relayed signature is not `signer`'s over this record, nonce and domain.
    error InvalidSignature(address signer);
    /// @notice The relayed signature's deadline has passed.
    error SignatureExpired(uint256 deadline, uint256 blockTime);
    /// @notice A signer may only move its nonce forward.
    error NonceNotIncreasing(uint256 current, uint256 requested);
    /// @notice The commitment does not exist for this agency.
    error UnknownCommitment(bytes32 agencyId, bytes32 commitmentId);
    /// @notice The commitment has been retired.
    error CommitmentIsRetired(bytes32 agencyId, bytes32 commitmentId);
    /// @notice A commitment field is out of range; `field` names it.
    error InvalidCommitment(bytes32 commitmentId, string field);
    /// @notice The case event is malformed; `field` names what is wrong.
    error InvalidCaseEvent(bytes32 caseId, string field);
    /// @notice The claimed time is zero or after the block's time.
    error InvalidOccurredAt(uint64 occurredAt, uint256 blockTime);
    /// @notice A correction must point at an earlier entry.
    error InvalidCorrectionTarget(uint64 targetSeq, uint256 entryCount);
    /// @notice The holiday calendar is malformed; `field` names what is wrong.
    error InvalidHolidayCalendar(uint16 year, string field);
    /// @notice A batch must hold at least one entry.
    error EmptyBatch();
    /// @notice The case already has a receipt; a case gets one receipt.
    error CaseAlreadyHasReceipt(bytes32 agencyId, bytes32 caseId);
    /// @notice Only a case whose id has its top bit set ({ICivicFilings-RECEIPT_CASE_FLAG}) can have a receipt; zero is no key.
    error InvalidReceipt(bytes32 caseId, address receipt);
    /// @notice The case was opened without a receipt, so nobody can rate or dispute it.
    error CaseHasNoReceipt(bytes32 agencyId, bytes32 caseId);
    /// @notice The event needs the receipt case in another status (`status` is where it stands).
    error InvalidReceiptCaseStatus(bytes32 agencyId, bytes32 caseId, ReceiptCaseStatus status);
    /// @notice The signature is not from the case's receipt key.
    error InvalidReceiptSignature(bytes32 agencyId, bytes32 caseId);
    /// @notice The score must be 1 to 5.
    error InvalidScore(uint8 score);
    /// @notice The case has been rated already; a case is rated at most once.
    error AlreadyRated(bytes32 agencyId, bytes32 caseId);
    /// @notice A batch needs a non-zero root, at least one entry, and the hash of its file.
    error InvalidBatch(bytes32 root, uint64 count, bytes32 fileHash);
    /// @notice A batch holds at most {ICivicFilings-MAX_BATCH_ENTRIES} entries.
    error BatchTooLarge(uint64 count, uint64 maximum);
    /// @notice A receipt key must be a plain key pair (the citizen's); `receipt` has contract code.
    error ReceiptKeyIsContract(bytes32 caseId, address receipt);
    /// @notice The receipt key was issued already (entry `seq`): a key serves one case only.
    error ReceiptKeyAlreadyUsed(address receipt, uint256 seq);
    /// @notice The dispute names another closure than the case's latest.
    error StaleClosure(uint16 closure, uint16 latest);
    /// @notice The dispute window after the fulfilment has passed.
    error DisputeWindowClosed(uint256 closedAt, uint256 blockTime);
    /// @notice The case has a dispute awaiting the agency's answer already, or this closure was disputed already.
    error AlreadyDisputed(bytes32 agencyId, bytes32 caseId);
    /// @notice `DisputeRejected` answers a dispute; the case has none awaiting an answer.
    error CaseNotDisputed(bytes32 agencyId, bytes32 caseId);
    /// @notice `Rectified` answers the receipt holder's rating; the case has none (no receipt, or not rated yet).
    error CaseNotRated(bytes32 agencyId, bytes32 caseId);
    /// @notice The key is an auditor key, which can never also be an agency key (or the other way round).
    error KeyRoleConflict(address key);
    /// @notice `auditor` is not a registered auditor (or already is one, when registering).
    error UnknownAuditor(address auditor);
    /// @notice `auditor`'s attestation is malformed or not recordable; `field` names what is wrong.
    error InvalidAttestation(address auditor, string field);

    // ------------------------------------------------------------- governance

    /// @notice Register an agency. Governance only.
    /// @param agencyId the agency's public id (non-zero, ASCII right-padded)
    /// @param jurisdiction the jurisdiction whose holiday calendars apply
    /// @param nameZh the agency's name in Chinese
    /// @param nameEn the agency's name in English
    function registerAgency(bytes32 agencyId, bytes32 jurisdiction, string calldata nameZh, string calldata nameEn)
        external;

    /// @notice Authorise `signer` to write for `agencyId`. Governance only.
    /// @param agencyId a registered agency
    /// @param signer an address not currently authorised for any agency
    function authorizeSigner(bytes32 agencyId, address signer) external;

    /// @notice Revoke `signer`. Governance only. Entries it wrote stay; it can write no more.
    /// @param signer a currently authorised key
    function revokeSigner(address signer) external;

    /// @notice Register `auditor`, whose attestations the ledger will record. Governance only. An agency key cannot be
    /// an auditor key ({KeyRoleConflict}).
    /// @param auditor a key that is neither an auditor nor an agency signer now
    function authorizeAuditor(address auditor) external;

    /// @notice Revoke `auditor`. Governance only. Its attestations stay; it can record no more.
    /// @param auditor a registered auditor
    function revokeAuditor(address auditor) external;

    /// @notice Record `auditor`'s signed attestation (EIP-712, ERC-1271 for contract auditors): anyone may relay it.
    /// Refused unless the auditor is registered, the block is one of the last 256 with that hash, later than the
    /// auditor's previous attestation, the entry count no more than the ledger's, and the verdict agrees with the
    /// findings count.
    /// @param attestation the checkpoint
    /// @param auditor the registered auditor that signed it
    /// @param signature its EIP-712 signature over `attestation`
    function recordAttestation(Attestation calldata attestation, address auditor, bytes calldata signature) external;

    // ----------------------------------------------------- agency: direct calls

    /// @notice Publish a commitment, or a new version of one already published by the caller's agency.
    /// @param commitment the commitment
    function publishCommitment(Commitment calldata commitment) external;

    /// @notice Retire a commitment of the caller's agency.
    /// @param retirement the retirement
    function retireCommitment(Retirement calldata retirement) external;

    /// @notice Record one case event for the caller's agency.
    /// @param caseEvent the event
    function recordCaseEvent(CaseEvent calldata caseEvent) external;

    /// @notice Record many case events for the caller's agency in one transaction, in order.
    /// @param caseEvents the events (at least one)
    function recordCaseEvents(CaseEvent[] calldata caseEvents) external;

    /// @notice Record the receipt key of a case of the caller's agency, issued when the case opened. A key serves
    /// one case only ({ReceiptKeyAlreadyUsed}) and must have no contract code ({ReceiptKeyIsContract}).
    /// @param receipt the receipt's public side
    function issueReceipt(Receipt calldata receipt) external;

    /// @notice Record the receipt keys of many cases of the caller's agency in one transaction.
    /// @param receipts the receipts (at least one)
    function issueReceipts(Receipt[] calldata receipts) external;

    /// @notice Anchor a batch of the caller's agency's case events, kept off chain: the batch's Merkle root, its
    /// entry count and the hash of the published batch file, in one transaction whatever the batch's size.
    /// @dev The entry hash folded into the running hash is `entryHash(seq, BatchAnchored, agencyId, signer,
    /// keccak256(abi.encode(BATCH_TYPEHASH, root, count, fileHash)))` with `seq` the batch's first entry; the
    /// count then grows by `count`. Leaves: `keccak256(bytes.concat(keccak256(abi.encode(uint256 index,
    /// bytes32 recordHash))))`, `index` the entry's position in the batch (its seq minus the batch's first seq),
    /// `recordHash` the case event's EIP-712 hashStruct — OpenZeppelin's standard Merkle tree over (uint256,bytes32).
    /// @param root the Merkle root
    /// @param count the number of entries in the batch (1 to {ICivicFilings-MAX_BATCH_ENTRIES})
    /// @param fileHash keccak256 of the batch file's bytes
    function anchorBatch(bytes32 root, uint64 count, bytes32 fileHash) external;

    /// @notice Void an earlier entry of the caller's agency.
    /// @param correction the correction
    function recordCorrection(Correction calldata correction) external;

    /// @notice Publish the holiday calendar of the caller's agency's jurisdiction for one year.
    /// @param calendar the calendar
    function publishHolidayCalendar(HolidayCalendar calldata calendar) external;

    /// @notice Invalidate every outstanding relayed signature of the caller with a nonce below `newNonce`.
    /// @param newNonce the next nonce; must be greater than the current one
    function cancelSignatures(uint256 newNonce) external;

    // ------------------------------------------------------------- the module

    /// @notice Append one entry for {FILINGS}, which alone may call this (anyone else: {UnauthorizedSigner}). The
    /// module checks its records before it calls; the ledger folds the entry into the one running hash and count.
    /// @dev When `receipt` is not zero, the key is marked as used by this entry ({receiptIssuance}); when `caseId` is
    /// not zero too, the receipt case `(agencyId, caseId)` is bound to that key and opened if it was not tracked yet.
    /// @param kind the entry kind (a filing, an answer or a receipt claim)
    /// @param agencyId the agency the entry is attributed to
    /// @param actor the key that authorised the entry
    /// @param recordHash EIP-712 hashStruct of the module's record
    /// @param caseId the receipt case the entry binds `receipt` to, or zero
    /// @param receipt the receipt key the entry uses, or zero
    /// @return seq the entry's sequence number
    function appendFromModule(
        EntryKind kind,
        bytes32 agencyId,
        address actor,
        bytes32 recordHash,
        bytes32 caseId,
        address receipt
    ) external returns (uint256 seq);

    // ---------------------------------------------- agency: relayed signatures
    // Each wrapper type signs the agency the key writes for, first: `RecordCaseEvent(bytes32 agencyId,CaseEvent
    // caseEvent,uint256 nonce,uint256 deadline)` and likewise for every other. A signature made while the key wrote for
    // one agency therefore never counts for another, whatever governance does with the key afterwards.


    /// @notice {publishCommitment} on behalf of `signer`, who signed the EIP-712 `PublishCommitment`.
    /// @param commitment the commitment
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the 65-byte signature (or an ERC-1271 signature when `signer` is a contract)
    function publishCommitmentBySig(
        Commitment calldata commitment,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {retireCommitment} on behalf of `signer`, who signed the EIP-712 `RetireCommitment`.
    /// @param retirement the retirement
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function retireCommitmentBySig(
        Retirement calldata retirement,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {recordCaseEvent} on behalf of `signer`, who signed the EIP-712 `RecordCaseEvent`.
    /// @param caseEvent the event
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function recordCaseEventBySig(
        CaseEvent calldata caseEvent,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {recordCaseEvents} on behalf of `signer`, who signed the EIP-712 `RecordCaseEvents` once for all.
    /// @param caseEvents the events (at least one)
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function recordCaseEventsBySig(
        CaseEvent[] calldata caseEvents,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {issueReceipt} on behalf of `signer`, who signed the EIP-712 `IssueReceipt`.
    /// @param receipt the receipt's public side
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function issueReceiptBySig(Receipt calldata receipt, address signer, uint256 deadline, bytes calldata signature)
        external;

    /// @notice {recordCorrection} on behalf of `signer`, who signed the EIP-712 `RecordCorrection`.
    /// @param correction the correction
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function recordCorrectionBySig(
        Correction calldata correction,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice {publishHolidayCalendar} on behalf of `signer`, who signed the EIP-712 `PublishHolidayCalendar`.
    /// @param calendar the calendar
    /// @param signer the agency key that signed
    /// @param deadline unix time after which the signature is void
    /// @param signature the signature
    function publishHolidayCalendarBySig(
        HolidayCalendar calldata calendar,
        address signer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    // ---------------------------------------------------- citizens: receipts

    /// @notice Record the receipt holder's rating of their closed case. Anyone may submit it (the service relays
    /// it, so the citizen pays nothing); only the case's receipt key can sign it; at most once per case.
    /// @param rating the rating
    /// @param signature the receipt key's 65-byte EIP-712 signature over `Rating`
    function rateCase(Rating calldata rating, bytes calldata signature) external;

    /// @notice Record the receipt holder's dispute of their fulfilled case, within {ICivicFilings-DISPUTE_WINDOW} of the
    /// fulfilment. Anyone may submit it; only the case's receipt key can sign it.
    /// @param dispute the dispute
    /// @param signature the receipt key's 65-byte EIP-712 signature over `Dispute`
    function disputeCase(Dispute calldata dispute, bytes calldata signature) external;

    // ------------------------------------------------------------------ views

    /// @notice The filings module this ledger created in its constructor: the only caller of {appendFromModule}.
    /// @return the module's address
    function FILINGS() external view returns (address);

    /// @notice Root of the batch whose first entry is `seq` (zero when no batch starts there).
    /// @param seq the batch's first sequence number
    /// @return the Merkle root
    function batchRoot(uint256 seq) external view returns (bytes32);

    /// @notice Whether `key` is a registered auditor now, and the block of its latest recorded attestation (0: none).
    /// @param key any address
    /// @return authorized whether it may record attestations
    /// @return lastBlock the `blockNumber` of its latest attestation
    function auditorState(address key) external view returns (bool authorized, uint64 lastBlock);

    /// @notice What the ledger tracks of a case opened with a receipt (all zero when it has none).
    /// @param agencyId the agency
    /// @param caseId the agency-scoped case id
    /// @return the tracked state
    function receiptCase(bytes32 agencyId, bytes32 caseId) external view returns (ReceiptCase memory);

    /// @notice Where the receipt key `receipt` was issued: its ReceiptIssued entry's seq and block (zero when never).
    /// @param receipt a receipt key's address
    /// @return the issuance
    function receiptIssuance(address receipt) external view returns (ReceiptIssuance memory);

    /// @notice Running hash over all entries: `h(0) = 0`, `h(n+1) = bytes24(keccak256(abi.encode(h(n), entryHash(n))))`.
    /// @dev 192 bits so that it shares one storage slot with the count (see CivicLedger's `LogHead`).
    /// @return the running hash after the last entry
    function runningHash() external view returns (bytes24);

    /// @notice Number of entries recorded; the next entry's sequence number.
    /// @return the count
    function entryCount() external view returns (uint256);

    /// @notice The agency `signer` is currently authorised for, or zero.
    /// @param signer a key
    /// @return agencyId the agency, or zero when not authorised
    function agencyOf(address signer) external view returns (bytes32 agencyId);

    /// @notice Public facts of a registered agency.
    /// @param agencyId the agency
    /// @return registered whether it is registered
    /// @return jurisdiction its jurisdiction
    /// @return signerCount how many keys are currently authorised for it
    function agency(bytes32 agencyId) external view returns (bool registered, bytes32 jurisdiction, uint32 signerCount);

    /// @notice Current state of a commitment of an agency.
    /// @param agencyId the agency
    /// @param commitmentId the commitment
    /// @return version latest version (0 when never published)
    /// @return retired whether it has been retired
    function commitmentState(bytes32 agencyId, bytes32 commitmentId)
        external
        view
        returns (uint32 version, bool retired);

    /// @notice Latest version of a jurisdiction's holiday calendar for `year` (0 when none).
    /// @param jurisdiction the jurisdiction
    /// @param year the year
    /// @return version the latest version
    function holidayCalendarVersion(bytes32 jurisdiction, uint16 year) external view returns (uint32 version);

    /// @notice The nonce the next relayed signature of `signer` must carry.
    /// @param signer a key
    /// @return the nonce
    function nonces(address signer) external view returns (uint256);
}
