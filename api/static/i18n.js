// Strings (Chinese and English) and number, time and duration formatting for the citizen page.
// The language is the reader's choice (kept in localStorage); until they choose, Chinese when the browser
// prefers Chinese, English otherwise. Times are shown in the jurisdiction's local time, UTC+8.

const STORAGE_KEY = "civic-ledger.lang";
export const LANGS = ["zh", "en"];
// A fixed offset, not a city's rules: the jurisdiction's published deadlines are counted in UTC+8.
export const TIME_ZONE = "Etc/GMT-8";
export const UTC_OFFSET_SECONDS = 8 * 3600;

const STRINGS = {
  en: {
    site_name: "Civic Ledger",
    tagline: "Public-service promises and how well they are kept, on a tamper-evident public ledger.",
    skip: "Skip to main content",
    nav_label: "Main",
    breadcrumbs: "Breadcrumb",
    nav_scorecards: "Scorecards",
    nav_case: "Case lookup",
    nav_log: "Raw log",
    lang_group: "Language",
    loading: "Loading…",
    error_title: "Something went wrong",
    load_error: "Could not load the data: {message}",
    retry: "Try again",
    none: "—",
    yes: "Yes",
    not_found_title: "Page not found",
    not_found_text: "There is no page at this address.",
    go_home: "Go to the scorecards",

    footer_time: "All times are the jurisdiction's local time (UTC+8).",
    footer_privacy: "No personal data is on the chain: case ids are opaque and free text is recorded only as a hash.",
    footer_api: "JSON API description",
    chain_title: "The chain this page reads",
    chain_id: "Chain id",
    contract: "Contract address",
    entry_count: "Entries",
    running_hash: "Running hash",
    last_block: "Last indexed block",
    finalized_block: "Finalized block",

    sc_title: "How agencies keep their promises",
    sc_intro:
      "Each agency publishes its service commitments and records every case on a public chain. " +
      "Every figure below is computed from that record, and anyone can recompute it.",
    filter: "Filter",
    from: "From",
    to: "To (inclusive)",
    district: "District code",
    channel: "Channel",
    any: "Any",
    apply: "Apply",
    reset: "Reset",
    sc_caption_agency: "Agency scorecards, {range}",
    sc_caption_commitment: "Commitments of {agency}, {range}",
    range_all: "all dates",
    range_from_to: "{from} to {to}",
    range_from: "from {from}",
    range_to: "up to {to}",
    col_agency: "Agency",
    col_commitment: "Commitment",
    col_opened: "Cases opened",
    col_closed: "Closed",
    col_target: "Target",
    col_median: "Median time to fulfil",
    col_p90: "90% fulfilled within",
    col_open: "Open now",
    col_overdue: "Overdue now",
    col_late: "Recorded > 24 h late",
    col_latency: "Median recording delay",
    col_rejection: "Rejection rate",
    col_rating: "Average rating",
    col_rating_response: "Rating response rate",
    col_disputes: "Disputes",
    col_unanswered: "Unanswered disputes",
    col_reopened: "Reopened",
    col_filings: "Requests filed",
    col_filings_accepted: "Filings accepted",
    col_filings_rejected: "Filings rejected",
    col_filings_late: "Filings answered late",
    col_filings_overdue: "Filings unanswered past 1 working day",
    filing_figures: "Citizens' filings",
    feed_case: "Follow this case in a feed reader (Atom)",
    feed_agency: "Follow this agency in a feed reader (Atom)",
    feed_commitment: "Follow this commitment in a feed reader (Atom)",
    col_ratings_by_origin: "Ratings by whose key signed them",
    origin_filed: "the filer's own",
    origin_claimed: "claimed from a printed code",
    origin_agency_issued: "printed by the agency",
    rating_count: "({n})",
    feedback_figures: "Citizens' ratings and disputes",
    distribution_caption: "Ratings by score ({n} ratings)",
    col_score: "Score",
    col_ratings: "Ratings",
    col_share: "Share",
    no_cases: "No cases in this selection.",
    below_target: "below target",
    meets_target: "meets target",
    // the figures a city publishes (figures.js), their samples, their explanations and the rankings
    "fig.deadline_rate": "On-time rate",
    "fig.response_rate": "Response rate",
    "fig.resolution_rate": "Resolution rate",
    "fig.satisfaction_rate": "Satisfaction rate",
    "fig.rating_coverage": "Rating coverage",
    "fig.rectification_rate": "Bad-rating rectification rate",
    "fig.on_time_rate": "On-time rate of fulfilled cases",
    "about.deadline_rate":
      "Of the cases whose deadline was met or missed, the share fulfilled by their due time. Counted against the " +
      "agency: cases fulfilled late, cases rejected or recorded withdrawn after their due time, and cases still open " +
      "past their due time at the counting time (time on hold, waiting for the citizen, does not count against the " +
      "deadline). Based on: the cases fulfilled in the period that had a due time, the cases rejected or withdrawn " +
      "late in the period, and the overdue open cases.",
    "about.on_time_rate":
      "The older figure, shown under the on-time rate: of the cases fulfilled in the period that had a due time, the " +
      "share fulfilled by it. Late rejections, withdrawals and overdue open cases are not in it, so an agency that " +
      "leaves its late cases open or closes them unfulfilled looks better by it.",
    "about.response_rate":
      "Of the cases opened in the period, the share the agency responded to within one working day (by the end of " +
      "the first working day after the day the case was opened). A response is the first acceptance, hold (asking " +
      "the citizen for something), fulfilment or rejection; an escalation or the citizen's withdrawal is not. Based " +
      "on: the cases responded to by the counting time or whose response was due before it; a case still within " +
      "its response time is not counted yet.",
    "about.resolution_rate":
      "Of the cases the agency answered in the period (fulfilled or rejected; a withdrawal is the citizen's decision " +
      "and is left out) that have a receipt, so that their citizen could dispute the answer, the share fulfilled and " +
      "not disputed before the counting time. A case disputed and then fulfilled again is not resolved; an agency " +
      "that gives no receipts has no resolution rate. Based on: the cases with a receipt fulfilled or rejected in " +
      "the period.",
    "about.satisfaction_rate":
      "Of the ratings citizens gave in the period, the share scoring 4 (satisfied) or 5 (very satisfied). Based on: " +
      "those ratings.",
    "about.rating_coverage":
      "Of the cases closed in the period (fulfilled, rejected or withdrawn), the share their citizen rated before " +
      "the counting time. Cases given no receipt cannot be rated and still count, so an agency that gives no " +
      "receipts shows it here. Based on: the cases closed in the period.",
    "about.rectification_rate":
      "A rating of 1 or 2 is a bad rating, and the agency must rectify it within 15 working days (by the end of the " +
      "15th working day after the day of the rating), recorded on the ledger as “Bad rating rectified”. Of the bad " +
      "ratings given in the period that were rectified before the counting time or whose rectification was due " +
      "before it, the share rectified in time. Based on: those bad ratings.",
    about_as_of:
      "The counting time is when open and overdue cases are counted and the answers still awaited are judged: the " +
      "end of the date range, or now if that is later or no end is chosen, unless you choose another day.",
    about_ranking:
      "Rankings put the highest rate first; equal rates share a rank (1, 2, 2, 4). A rate based on fewer than {n} " +
      "cases is not ranked: it is listed after the ranked ones.",
    figure_notes: "What these figures mean",
    counting_time: "Counting time",
    published_figures: "The figures the city publishes",
    other_figures: "More figures",
    col_late_rejections: "Rejected or withdrawn after the due time",
    col_bad_ratings: "Bad ratings (1 or 2)",
    of_sample: "of {n}",
    fulfilled_only: "fulfilled cases only:",
    sc_caption_more: "Agency scorecards: more figures, {range}",
    as_of: "Counted at the end of",
    sel_district: "district {district}",
    list_sep: ", ",
    label_sep: ": ",
    sel_as_of: "counted at the end of {date}",
    nav_rankings: "Rankings",
    rankings_link: "Rank agencies and commitments by each figure",
    rk_title: "Rankings",
    rk_intro:
      "Agencies or commitments in order of one published figure, for the selection below. The address keeps the " +
      "selection, so a ranking can be shared.",
    rk_by: "Rank",
    rk_by_agency: "Agencies",
    rk_by_commitment: "Commitments",
    rk_figure: "Rank by",
    rk_caption_agency: "Agencies ranked by {figure}, {selection}",
    rk_caption_commitment: "Commitments ranked by {figure}, {selection}",
    rk_empty: "Nothing to rank in this selection.",
    col_rank: "Rank",
    not_ranked: "not ranked: fewer than {n} cases",
    rank_of: "rank {rank} of {n}",

    jurisdiction: "Jurisdiction",
    agency_id: "Agency code",
    signers: "Authorised signing keys",
    signer: "Key (address)",
    signers_caption: "Every authorisation and revocation of the agency's keys, in ledger order",
    signer_change: "Change",
    authorized: "Authorised",
    revoked: "Revoked",
    commitments: "Service commitments",
    no_commitments: "This agency has published no commitments.",
    registered_proof: "Registration proof",

    commitment_id: "Commitment code",
    service_code: "Service code",
    deadline: "Deadline",
    hours: "{n} hours",
    working_days: "{n} working days",
    target: "Target on-time rate",
    valid_from: "Valid from",
    terms_hash: "Terms hash",
    status: "Status",
    in_force: "In force",
    retired: "Retired",
    versions: "Published versions",
    versions_caption: "Every version of this commitment, oldest first; a new version never changes an old one",
    version: "Version",
    published: "Published",
    trend_title: "On-time trend of fulfilled cases",
    bucket: "Period",
    bucket_day: "Day",
    bucket_week: "Week",
    chart_title: "Share of cases fulfilled on time per {bucket}, {range}",
    chart_desc:
      "Bar chart of {count} periods. Each bar is the share of the cases fulfilled in that period that were on time; " +
      "the dashed line is the target of {target}. Lowest: {min}; highest: {max}. The same figures are in the table below.",
    chart_desc_no_target: "Bar chart of {count} periods. Each bar is the share of the cases fulfilled in that period that were on time.",
    chart_empty: "No case was fulfilled in this range, so there is no on-time rate to draw.",
    chart_no_data: "no fulfilled case",
    chart_target: "target {target}",
    data_table: "The chart's figures as a table",
    trend_caption: "On-time rate of fulfilled cases per {bucket}",
    period_start: "Period starting",
    on_time_rate: "On-time rate of fulfilled cases",
    on_time: "Fulfilled on time",
    legend_meets: "at or above the target",
    legend_below: "below the target",
    eligible: "With a due time",

    case_title: "Look up a case",
    case_intro:
      "Choose the agency and enter the case id from your receipt. Every event recorded for the case is listed " +
      "with its proof on the chain.",
    case_id: "Case id",
    case_id_hint: "0x followed by 64 hexadecimal digits, as printed on the receipt.",
    case_id_invalid: "A case id is 0x followed by 64 hexadecimal digits (0–9, a–f).",
    choose_agency: "Choose an agency",
    agency_required: "Choose the agency that handles the case.",
    lookup: "Look up",
    case_not_found: "No case with this id is recorded by this agency.",
    nav_receipt: "Your receipt",
    receipt_title: "Your receipt",
    receipt_intro:
      "Enter the code printed on the receipt you were given when your case was opened, or open the link of its QR " +
      "code. The code stays in this browser: only the public key derived from it is used to find your case.",
    receipt_code: "Receipt code",
    receipt_code_hint: "20 letters and digits, as printed (XXXX-XXXX-XXXX-XXXX-XXXX): upper or lower case, with or without dashes.",
    code_bad_characters: "A receipt code has only digits and letters (never U): “{chars}” cannot be part of one.",
    code_bad_length: "A receipt code has 20 letters and digits; this one has {n}.",
    code_invalid: "This is not a receipt code.",
    receipt_not_found: "No case has this receipt. Check the code; a receipt issued in the last few minutes may not be found yet.",
    receipt_key: "Receipt key (public address)",
    receipt_issued: "Receipt issued",
    receipt_privacy:
      "Keep your code to yourself: whoever has it can rate your case. It never leaves this browser; the ledger " +
      "knows only its public key.",
    receipt_other: "Look up another receipt",
    feedback_title: "Rate or dispute",
    "feedback_source.index_lacks_receipt":
      "Read from the ledger's chain itself: the public index has not caught up with this case yet, so its events " +
      "are not listed here. What you may do now is what the chain says; the rest appears once the index catches up.",
    "feedback_source.index_behind":
      "Read from the ledger's chain itself: the public index is behind this case's latest change, so the events " +
      "listed may be incomplete. What you may do now is what the chain says.",
    rating_title: "Rate the service",
    dispute_title: "Dispute the fulfilment",
    "rate_refusal.claimed": "This receipt was moved to another key (claimed): only that key can rate or dispute the case now. If you did not claim it, whoever held this printed code did.",
    "rate_refusal.not_closed": "You can rate the service once the agency has closed your case.",
    "rate_refusal.already_rated": "This case has been rated: each case is rated once.",
    "rate_refusal.rating_pending": "Your rating is being recorded on the ledger.",
    "dispute_refusal.claimed": "This receipt was moved to another key (claimed): only that key can dispute the case now.",
    "dispute_refusal.not_closed": "If the agency marks your case fulfilled when it is not, you can dispute it here within {days} days.",
    "dispute_refusal.not_fulfilled": "Only a case marked fulfilled can be disputed; this one was closed otherwise.",
    "dispute_refusal.already_disputed": "Your dispute awaits the agency's answer.",
    "dispute_refusal.closure_disputed": "You disputed this fulfilment and the agency answered, standing by it. Each closing of a case can be disputed once.",
    "dispute_refusal.dispute_window_closed": "The {days} days to dispute this fulfilment have passed.",
    "dispute_refusal.dispute_pending": "Your dispute is being recorded on the ledger.",
    score_legend: "How satisfied are you with the service?",
    "score.1": "Very dissatisfied",
    "score.2": "Dissatisfied",
    "score.3": "Neutral",
    "score.4": "Satisfied",
    "score.5": "Very satisfied",
    score_of: "{score} of 5",
    score_required: "Choose a score from 1 to 5.",
    comment_label: "Comment (optional)",
    comment_hint:
      "Kept by this service, never on the ledger: only a salted fingerprint (hash) of it is recorded. Please write " +
      "no names or phone numbers.",
    publish_consent: "Show my text publicly on this page",
    send_rating: "Send rating",
    reason_label: "What is still wrong? (optional)",
    reason_hint: "Kept by this service, never on the ledger: only a salted fingerprint (hash) of it is recorded.",
    dispute_intro:
      "Marked fulfilled but not done? You can dispute it until {deadline}. The agency must then reopen the case or " +
      "say why it stands by the fulfilment.",
    send_dispute: "Send dispute",
    sending: "Signing with your receipt key and sending…",
    rating_recorded: "Thank you. Your rating is recorded on the public ledger as entry #{seq}.",
    rating_accepted: "Thank you. Your rating was accepted and is being recorded on the public ledger.",
    dispute_recorded: "Your dispute is recorded on the public ledger as entry #{seq}. The agency must answer it.",
    dispute_accepted: "Your dispute was accepted and is being recorded on the public ledger.",
    relay_failed: "The ledger refused it ({name}).",
    "kind_word.rating": "rate",
    "kind_word.dispute": "dispute",
    "refusal.forged_signature":
      "Refused: the signature does not match this case's receipt. Only the code on the case's own receipt can {kind} it.",
    "refusal.already_rated": "Refused: this case has already been rated. Each case can be rated only once.",
    "refusal.duplicate": "Refused: this was sent already.",
    "refusal.not_closed": "Refused: the case is not closed yet. You can rate it once the agency has closed it.",
    "refusal.not_fulfilled": "Refused: only a case marked fulfilled can be disputed.",
    "refusal.already_disputed": "Refused: a dispute of this case already awaits the agency's answer.",
    "refusal.closure_disputed": "Refused: this fulfilment was disputed once already and the agency answered. Each closing of a case can be disputed once.",
    "refusal.stale_closure": "Refused: the case has changed since this page was loaded. Reload it and try again.",
    "refusal.dispute_window_closed": "Refused: the time to dispute this fulfilment has passed.",
    "refusal.unknown_receipt": "Refused: no receipt is recorded for this case.",
    "refusal.rate_limited": "Too many attempts from this connection: wait a minute and try again.",
    "refusal.node_unavailable": "The ledger cannot be reached right now: try again later.",
    "refusal.write_unavailable": "This site cannot record ratings right now: try again later.",
    refusal_other: "Not sent: {message}",
    no_chain: "this site is not connected to a ledger",
    your_rating: "Your rating",
    rated_at: "Rated",
    comment: "Comment",
    comment_private: "Given, not published",
    comment_none: "None",
    disputes_caption: "Your disputes and the agency's answers",
    col_closure: "Closure",
    disputed_at: "Disputed",
    reason: "Reason",
    answer_due: "Answer due",
    answer: "Answer",
    "answer.reopened": "Reopened the case",
    "answer.dispute_rejected": "Stood by the fulfilment",
    answer_waiting: "Awaiting the answer",
    answer_overdue: "No answer: overdue",
    case_heading: "Case",
    opened_at: "Opened",
    due_at: "Due",
    closed_at: "Closed",
    hold_time: "Time on hold (not counted)",
    fulfil_time: "Time to fulfil (hold excluded)",
    on_time_q: "On time",
    on_time_yes: "Yes, fulfilled by the due time",
    on_time_no: "No, fulfilled after the due time",
    responded_at: "First response by the agency",
    response_due: "Response due by (1 working day)",
    rectification_due: "Rectification of the bad rating due by (15 working days)",
    rectified_at: "Bad rating rectified on",
    in_time: "in time",
    late_word: "late",
    not_responded: "not yet",
    not_rectified: "not yet",
    past_due: "past its due time",
    escalated: "Escalated",
    invalid_transitions: "Events out of order (flagged for the auditor)",
    events: "Events",
    events_caption: "Every event recorded for this case, in the order recorded",
    col_event: "Event",
    col_occurred: "Happened (agency's claim)",
    col_recorded: "Recorded on chain",
    col_latency_short: "Recording delay",
    col_proof: "Proof",
    proof_link: "Proof of entry #{seq}",
    voided: "voided by correction #{seq}",
    late_note: "recorded more than 24 hours after it happened",

    proof_title: "Proof of entry #{seq}",
    proof_intro:
      "This entry is part of a transaction on a public chain. You do not need to trust this site: ask any node of " +
      "the chain for the transaction's receipt and compare it with the figures below.",
    proof_fields: "Where the entry is",
    seq: "Sequence number",
    kind: "Kind",
    tx_hash: "Transaction hash",
    block_number: "Block",
    block_hash: "Block hash",
    block_time: "Block time",
    log_index: "Log index",
    entry_hash: "Entry hash",
    record_hash: "Record hash",
    actor: "Signed by",
    occurred_at: "Happened (claimed)",
    final: "Final",
    final_yes: "Yes: its block is at or below the finalized block",
    final_no: "Not yet: its block could still be reorganised",
    how_to_check: "How to check it yourself",
    check_1: "Connect to any node of the chain with id {chain_id} (your own, or a public one).",
    check_2: "Call eth_getTransactionReceipt with the transaction hash (the request is below).",
    check_3:
      "The receipt must be in block {block}, and its log with index {log_index} must come from the contract " +
      "{contract} and carry the entry hash {entry_hash}.",
    check_4:
      "The contract keeps a count of entries and a running hash over all of them; the figures below must match " +
      "the contract's: a missing, reordered or altered entry would change them.",
    rpc_request: "JSON-RPC request",
    proof_json: "The proof as JSON",
    copy_json: "Copy JSON",
    copied: "Copied to the clipboard.",
    copy_failed: "Could not copy: select the text and copy it.",
    back_to_case: "Back to the case",
    in_batch: "in batch",
    merkle_proof: "Merkle proof",
    batch_file: "file",
    batch_link: "Batch #{seq}",
    batch_section: "In a Merkle-anchored batch",
    batch_intro:
      "This record was written together with others in one batch. The chain holds the batch's Merkle root, entry " +
      "count and file hash; the Merkle proof below ties this record to that root. The transaction above is the " +
      "batch's anchoring.",
    batch_no: "Batch (first entry)",
    batch_index: "Position in the batch",
    batch_root: "Merkle root",
    batch_count: "Entries in the batch",
    batch_file_hash: "File hash",
    batch_file_link: "Download the batch file",
    merkle_proof_hashes: "Merkle proof ({n} hashes, from the record up)",
    proof_unavailable: "No Merkle proof for now: {reason}",
    verify_here: "Check the proof in this browser",
    verify_ok: "The proof leads from this record's hash to the anchored root: the record is in the batch.",
    verify_bad: "The proof does not lead to the anchored root.",
    batch_check_3:
      "The receipt must be in block {block}, and its log with index {log_index} must be the contract {contract}'s " +
      "BatchAnchored log of batch {batch} with root {root}.",
    batch_check_4:
      "Call the view verifyBatchEntry({batch}, {index}, record hash, Merkle proof) of the ledger's filings module {module}: it must return true. " +
      "Or download the batch file, check that its keccak256 is the file hash, and rebuild its tree (OpenZeppelin's " +
      "standard Merkle tree): its root must be the anchored one.",
    batches_title: "Merkle-anchored batches",
    batches_intro:
      "Agencies with many cases write them in batches: one transaction anchors a batch's Merkle root, entry count " +
      "and file hash, and every record in it can be proved on its own.",
    batches_caption: "Batches, oldest first",
    batches_empty: "No batch has been anchored.",
    batches_link: "Merkle-anchored batches",
    col_batch: "Batch",
    col_entries: "Entries",
    col_root: "Merkle root",
    col_file: "File",
    batch_title: "Batch #{seq}",
    batch_view_intro:
      "A batch of case events anchored in one transaction: the chain holds its Merkle root, its entry count and the " +
      "keccak256 of its file. Its records are entries #{seq} to #{last}.",
    batch_entries: "Entries",
    batch_range: "#{seq} to #{last} ({n})",
    batch_signer: "Anchored by key",
    batch_record_hash: "Batch record hash",
    batch_entry_hash: "Batch entry hash (folded into the running hash once)",
    batch_running_hash: "Running hash after the batch",
    batch_file_state: "Batch file",
    batch_file_missing: "Not available from this service yet",
    batch_anchor_row: "Batch #{seq} anchored: {n} entries, root {root}",
    batch_badge: "batch #{seq}",
    audit_line: "Independently audited up to block {block} by {auditors}",
    audit_auditors_one: "1 auditor",
    audit_auditors_many: "{n} auditors",
    audit_passed: " — passed",
    audit_findings_one: " — 1 finding",
    audit_findings_many: " — {n} findings",
    audit_none: "Not yet independently audited",
    audit_not_matching_one: "1 auditor's latest attestation does not match the ledger",
    audit_not_matching_many: "{n} auditors' latest attestations do not match the ledger",
    audit_details: "Attestations and reports",
    audits_title: "Independent audits",
    audits_intro:
      "Auditors registered by the city's governance check the whole ledger against the chain and sign what they " +
      "found: the block they checked up to, the entry count and running hash there, their verdict and the hash of " +
      "their report. The signed attestation is itself recorded on the ledger. This service checks that each " +
      "attestation's count and running hash are the ledger's.",
    audits_current_caption: "Registered auditors and their latest attestation",
    audits_all_caption: "Every attestation, oldest first",
    audits_empty: "No attestation has been recorded.",
    audits_no_auditor: "No auditor is registered.",
    col_auditor: "Auditor",
    col_audited_block: "Audited up to block",
    col_verdict: "Verdict",
    col_findings: "Findings",
    col_matches: "Matches the ledger",
    col_report: "Report",
    verdict_passed: "passed",
    verdict_failed: "failed",
    matches_yes: "yes",
    matches_no: "no",
    matches_unknown: "not checked yet",
    report_link: "report (JSON)",
    report_missing: "not published here",
    no_attestation: "none yet",
    auditor_revoked: "revoked",
    audits_link: "Independent audits",
    batches_withheld: "Withheld batches",
    withheld_none: "none",
    withheld_count: "{n} batches ({entries} entries)",
    batch_indexed: "indexed",
    withheld_missing: "withheld: file missing",
    withheld_impossible: "withheld for ever: file does not match",
    withheld_title: "Withheld batches",
    withheld_intro:
      "This agency anchored {n} batches on chain whose published file is missing or does not match what was " +
      "anchored. Their {entries} entries are counted on the ledger but cannot be shown or checked, so they are not " +
      "in the figures. Everything else is indexed as usual.",
    withheld_caption: "Batches whose entries are withheld",
    col_withheld: "State",
    col_reason: "Why",
    withheld_missing_intro:
      "The file of this batch has not been published: its entries are withheld. They appear at their place once " +
      "the agency publishes the file it anchored.",
    withheld_impossible_intro:
      "The file published under this batch's hash does not match what the agency anchored, and no other file can: " +
      "its entries are withheld for ever.",
    not_applied: "not applied",
    not_applied_why:
      "Written in a batch for a case with a receipt: the ledger tracks such a case event by event, so a batched " +
      "event does not change it.",

    log_title: "The raw ledger log",
    log_intro:
      "Every entry in the order it was recorded, with its proof. Nothing is ever edited or deleted: a correction " +
      "is a new entry that points at the old one, which stays visible.",
    log_caption: "Ledger entries, oldest first",
    col_seq: "#",
    col_kind: "Kind",
    col_agency_short: "Agency",
    col_block: "Block",
    col_recorded_short: "Recorded",
    col_tx: "Transaction",
    col_entry_hash: "Entry hash",
    load_more: "Load more",
    log_count: "{n} entries shown.",
    log_end: "This is the end of the log.",
    log_empty: "The log is empty.",

    "status.open": "Open",
    "status.on_hold": "On hold (waiting for the citizen)",
    "status.fulfilled": "Fulfilled",
    "status.rejected": "Rejected",
    "status.withdrawn": "Withdrawn",
    "action.1": "Opened",
    "action.2": "Accepted",
    "action.3": "Put on hold",
    "action.4": "Resumed",
    "action.5": "Escalated",
    "action.6": "Fulfilled",
    "action.7": "Rejected",
    "action.8": "Withdrawn",
    "action.9": "Reopened",
    "action.10": "Dispute rejected",
    "action.11": "Bad rating rectified",
    "kind.0": "Agency registered",
    "kind.1": "Key authorised",
    "kind.2": "Key revoked",
    "kind.3": "Commitment published",
    "kind.4": "Commitment retired",
    "kind.5": "Case event",
    "kind.6": "Correction",
    "kind.7": "Holiday calendar",
    "kind.8": "Receipt issued",
    "kind.9": "Rating",
    "kind.10": "Dispute",
    "kind.11": "Batch anchored",
    "kind.12": "Auditor registered",
    "kind.13": "Auditor revoked",
    "kind.14": "Audit attested",
    "channel.1": "Service counter",
    "channel.2": "Hotline",
    "channel.3": "Website",
    "channel.4": "Mobile app",
    "channel.5": "Mail",
    "channel.6": "Found by staff",
    "unit.day": "day",
    "unit.week": "week",
    dur_d: "{n} d",
    dur_h: "{n} h",
    dur_min: "{n} min",
    dur_s: "{n} s",
    dur_sep: " ",
    dur_negative: "{d} early",
    // filing a request (views/file.js) and claiming a printed receipt (views/receipt.js)
    nav_file: "File a request",
    "kind.15": "Request filed",
    "kind.16": "Request answered",
    "kind.17": "Receipt claimed",
    file_title: "File a request",
    file_intro:
      "Tell an agency about a problem it has promised to handle — a dark streetlight, a broken pavement. Your request " +
      "is recorded on the public ledger at once, so the time the agency takes is counted from the moment you send it.",
    file_no_chain: "This site is not connected to a ledger, so it cannot take requests now.",
    file_unknown_agency: "No agency with the code “{agency}” is registered. Choose one from the list.",
    file_privacy_title: "What goes where",
    file_privacy_ledger_label: "On the public ledger:",
    file_privacy_ledger:
      "only the agency, the service, the district code, the channel (this website), a key made in this browser, and " +
      "a fingerprint (hash) of what you write. Never your words, your address, your photos or how to reach you.",
    file_privacy_agency_label: "Kept by this service for the agency you ask:",
    file_privacy_agency: "your description, the address and point, your photos and your contact details. Nobody else sees them.",
    file_privacy_you_label: "Kept only by you:",
    file_privacy_you: "your receipt code, made in this browser and never sent to this site. It is the only way to follow, rate or dispute your request.",
    file_commitment: "Service",
    file_commitment_hint: "The agency's published promise your request falls under.",
    file_choose_commitment: "Choose a service",
    file_no_commitments: "Choose an agency first",
    file_commitment_required: "Choose the service your request falls under.",
    file_district_hint: "The district code as the agency uses it: letters, digits and marks such as - or _, no spaces, at most 32 (for example EAST).",
    file_district_invalid: "A district code has 1 to 32 letters, digits or marks (such as - or _), and no spaces.",
    file_description: "What is wrong?",
    file_description_hint: "At most {n} characters. Shown to the agency only.",
    file_description_required: "Say what is wrong: the description is empty.",
    file_address: "Address or place (optional)",
    file_address_hint: "Where it is, in words: a street and number, a landmark.",
    file_point: "Point on the map (optional)",
    file_point_hint: "Decimal degrees, both or neither (for example 31.2304 and 121.4737).",
    file_lat: "Latitude",
    file_long: "Longitude",
    file_lat_invalid: "Latitude is decimal degrees between -90 and 90, with at most 10 decimals (for example 31.2304).",
    file_long_invalid: "Longitude is decimal degrees between -180 and 180, with at most 10 decimals (for example 121.4737).",
    file_point_both: "A point has both a latitude and a longitude: give both, or neither.",
    file_locate: "Use my current location",
    file_locating: "Finding your location…",
    file_located: "Your location is filled in. Check it before sending.",
    file_locate_failed: "Your location could not be found. Type the point, or leave it out.",
    file_locate_unavailable: "This browser cannot give your location. Type the point, or leave it out.",
    file_photos: "Photos (optional, up to {n})",
    file_photos_hint:
      "Each photo is made smaller in this browser before it is sent (at most 1600 pixels wide, as JPEG). That also " +
      "removes the hidden data a camera adds, such as where the photo was taken.",
    file_photos_chosen: "Photos to send",
    file_photo_line: "Photo {n}: {w} × {h} pixels, {kb} KB",
    file_photo_alt: "Photo {n}",
    file_photo_remove: "Remove",
    file_photos_too_many: "At most {n} photos can be sent with a request.",
    file_photo_unreadable: "“{name}” could not be read as a picture. Choose a JPEG, PNG or WebP photo.",
    file_photo_too_large: "“{name}” stays too large to send even when made smaller. Choose another photo.",
    file_contact: "How the agency can reach you (optional)",
    file_contact_note: "Shown only to the agency you ask, so it can reach you about this request. Never on the ledger, never published.",
    file_phone: "Phone",
    file_email: "Email",
    file_email_invalid: "This is not an email address (it needs an @).",
    file_too_long: "Too long: at most {n} characters.",
    file_before_send:
      "When you send, this browser makes your receipt key, does a few seconds of work that keeps this free service " +
      "from being flooded, signs your request and sends it. Your receipt code is shown next, once.",
    file_send: "Sign and send",
    file_work_label: "Preparing your request",
    file_working: "Making your key and doing the small proof of work…",
    file_work_progress: "{done} of about {expected} tries",
    file_sending: "Sending your signed request…",
    file_code_title: "Your receipt code: write it down now",
    file_code_intro:
      "Your request was taken. This code is your receipt: with it you follow your request, and rate or dispute the " +
      "agency's work. It is shown this once.",
    code_once_label: "Receipt code: {code}",
    code_once_only_you: "Only you have it: this site did not keep it, and the ledger knows only the key made from it.",
    code_once_secret: "Whoever has the code can rate or dispute your case: keep it to yourself.",
    code_once_lost: "A lost code cannot be recovered or issued again.",
    code_once_print: "Print the code",
    code_once_written: "I have written down or printed my receipt code",
    code_once_confirm_first: "First confirm that you have written down or printed your code: it will not be shown again.",
    code_once_continue: "Continue",
    file_pending_title: "Your request is being recorded",
    file_recorded_title: "Your request is on the public ledger",
    file_seq_pending: "Being recorded on the ledger…",
    file_due_pending: "Shown once the public index has your request (usually within a minute)",
    file_due_note:
      "The agency must accept or reject your request by the answer's due time. If it accepts, your case opens with " +
      "its clock started when you sent the request.",
    file_receipt_link: "Follow your request on your receipt page",
    file_receipt_link_hint: "The link holds your receipt code: bookmark it only on a device that is yours.",
    file_another: "File another request",
    filing_number: "Request number",
    filing_filed_at: "Filed",
    filing_answer_due: "Answer due",
    filing_awaiting: "Awaiting the agency's answer",
    filing_overdue: "Not answered in time: overdue",
    "filing_decision.accepted": "Accepted: its case is open",
    "filing_decision.duplicate": "Rejected: a duplicate of another case",
    "filing_decision.out_of_scope": "Rejected: not the agency's to handle",
    "filing_decision.spam": "Rejected as spam",
    filing_heading: "Your request #{seq}",
    filing_note_awaiting: "The agency has not answered yet. Once it accepts your request, this page shows its case: come back with your code.",
    filing_note_accepted: "Accepted. Its case appears here as soon as the public index has it: reload in a minute.",
    filing_note_rejected:
      "{decision}. The agency must publish its reason; the ledger holds the reason's fingerprint (hash), so the text " +
      "it publishes can be checked.",
    "filing_refusal.network": "Not sent: the connection failed. Your request is kept on this page: try again.",
    "filing_refusal.rate_limited": "Too many requests from this connection: wait a minute and send again.",
    "filing_refusal.body_too_large": "Refused: the request with its photos is too large. Remove a photo and send again.",
    "filing_refusal.invalid_json": "Refused: the service could not read the request. Reload the page and try again.",
    "filing_refusal.invalid_body": "Refused: the service does not take the request as written ({message}).",
    "filing_refusal.work_missing":
      "Refused: the proof of work is missing or short (the service asks for {bits} bits). Reload the page and send again.",
    "filing_refusal.content_mismatch":
      "Refused: what was sent does not match its fingerprint. Nothing was recorded; reload the page and send again.",
    "filing_refusal.bad_signature": "Refused: the signature could not be read. Reload the page and send again.",
    "filing_refusal.forged_signature": "Refused: the signature is not by the request's own key. Reload the page and send again.",
    "filing_refusal.duplicate": "This request was taken already.",
    "filing_refusal.unknown_agency": "Refused: this agency is not registered on the ledger. Choose another one.",
    "filing_refusal.unknown_commitment": "Refused: the agency has published no such service. Choose another one.",
    "filing_refusal.commitment_retired":
      "Refused: the agency has retired this service since the page was loaded. Reload the page and choose a service in force.",
    "filing_refusal.receipt_in_use": "Refused: this receipt key was used before. Send again: a new key will be made.",
    "filing_refusal.filing_queue_full":
      "This agency has too many requests waiting to be recorded right now. Your request is kept on this page: send it again in a few minutes.",
    "filing_refusal.filing_budget_exhausted":
      "This agency has taken as many requests as it can today. Your request is kept on this page: send it again later.",
    "filing_refusal.citizen_queue_full": "Too many citizens' records are waiting to be recorded right now: try again in a few minutes.",
    "filing_refusal.refused_by_ledger": "Refused by the ledger ({message}).",
    "filing_refusal.node_unavailable": "The ledger cannot be reached right now. Your request is kept on this page: try again later.",
    "filing_refusal.write_unavailable": "This site cannot record requests right now. Your request is kept on this page: try again later.",
    "filing_refusal.unavailable": "The service is unavailable right now: try again later.",
    "filing_refusal.internal_error": "The service failed to take it. Try again later.",
    filing_refusal_other: "Not sent: {message}",
    receipt_claimed_at: "Claimed",
    claim_title: "Make this receipt yours",
    claim_intro:
      "This code was printed by the agency, so the agency may still have it: anything done with it could have been " +
      "done by the agency itself.",
    claim_how:
      "Make it yours: this browser makes a new receipt code that only you will have, and moves the case to its key. " +
      "The printed code stops working for rating and disputing, for you and for anyone else who has it.",
    claim_button: "Make it mine",
    claim_signing: "Making your new key, signing with both codes and sending…",
    claim_used_before: "This receipt has been used already:",
    claim_used_before_why:
      "If you did not do this, someone else who had this printed code did — possibly the agency that printed it. " +
      "A claim moves the case to your key from now on; it does not undo what was done before.",
    claim_used_before_claim: "This receipt was used before it was claimed:",
    claim_used_before_claim_why:
      "That was done with the printed code, before the claim — by whoever had it then, possibly the agency that " +
      "printed it. It stands; from the claim on, only the claimed key can rate or dispute the case.",
    claim_used_rating: "The case was rated {score} of 5 on {time}.",
    claim_used_rated: "The case was rated.",
    claim_used_dispute: "The fulfilment was disputed on {time}.",
    claim_used_pending: "A rating or dispute made with this code is being recorded.",
    claim_code_title: "Your new receipt code: write it down now",
    claim_code_intro: "The claim was taken and is being recorded. From now on only this new code can rate or dispute the case. It is shown this once.",
    claim_code_intro_recorded:
      "The claim is recorded on the public ledger as entry #{seq}. From now on only this new code can rate or dispute " +
      "the case; the printed code no longer can. It is shown this once.",
    claim_away_title: "This receipt was claimed",
    claim_away:
      "This printed receipt was claimed: the case was moved to another key ({key}), and this code can no longer rate " +
      "or dispute it. If you did not claim it, someone else who had this printed code did — possibly before it reached you.",
    claim_held_title: "A claimed receipt",
    claim_held: "You hold this case by claiming its printed receipt; only your code can rate or dispute it now. The claim:",
    "claim_refusal.already_claimed":
      "Refused: this receipt was claimed already, by you or by someone else who had the printed code. Reload the page to see which key holds it.",
    "claim_refusal.unknown_receipt": "Refused: the ledger has no receipt for this case.",
    "claim_refusal.forged_signature":
      "Refused: this code is not the case's receipt key any more. Reload the page to see who holds it.",
    "claim_refusal.receipt_in_use": "Refused: the new key was used before. Try again: another one will be made.",
    rating_before_claim: "Rating given with the printed code, before the claim",
    claim_feedback_moved: "This printed code no longer rates or disputes the case: your new code does. Continue with it.",
  },
  zh: {
    site_name: "民生承诺公开账本",
    tagline: "公共服务承诺及其兑现情况，记录在防篡改的公开账本上。",
    skip: "跳到主要内容",
    nav_label: "主导航",
    breadcrumbs: "页面路径",
    nav_scorecards: "兑现情况",
    nav_case: "办件查询",
    nav_log: "原始日志",
    lang_group: "语言",
    loading: "正在加载…",
    error_title: "出错了",
    load_error: "数据加载失败：{message}",
    retry: "重试",
    none: "—",
    yes: "是",
    not_found_title: "页面不存在",
    not_found_text: "此地址没有页面。",
    go_home: "返回兑现情况",

    footer_time: "所有时间均为当地时间（UTC+8）。",
    footer_privacy: "链上没有任何个人信息：办件编号不含身份信息，文字内容只以哈希值记录。",
    footer_api: "JSON 接口说明",
    chain_title: "本页读取的区块链",
    chain_id: "链 ID",
    contract: "合约地址",
    entry_count: "条目总数",
    running_hash: "累积哈希",
    last_block: "已索引至区块",
    finalized_block: "已确认区块",

    sc_title: "各部门承诺兑现情况",
    sc_intro: "各部门公开服务承诺，并把每一件办件记录在公开的区块链上。下列数字均由这些记录计算得出，任何人都可以重新计算核验。",
    filter: "筛选",
    from: "起始日期",
    to: "截止日期（含当日）",
    district: "区域代码",
    channel: "受理渠道",
    any: "全部",
    apply: "应用",
    reset: "重置",
    sc_caption_agency: "各部门兑现情况（{range}）",
    sc_caption_commitment: "{agency}的各项承诺（{range}）",
    range_all: "全部日期",
    range_from_to: "{from} 至 {to}",
    range_from: "{from} 起",
    range_to: "截至 {to}",
    col_agency: "部门",
    col_commitment: "承诺",
    col_opened: "受理件数",
    col_closed: "办结件数",
    col_target: "目标",
    col_median: "办理时长中位数",
    col_p90: "90% 办件办结用时",
    col_open: "在办件数",
    col_overdue: "超期件数",
    col_late: "超过 24 小时才记录",
    col_latency: "记录延迟中位数",
    col_rejection: "驳回率",
    col_rating: "平均评分",
    col_rating_response: "评价率",
    col_disputes: "异议数",
    col_unanswered: "逾期未答复异议",
    col_reopened: "重新办理",
    col_filings: "群众提交诉求",
    col_filings_accepted: "诉求已受理",
    col_filings_rejected: "诉求不予受理",
    col_filings_late: "超期答复的诉求",
    col_filings_overdue: "超过1个工作日未答复的诉求",
    filing_figures: "群众诉求",
    feed_case: "用订阅阅读器关注此办件（Atom）",
    feed_agency: "用订阅阅读器关注此部门（Atom）",
    feed_commitment: "用订阅阅读器关注此承诺（Atom）",
    col_ratings_by_origin: "按签名密钥来源的评价",
    origin_filed: "群众自有密钥",
    origin_claimed: "认领的纸质回执",
    origin_agency_issued: "机关打印的回执",
    rating_count: "（{n} 条）",
    feedback_figures: "群众评价与异议",
    distribution_caption: "各分值评价数（共 {n} 条）",
    col_score: "分值",
    col_ratings: "评价数",
    col_share: "占比",
    no_cases: "所选范围内没有办件。",
    below_target: "低于目标",
    meets_target: "达到目标",
    // 各地公开发布的指标（figures.js）、其基数、说明与排名
    "fig.deadline_rate": "按时办结率",
    "fig.response_rate": "响应率",
    "fig.resolution_rate": "解决率",
    "fig.satisfaction_rate": "满意率",
    "fig.rating_coverage": "评价覆盖率",
    "fig.rectification_rate": "差评整改率",
    "fig.on_time_rate": "办结件按时率",
    "about.deadline_rate":
      "办理时限已到（按时办结或已经超时）的办件中，在时限内办结的比例。逾期办结的、超过时限后驳回或记为撤回的，以及" +
      "到统计时点仍未办结且已超过时限的办件，都计为未按时（挂起等待群众补充材料的时间不计入时限）。基数：本期办结且有" +
      "办理时限的办件、本期超时驳回或撤回的办件，以及超期未结的办件。",
    "about.on_time_rate":
      "原口径，列在按时办结率之下：本期办结且有办理时限的办件中，在时限内办结的比例。超时驳回、撤回和超期未结的办件" +
      "不计入，因此把超期办件搁置不办或不予办结的部门，按此口径会显得更好。",
    "about.response_rate":
      "本期新增的办件中，部门在 1 个工作日内（立案当日之后第 1 个工作日结束前）作出响应的比例。响应指首次承办、暂停" +
      "（请群众补充材料）、办结或驳回；升级督办和群众撤回不算响应。基数：统计时点前已响应或响应期限已过的办件；仍在" +
      "响应期限内的办件暂不计入。",
    "about.resolution_rate":
      "本期部门作出答复（办结或驳回；撤回是群众自己的决定，不计入）且开具了回执、群众可以提出异议的办件中，已办结且" +
      "在统计时点前群众没有提出异议的比例。提出异议后再次办结的办件不算解决；不开回执的部门没有解决率。基数：本期办结" +
      "和驳回的有回执办件。",
    "about.satisfaction_rate": "本期群众所作评价中，评为 4 分（满意）或 5 分（非常满意）的比例。基数：这些评价。",
    "about.rating_coverage":
      "本期结案的办件（办结、驳回或撤回）中，统计时点前已由群众评价的比例。没有开具回执的办件无法评价，但仍计入基数，" +
      "因此不开回执的部门会在这里显示出来。基数：本期结案的办件。",
    "about.rectification_rate":
      "评为 1 分或 2 分的是差评，部门须在 15 个工作日内（评价当日之后第 15 个工作日结束前）整改，并在账本上记为" +
      "“差评整改”。本期差评中，统计时点前已整改或整改期限已过的，按期整改的比例。基数：这些差评。",
    about_as_of:
      "统计时点是清点在办件、超期件以及判断仍在等待的答复的时刻：默认为所选日期范围的结束；若其晚于现在或未选截止" +
      "日期，则为现在。也可以另选一天。",
    about_ranking: "排名按比率从高到低；比率相同者名次相同（1、2、2、4）。基数不足 {n} 件的不参与排名，列在已排名者之后。",
    figure_notes: "各项指标的含义",
    counting_time: "统计时点",
    published_figures: "公开发布的指标",
    other_figures: "其他统计数字",
    col_late_rejections: "超时驳回或撤回件数",
    col_bad_ratings: "差评数（1 或 2 分）",
    of_sample: "（基数 {n}）",
    fulfilled_only: "仅计办结件：",
    sc_caption_more: "各部门其他统计数字（{range}）",
    as_of: "统计时点（当日结束）",
    sel_district: "区域 {district}",
    list_sep: "，",
    label_sep: "：",
    sel_as_of: "统计至 {date} 结束",
    nav_rankings: "排名",
    rankings_link: "按各项指标给部门和承诺排名",
    rk_title: "排名",
    rk_intro: "按一项公开指标为部门或承诺排序，统计范围见下方筛选。页面地址保存所选条件，可直接分享该排名。",
    rk_by: "排名对象",
    rk_by_agency: "部门",
    rk_by_commitment: "承诺",
    rk_figure: "排名依据",
    rk_caption_agency: "各部门{figure}排名（{selection}）",
    rk_caption_commitment: "各项承诺{figure}排名（{selection}）",
    rk_empty: "所选范围内没有可排名的对象。",
    col_rank: "名次",
    not_ranked: "样本不足{n}件，不参与排名",
    rank_of: "第 {rank} 名（共 {n} 个）",

    jurisdiction: "辖区",
    agency_id: "部门代码",
    signers: "授权签名密钥",
    signer: "密钥（地址）",
    signers_caption: "该部门密钥的每一次授权与撤销（按账本顺序）",
    signer_change: "变更",
    authorized: "授权",
    revoked: "撤销",
    commitments: "服务承诺",
    no_commitments: "该部门尚未公开任何承诺。",
    registered_proof: "登记凭证",

    commitment_id: "承诺代码",
    service_code: "服务代码",
    deadline: "办理时限",
    hours: "{n} 小时",
    working_days: "{n} 个工作日",
    target: "按时办结目标",
    valid_from: "生效时间",
    terms_hash: "条款哈希",
    status: "状态",
    in_force: "有效",
    retired: "已停止",
    versions: "历次发布版本",
    versions_caption: "该承诺的全部版本（由旧到新）；新版本不会改动旧版本",
    version: "版本",
    published: "发布时间",
    trend_title: "办结件按时率趋势",
    bucket: "统计周期",
    bucket_day: "按日",
    bucket_week: "按周",
    chart_title: "每{bucket}按时办结的比例（{range}）",
    chart_desc: "共 {count} 个周期的柱形图。每根柱表示该周期内办结的办件中按时办结的比例；虚线为目标 {target}。最低 {min}，最高 {max}。下表列出相同的数字。",
    chart_desc_no_target: "共 {count} 个周期的柱形图。每根柱表示该周期内办结的办件中按时办结的比例。",
    chart_empty: "所选范围内没有办结的办件，无法绘制按时办结率。",
    chart_no_data: "无办结办件",
    chart_target: "目标 {target}",
    data_table: "以表格查看图中数字",
    trend_caption: "每{bucket}办结件按时率",
    period_start: "周期起始",
    on_time_rate: "办结件按时率",
    on_time: "按时办结件数",
    legend_meets: "达到目标",
    legend_below: "低于目标",
    eligible: "有应办结时间的件数",

    case_title: "办件查询",
    case_intro: "请选择部门并输入回执上的办件编号。该办件在链上记录的每个事件都会连同凭证一起列出。",
    case_id: "办件编号",
    case_id_hint: "回执上印的 0x 加 64 位十六进制数字。",
    case_id_invalid: "办件编号应为 0x 加 64 位十六进制数字（0–9、a–f）。",
    choose_agency: "请选择部门",
    agency_required: "请选择办理该办件的部门。",
    lookup: "查询",
    case_not_found: "该部门没有记录此编号的办件。",
    nav_receipt: "我的回执",
    receipt_title: "我的回执",
    receipt_intro: "请输入受理时所给回执上印的回执码，或扫描回执上的二维码打开链接。回执码只留在本浏览器中：查询只用由它推导出的公钥。",
    receipt_code: "回执码",
    receipt_code_hint: "回执上印的 20 位字母和数字（XXXX-XXXX-XXXX-XXXX-XXXX），大小写均可，可不输入短横线。",
    code_bad_characters: "回执码只含数字和字母（不含 U）：“{chars}”不是回执码中的字符。",
    code_bad_length: "回执码共 20 位字母和数字；您输入了 {n} 位。",
    code_invalid: "这不是回执码。",
    receipt_not_found: "没有与此回执码对应的办件。请核对回执码；刚开具的回执可能需要几分钟才能查到。",
    receipt_key: "回执公钥地址",
    receipt_issued: "回执开具时间",
    receipt_privacy: "请妥善保管回执码：持有回执码即可评价您的办件。回执码不会离开本浏览器，账本上只记录其公钥。",
    receipt_other: "查询其他回执",
    feedback_title: "评价与异议",
    "feedback_source.index_lacks_receipt":
      "以下状态直接读自账本所在的区块链：公开索引尚未收录此办件，故此处未列出其事件记录。您现在可以进行的操作以链上记录为准；索引跟上后将显示其余内容。",
    "feedback_source.index_behind":
      "以下状态直接读自账本所在的区块链：公开索引尚未跟上此办件的最新变化，下列事件记录可能不完整。您现在可以进行的操作以链上记录为准。",
    rating_title: "评价服务",
    dispute_title: "对办结提出异议",
    "rate_refusal.not_closed": "办件办结后即可评价服务。",
    "rate_refusal.claimed": "此回执已转移到另一把密钥（已认领）：现在只有那把密钥可以评价或申诉此办件。如果不是您认领的，那就是持有这份打印回执码的人认领的。",
    "rate_refusal.already_rated": "该办件已评价，每个办件只能评价一次。",
    "rate_refusal.rating_pending": "您的评价正在记入账本。",
    "dispute_refusal.claimed": "此回执已转移到另一把密钥（已认领）：现在只有那把密钥可以申诉此办件。",
    "dispute_refusal.not_closed": "如部门将未办好的办件标记为办结，您可以在 {days} 天内在此提出异议。",
    "dispute_refusal.not_fulfilled": "只有标记为“已办结”的办件才能提出异议；该办件是以其他方式结束的。",
    "dispute_refusal.already_disputed": "您的异议正在等待部门答复。",
    "dispute_refusal.closure_disputed": "您已对本次办结提出过异议，部门已答复并维持办结。每次办结只能提出一次异议。",
    "dispute_refusal.dispute_window_closed": "对本次办结提出异议的 {days} 天期限已过。",
    "dispute_refusal.dispute_pending": "您的异议正在记入账本。",
    score_legend: "您对本次服务是否满意？",
    "score.1": "非常不满意",
    "score.2": "不满意",
    "score.3": "一般",
    "score.4": "满意",
    "score.5": "非常满意",
    score_of: "{score} 分（满分 5 分）",
    score_required: "请选择 1 到 5 分。",
    comment_label: "留言（可选）",
    comment_hint: "留言由本服务保存，不上链：账本上只记录其加盐哈希。请勿填写姓名、电话等个人信息。",
    publish_consent: "同意在本页公开显示我的文字",
    send_rating: "提交评价",
    reason_label: "仍存在什么问题？（可选）",
    reason_hint: "文字由本服务保存，不上链：账本上只记录其加盐哈希。",
    dispute_intro: "办件标记为已办结但问题未解决？您可在 {deadline} 前提出异议。部门须重新办理，或说明维持办结的理由。",
    send_dispute: "提交异议",
    sending: "正在用回执密钥签名并提交……",
    rating_recorded: "谢谢！您的评价已记入公开账本，条目 #{seq}。",
    rating_accepted: "谢谢！您的评价已受理，正在记入公开账本。",
    dispute_recorded: "您的异议已记入公开账本，条目 #{seq}。部门须作出答复。",
    dispute_accepted: "您的异议已受理，正在记入公开账本。",
    relay_failed: "账本拒绝了此次提交（{name}）。",
    "kind_word.rating": "评价",
    "kind_word.dispute": "提出异议",
    "refusal.forged_signature": "已拒绝：签名与该办件的回执不符。只有该办件自己回执上的回执码才能对其{kind}。",
    "refusal.already_rated": "已拒绝：该办件已评价过，每个办件只能评价一次。",
    "refusal.duplicate": "已拒绝：此前已提交过。",
    "refusal.not_closed": "已拒绝：办件尚未办结，办结后才能评价。",
    "refusal.not_fulfilled": "已拒绝：只有标记为“已办结”的办件才能提出异议。",
    "refusal.already_disputed": "已拒绝：该办件已有异议在等待部门答复。",
    "refusal.closure_disputed": "已拒绝：本次办结已被提出过异议，且部门已答复。每次办结只能提出一次异议。",
    "refusal.stale_closure": "已拒绝：本页打开后办件已有变化，请刷新后重试。",
    "refusal.dispute_window_closed": "已拒绝：对本次办结提出异议的期限已过。",
    "refusal.unknown_receipt": "已拒绝：该办件没有登记回执。",
    "refusal.rate_limited": "提交过于频繁，请稍等一分钟后再试。",
    "refusal.node_unavailable": "暂时无法连接账本，请稍后再试。",
    "refusal.write_unavailable": "本网站暂时无法记录评价，请稍后再试。",
    refusal_other: "未能提交：{message}",
    no_chain: "本网站未连接账本",
    your_rating: "您的评价",
    rated_at: "评价时间",
    comment: "留言",
    comment_private: "有（未公开）",
    comment_none: "无",
    disputes_caption: "您的异议及部门答复",
    col_closure: "办结次序",
    disputed_at: "提出时间",
    reason: "理由",
    answer_due: "答复期限",
    answer: "答复",
    "answer.reopened": "已重新办理",
    "answer.dispute_rejected": "维持办结",
    answer_waiting: "等待答复",
    answer_overdue: "逾期未答复",
    case_heading: "办件",
    opened_at: "受理时间",
    due_at: "应办结时间",
    closed_at: "办结时间",
    hold_time: "暂停时长（不计入时限）",
    fulfil_time: "办理用时（不含暂停）",
    on_time_q: "是否按时",
    on_time_yes: "是，在应办结时间前办结",
    on_time_no: "否，超过应办结时间才办结",
    responded_at: "部门首次响应时间",
    response_due: "响应期限（1 个工作日）",
    rectification_due: "差评整改期限（15 个工作日）",
    rectified_at: "差评整改时间",
    in_time: "按时",
    late_word: "超时",
    not_responded: "尚未响应",
    not_rectified: "尚未整改",
    past_due: "已过期限",
    escalated: "是否升级督办",
    invalid_transitions: "顺序异常的事件（已提示审计）",
    events: "办理过程",
    events_caption: "该办件记录的全部事件（按记录顺序）",
    col_event: "事件",
    col_occurred: "发生时间（部门申报）",
    col_recorded: "上链时间",
    col_latency_short: "记录延迟",
    col_proof: "凭证",
    proof_link: "条目 #{seq} 的凭证",
    voided: "已被第 {seq} 号更正作废",
    late_note: "发生超过 24 小时后才记录",

    proof_title: "第 {seq} 号条目的凭证",
    proof_intro: "此条目记录在公开区块链的一笔交易中。您无需信任本网站：向该链任一节点查询这笔交易的回执，与下列数据比对即可。",
    proof_fields: "条目所在位置",
    seq: "序号",
    kind: "类型",
    tx_hash: "交易哈希",
    block_number: "区块",
    block_hash: "区块哈希",
    block_time: "区块时间",
    log_index: "日志序号",
    entry_hash: "条目哈希",
    record_hash: "记录哈希",
    actor: "签名者",
    occurred_at: "发生时间（申报）",
    final: "是否已确认",
    final_yes: "是：所在区块已确认",
    final_no: "尚未：所在区块仍可能被重组",
    how_to_check: "如何自行核验",
    check_1: "连接到链 ID 为 {chain_id} 的任一节点（自己的节点或公共节点均可）。",
    check_2: "用交易哈希调用 eth_getTransactionReceipt（请求见下）。",
    check_3: "回执应位于第 {block} 号区块，其中序号为 {log_index} 的日志应来自合约 {contract}，并带有条目哈希 {entry_hash}。",
    check_4: "合约记录了条目总数和覆盖全部条目的累积哈希，应与下列数字一致：缺失、调换或篡改任何条目都会使其改变。",
    rpc_request: "JSON-RPC 请求",
    proof_json: "凭证 JSON",
    copy_json: "复制 JSON",
    copied: "已复制到剪贴板。",
    copy_failed: "复制失败：请选中文本后手动复制。",
    back_to_case: "返回办件",
    in_batch: "属于批次",
    merkle_proof: "默克尔证明",
    batch_file: "文件",
    batch_link: "批次 #{seq}",
    batch_section: "属于默克尔锚定批次",
    batch_intro: "此记录与其他记录一起以批次方式写入。链上保存该批次的默克尔根、条目数和文件哈希；下面的默克尔证明把此记录与该根联系起来。上面的交易是该批次的锚定交易。",
    batch_no: "批次（首条目）",
    batch_index: "在批次中的位置",
    batch_root: "默克尔根",
    batch_count: "批次条目数",
    batch_file_hash: "文件哈希",
    batch_file_link: "下载批次文件",
    merkle_proof_hashes: "默克尔证明（{n} 个哈希，自记录向上）",
    proof_unavailable: "暂无默克尔证明：{reason}",
    verify_here: "在本浏览器中验证证明",
    verify_ok: "证明从此记录的哈希导出已锚定的根：此记录在该批次中。",
    verify_bad: "证明未能导出已锚定的根。",
    batch_check_3: "回执应位于第 {block} 号区块，其中序号为 {log_index} 的日志应是合约 {contract} 的批次 {batch} 的 BatchAnchored 日志，根为 {root}。",
    batch_check_4: "调用账本的申报模块合约 {module} 的只读函数 verifyBatchEntry({batch}, {index}, 记录哈希, 默克尔证明)，应返回 true。也可以下载批次文件，核对其 keccak256 等于文件哈希，并重建其默克尔树（OpenZeppelin 标准默克尔树）：树根应与锚定的根一致。",
    batches_title: "默克尔锚定批次",
    batches_intro: "办件量大的部门以批次写入：一笔交易锚定一个批次的默克尔根、条目数和文件哈希，批次中的每条记录都可以单独证明。",
    batches_caption: "批次（由旧到新）",
    batches_empty: "尚未锚定任何批次。",
    batches_link: "默克尔锚定批次",
    col_batch: "批次",
    col_entries: "条目数",
    col_root: "默克尔根",
    col_file: "文件",
    batch_title: "批次 #{seq}",
    batch_view_intro: "在一笔交易中锚定的一批办件事件：链上保存其默克尔根、条目数和文件的 keccak256。其记录为第 {seq} 至第 {last} 号条目。",
    batch_entries: "条目",
    batch_range: "#{seq} 至 #{last}（{n} 条）",
    batch_signer: "锚定密钥",
    batch_record_hash: "批次记录哈希",
    batch_entry_hash: "批次条目哈希（整批只计入累积哈希一次）",
    batch_running_hash: "批次之后的累积哈希",
    batch_file_state: "批次文件",
    batch_file_missing: "本服务暂未提供",
    batch_anchor_row: "批次 #{seq} 已锚定：{n} 条，根 {root}",
    batch_badge: "批次 #{seq}",
    batches_withheld: "被扣留的批次",
    withheld_none: "无",
    withheld_count: "{n} 个批次（{entries} 条）",
    audit_line: "独立审计至区块 {block}，{auditors}",
    audit_auditors_one: "1 位审计方",
    audit_auditors_many: "{n} 位审计方",
    audit_passed: " — 通过",
    audit_findings_one: " — 发现 1 项问题",
    audit_findings_many: " — 发现 {n} 项问题",
    audit_none: "尚未经独立审计",
    audit_not_matching_one: "1 位审计方的最新审计证明与账本不符",
    audit_not_matching_many: "{n} 位审计方的最新审计证明与账本不符",
    audit_details: "审计证明与报告",
    audits_title: "独立审计",
    audits_intro:
      "经本市治理机构登记的审计方对照区块链核查整个账本，并签署核查结果：核查截至的区块、该处的条目数与累积哈希、" +
      "审计结论及审计报告的哈希。签署的审计证明本身也记入账本。本服务核对每份证明中的条目数与累积哈希是否与账本一致。",
    audits_current_caption: "已登记的审计方及其最新审计证明",
    audits_all_caption: "全部审计证明（按时间先后）",
    audits_empty: "尚无审计证明。",
    audits_no_auditor: "尚无登记的审计方。",
    col_auditor: "审计方",
    col_audited_block: "审计至区块",
    col_verdict: "结论",
    col_findings: "问题数",
    col_matches: "与账本一致",
    col_report: "报告",
    verdict_passed: "通过",
    verdict_failed: "未通过",
    matches_yes: "是",
    matches_no: "否",
    matches_unknown: "尚未核对",
    report_link: "报告（JSON）",
    report_missing: "本服务尚未收到",
    no_attestation: "尚无",
    auditor_revoked: "已撤销",
    audits_link: "独立审计",
    batch_indexed: "已索引",
    withheld_missing: "已扣留：文件缺失",
    withheld_impossible: "永久扣留：文件不符",
    withheld_title: "被扣留的批次",
    withheld_intro: "该部门在链上锚定了 {n} 个批次，但其公布的文件缺失或与锚定内容不符。这些批次的 {entries} 条记录计入账本，却无法展示和核验，因此不计入统计数字。其余记录照常索引。",
    withheld_caption: "记录被扣留的批次",
    col_withheld: "状态",
    col_reason: "原因",
    withheld_missing_intro: "该批次的文件尚未公布，其记录暂被扣留。部门公布所锚定的文件后，这些记录将出现在各自的位置。",
    withheld_impossible_intro: "以该批次哈希公布的文件与部门锚定的内容不符，且任何其他文件都不可能相符：其记录被永久扣留。",
    not_applied: "未生效",
    not_applied_why: "此事件以批次方式写入，而该办件有回执：账本逐条跟踪此类办件，批次中的事件不会改变它。",

    log_title: "原始账本日志",
    log_intro: "按记录顺序列出的全部条目及其凭证。条目从不修改或删除：更正是一条指向原条目的新条目，原条目仍然可见。",
    log_caption: "账本条目（由旧到新）",
    col_seq: "序号",
    col_kind: "类型",
    col_agency_short: "部门",
    col_block: "区块",
    col_recorded_short: "记录时间",
    col_tx: "交易",
    col_entry_hash: "条目哈希",
    load_more: "加载更多",
    log_count: "已显示 {n} 条。",
    log_end: "已到日志末尾。",
    log_empty: "日志为空。",

    "status.open": "办理中",
    "status.on_hold": "暂停（等待群众补充材料）",
    "status.fulfilled": "已办结",
    "status.rejected": "已驳回",
    "status.withdrawn": "已撤回",
    "action.1": "受理",
    "action.2": "承办",
    "action.3": "暂停",
    "action.4": "恢复办理",
    "action.5": "升级督办",
    "action.6": "办结",
    "action.7": "驳回",
    "action.8": "撤回",
    "action.9": "重新办理",
    "action.10": "驳回异议",
    "action.11": "差评整改",
    "kind.0": "部门登记",
    "kind.1": "授权密钥",
    "kind.2": "撤销密钥",
    "kind.3": "发布承诺",
    "kind.4": "停止承诺",
    "kind.5": "办件事件",
    "kind.6": "更正",
    "kind.7": "节假日安排",
    "kind.8": "开具回执",
    "kind.9": "评价",
    "kind.10": "异议",
    "kind.11": "批次锚定",
    "kind.12": "登记审计方",
    "kind.13": "撤销审计方",
    "kind.14": "审计证明",
    "channel.1": "窗口",
    "channel.2": "热线",
    "channel.3": "网站",
    "channel.4": "手机应用",
    "channel.5": "信件",
    "channel.6": "主动发现",
    "unit.day": "日",
    "unit.week": "周",
    dur_d: "{n}天",
    dur_h: "{n}小时",
    dur_min: "{n}分钟",
    dur_s: "{n}秒",
    dur_sep: "",
    dur_negative: "提前{d}",
    // 提交诉求（views/file.js）与认领打印回执（views/receipt.js）
    nav_file: "提交诉求",
    "kind.15": "提交诉求",
    "kind.16": "答复诉求",
    "kind.17": "认领回执",
    file_title: "提交诉求",
    file_intro: "向部门反映其承诺处理的问题，例如路灯不亮、人行道破损。您的诉求会立即记入公开账本，部门的办理用时从您提交的那一刻起算。",
    file_no_chain: "本网站未连接账本，暂时无法受理诉求。",
    file_unknown_agency: "没有代码为“{agency}”的部门。请从列表中选择。",
    file_privacy_title: "信息去向",
    file_privacy_ledger_label: "公开账本上：",
    file_privacy_ledger: "只有部门、服务事项、区域代码、渠道（本网站）、本浏览器生成的公钥，以及您所填内容的指纹（哈希值）。不会有您的文字、地址、照片或联系方式。",
    file_privacy_agency_label: "由本服务保存、仅供您选择的部门查看：",
    file_privacy_agency: "您的描述、地址和位置、照片及联系方式。其他人都看不到。",
    file_privacy_you_label: "只由您自己保存：",
    file_privacy_you: "您的回执码。它在本浏览器中生成，从不发送给本网站，是查看、评价或申诉此诉求的唯一凭证。",
    file_commitment: "服务事项",
    file_commitment_hint: "您的诉求所属的部门公开承诺。",
    file_choose_commitment: "请选择服务事项",
    file_no_commitments: "请先选择部门",
    file_commitment_required: "请选择诉求所属的服务事项。",
    file_district_hint: "部门使用的区域代码：字母、数字及 - 或 _ 等符号，不含空格，最多 32 位（例如 EAST）。",
    file_district_invalid: "区域代码为 1 到 32 位字母、数字或符号（如 - 或 _），不含空格。",
    file_description: "遇到了什么问题？",
    file_description_hint: "最多 {n} 字，仅部门可见。",
    file_description_required: "请说明问题：描述不能为空。",
    file_address: "地址或地点（可选）",
    file_address_hint: "用文字说明位置：街道门牌、地标等。",
    file_point: "地图位置（可选）",
    file_point_hint: "以十进制度数填写，经纬度须同时填写或同时留空（例如 31.2304 和 121.4737）。",
    file_lat: "纬度",
    file_long: "经度",
    file_lat_invalid: "纬度为 -90 到 90 之间的十进制度数，最多 10 位小数（例如 31.2304）。",
    file_long_invalid: "经度为 -180 到 180 之间的十进制度数，最多 10 位小数（例如 121.4737）。",
    file_point_both: "位置须同时有纬度和经度：请都填写，或都留空。",
    file_locate: "使用我当前的位置",
    file_locating: "正在获取您的位置……",
    file_located: "已填入您的位置，提交前请核对。",
    file_locate_failed: "无法获取您的位置。请手动填写，或留空。",
    file_locate_unavailable: "此浏览器无法提供位置。请手动填写，或留空。",
    file_photos: "照片（可选，最多 {n} 张）",
    file_photos_hint: "照片在发送前会在本浏览器中缩小（最宽 1600 像素，JPEG 格式），同时去除相机附带的隐藏信息，例如拍摄地点。",
    file_photos_chosen: "待发送的照片",
    file_photo_line: "照片 {n}：{w} × {h} 像素，{kb} KB",
    file_photo_alt: "照片 {n}",
    file_photo_remove: "移除",
    file_photos_too_many: "每件诉求最多可附 {n} 张照片。",
    file_photo_unreadable: "无法将“{name}”读取为图片。请选择 JPEG、PNG 或 WebP 照片。",
    file_photo_too_large: "“{name}”缩小后仍然太大，无法发送。请换一张照片。",
    file_contact: "部门如何联系您（可选）",
    file_contact_note: "仅供您选择的部门就此诉求联系您。不上链，不公开。",
    file_phone: "电话",
    file_email: "电子邮箱",
    file_email_invalid: "这不是电子邮箱地址（缺少 @）。",
    file_too_long: "太长了：最多 {n} 字。",
    file_before_send: "提交时，本浏览器会生成您的回执密钥，花几秒钟完成一小段计算（防止这项免费服务被大量灌水），然后签名并发送您的诉求。随后只显示一次您的回执码。",
    file_send: "签名并提交",
    file_work_label: "正在准备您的诉求",
    file_working: "正在生成密钥并完成计算……",
    file_work_progress: "已尝试 {done} 次，平均约需 {expected} 次",
    file_sending: "正在发送已签名的诉求……",
    file_code_title: "您的回执码：请立即记下",
    file_code_intro: "您的诉求已受理。此码就是您的回执：凭它查看诉求进展，并评价或申诉部门的办理。它只显示这一次。",
    code_once_label: "回执码：{code}",
    code_once_only_you: "只有您持有它：本网站没有保存，账本上只有由它生成的公钥。",
    code_once_secret: "持有回执码即可评价或申诉您的办件：请勿告诉他人。",
    code_once_lost: "回执码遗失后无法找回，也无法补发。",
    code_once_print: "打印回执码",
    code_once_written: "我已抄下或打印了回执码",
    code_once_confirm_first: "请先确认您已抄下或打印回执码：它不会再次显示。",
    code_once_continue: "继续",
    file_pending_title: "您的诉求正在记入账本",
    file_recorded_title: "您的诉求已记入公开账本",
    file_seq_pending: "正在记入账本……",
    file_due_pending: "公开索引收录您的诉求后显示（通常一分钟内）",
    file_due_note: "部门须在答复期限前受理或驳回您的诉求。受理后即立案，办理时限从您提交诉求时起算。",
    file_receipt_link: "在回执页面查看诉求进展",
    file_receipt_link_hint: "该链接含有您的回执码：只在您自己的设备上收藏。",
    file_another: "再提交一件诉求",
    filing_number: "诉求编号",
    filing_filed_at: "提交时间",
    filing_answer_due: "答复期限",
    filing_awaiting: "等待部门答复",
    filing_overdue: "未按时答复：已逾期",
    "filing_decision.accepted": "已受理：已立案",
    "filing_decision.duplicate": "已驳回：与其他办件重复",
    "filing_decision.out_of_scope": "已驳回：不属于该部门职责",
    "filing_decision.spam": "已驳回：无效信息",
    filing_heading: "您的诉求 #{seq}",
    filing_note_awaiting: "部门尚未答复。部门受理后，本页将显示其办件：请凭回执码再来查看。",
    filing_note_accepted: "已受理。公开索引收录后，办件即显示在这里：请一分钟后刷新。",
    filing_note_rejected: "{decision}。部门须公布理由；账本上记录了理由的指纹（哈希值），可据此核对部门公布的文字。",
    "filing_refusal.network": "未能发送：网络连接失败。您的诉求仍保留在本页：请重试。",
    "filing_refusal.rate_limited": "此连接提交过于频繁：请稍等一分钟后再提交。",
    "filing_refusal.body_too_large": "已拒绝：诉求连同照片太大。请移除一张照片后再提交。",
    "filing_refusal.invalid_json": "已拒绝：服务无法读取此诉求。请刷新页面后重试。",
    "filing_refusal.invalid_body": "已拒绝：服务不接受此诉求的写法（{message}）。",
    "filing_refusal.work_missing": "已拒绝：缺少计算证明或计算量不足（服务要求 {bits} 位）。请刷新页面后再提交。",
    "filing_refusal.content_mismatch": "已拒绝：发送的内容与其指纹不符。未记录任何内容；请刷新页面后再提交。",
    "filing_refusal.bad_signature": "已拒绝：无法识别签名。请刷新页面后再提交。",
    "filing_refusal.forged_signature": "已拒绝：签名不是由此诉求自己的密钥作出。请刷新页面后再提交。",
    "filing_refusal.duplicate": "此诉求此前已受理。",
    "filing_refusal.unknown_agency": "已拒绝：该部门未在账本上登记。请选择其他部门。",
    "filing_refusal.unknown_commitment": "已拒绝：该部门没有公布此服务事项。请选择其他事项。",
    "filing_refusal.commitment_retired": "已拒绝：本页打开后，部门已停止此服务事项。请刷新页面，选择仍有效的事项。",
    "filing_refusal.receipt_in_use": "已拒绝：此回执密钥此前已使用过。请重新提交：将生成新的密钥。",
    "filing_refusal.filing_queue_full": "该部门目前等待记账的诉求过多。您的诉求仍保留在本页：请几分钟后再提交。",
    "filing_refusal.filing_budget_exhausted": "该部门今天受理的诉求已达上限。您的诉求仍保留在本页：请稍后再提交。",
    "filing_refusal.citizen_queue_full": "目前等待记账的群众提交过多：请几分钟后重试。",
    "filing_refusal.refused_by_ledger": "账本拒绝了此次提交（{message}）。",
    "filing_refusal.node_unavailable": "暂时无法连接账本。您的诉求仍保留在本页：请稍后重试。",
    "filing_refusal.write_unavailable": "本网站暂时无法记录诉求。您的诉求仍保留在本页：请稍后重试。",
    "filing_refusal.unavailable": "服务暂时不可用：请稍后重试。",
    "filing_refusal.internal_error": "服务未能受理。请稍后重试。",
    filing_refusal_other: "未能提交：{message}",
    receipt_claimed_at: "认领时间",
    claim_title: "将此回执转为您自己的",
    claim_intro: "此回执码由部门打印，部门可能仍留有副本：用它做过的任何操作，都可能是部门自己做的。",
    claim_how: "转为您自己的：本浏览器会生成一个只有您持有的新回执码，并把办件转到它的密钥下。此后，打印的回执码不能再用于评价或申诉——对您和其他持有者都是如此。",
    claim_button: "转为我的回执",
    claim_signing: "正在生成新密钥、用新旧两个回执码签名并发送……",
    claim_used_before: "此回执已经被使用过：",
    claim_used_before_why: "如果不是您做的，那就是其他持有这份打印回执码的人做的——可能就是打印它的部门。认领只让办件从此归您的密钥管理，不能撤销此前的操作。",
    claim_used_before_claim: "此回执在被认领之前已经被使用过：",
    claim_used_before_claim_why: "这是在认领之前用打印的回执码做的——由当时持有它的人所为，可能就是打印它的部门。该操作依然有效；自认领起，只有认领后的密钥可以评价或申诉此办件。",
    claim_used_rating: "该办件已于 {time} 被评为 {score} 分（满分 5 分）。",
    claim_used_rated: "该办件已被评价。",
    claim_used_dispute: "已于 {time} 对办结提出异议。",
    claim_used_pending: "用此回执码提交的评价或异议正在记入账本。",
    claim_code_title: "您的新回执码：请立即记下",
    claim_code_intro: "认领已受理，正在记入账本。从现在起，只有这个新回执码可以评价或申诉此办件。它只显示这一次。",
    claim_code_intro_recorded: "认领已记入公开账本，条目 #{seq}。从现在起，只有这个新回执码可以评价或申诉此办件，打印的回执码不再有效。它只显示这一次。",
    claim_away_title: "此回执已被认领",
    claim_away: "这份打印回执已被认领：办件已转到另一把密钥（{key}）下，此回执码不能再评价或申诉。如果不是您认领的，那就是其他持有这份打印回执码的人认领的——可能在回执到您手中之前。",
    claim_held_title: "已认领的回执",
    claim_held: "您通过认领打印回执持有此办件；现在只有您的回执码可以评价或申诉。认领记录：",
    "claim_refusal.already_claimed": "已拒绝：此回执已被认领——由您或其他持有打印回执码的人。请刷新页面查看办件现在由哪把密钥持有。",
    "claim_refusal.unknown_receipt": "已拒绝：账本上没有此办件的回执。",
    "claim_refusal.forged_signature": "已拒绝：此回执码已不再是该办件的回执密钥。请刷新页面查看现在由谁持有。",
    "claim_refusal.receipt_in_use": "已拒绝：新密钥此前已使用过。请重试：将生成另一把密钥。",
    rating_before_claim: "认领前用打印回执码作出的评价",
    claim_feedback_moved: "这份打印回执码已不能再评价或申诉此办件，请改用您的新回执码。",
  },
};

// Names of enum members as the API may spell them, mapped to the numbers the strings are keyed by.
const ACTION_NAMES = {
  OPENED: 1, ACCEPTED: 2, ON_HOLD: 3, RESUMED: 4, ESCALATED: 5, FULFILLED: 6, REJECTED: 7, WITHDRAWN: 8, REOPENED: 9,
  DISPUTE_REJECTED: 10, RECTIFIED: 11,
};
const KIND_NAMES = {
  AGENCY_REGISTERED: 0, SIGNER_AUTHORIZED: 1, SIGNER_REVOKED: 2, COMMITMENT_PUBLISHED: 3, COMMITMENT_RETIRED: 4,
  CASE_EVENT: 5, CORRECTION: 6, HOLIDAY_CALENDAR_PUBLISHED: 7, RECEIPT_ISSUED: 8, CASE_RATED: 9, CASE_DISPUTED: 10,
  BATCH_ANCHORED: 11, AUDITOR_AUTHORIZED: 12, AUDITOR_REVOKED: 13, AUDIT_ATTESTED: 14, FILING_RECORDED: 15,
  FILING_ANSWERED: 16, RECEIPT_CLAIMED: 17,
};
const CHANNEL_NAMES = { COUNTER: 1, HOTLINE: 2, WEB: 3, APP: 4, MAIL: 5, PROACTIVE: 6 };
export const CHANNELS = [1, 2, 3, 4, 5, 6];

let current = initialLang();

function initialLang() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  if (LANGS.includes(saved)) return saved;
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  return String(preferred[0] || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function lang() {
  return current;
}

export function setLang(next) {
  if (!LANGS.includes(next)) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // storage disabled
  }
}

/** The BCP 47 tag for <html lang> and Intl. */
export function locale() {
  return current === "zh" ? "zh-CN" : "en-GB";
}

/** The string `key` in the current language with {name} placeholders filled from `params`. */
export function t(key, params = {}) {
  const table = STRINGS[current];
  const text = key in table ? table[key] : key in STRINGS.en ? STRINGS.en[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A name given in both languages (`name_zh`, `name_en`, or with another `prefix`) in the current one, else the other. */
export function localName(item, fallback = "", prefix = "name_") {
  if (!item) return fallback;
  return item[`${prefix}${current}`] || item[`${prefix}${current === "zh" ? "en" : "zh"}`] || fallback;
}

function enumNumber(value, names) {
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    if (/^\d+$/.test(value)) return Number(value);
    const upper = value.toUpperCase();
    if (upper in names) return names[upper];
  }
  return null;
}

function enumLabel(prefix, value, names) {
  const number = enumNumber(value, names);
  const key = `${prefix}.${number}`;
  return number !== null && key in STRINGS.en ? t(key) : String(value ?? t("none"));
}

export const actionLabel = (value) => enumLabel("action", value, ACTION_NAMES);
export const kindLabel = (value) => enumLabel("kind", value, KIND_NAMES);
export const channelLabel = (value) => enumLabel("channel", value, CHANNEL_NAMES);
export function statusLabel(value) {
  const key = `status.${value}`;
  return key in STRINGS.en ? t(key) : String(value ?? t("none"));
}

// --- numbers --------------------------------------------------------------------------------------------------

export function formatInt(value) {
  if (value === null || value === undefined || value === "") return t("none");
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(Number(value));
}

/** A published rate ("0.9523", a 4-place decimal string) as a percentage, exactly (95.23%). */
export function formatRate(value) {
  if (value === null || value === undefined || value === "") return t("none");
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 2 }).format(Number(value));
}

/** A mean score ("4.2500", a 4-place decimal string) with up to two decimals: "4.25". */
export function formatScore(value) {
  if (value === null || value === undefined || value === "") return t("none");
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: 1, maximumFractionDigits: 2 }).format(Number(value));
}

/** A number of seconds as days, hours and minutes (two largest units), e.g. "2 d 3 h" / "2天3小时". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds === "") return t("none");
  const s = Math.round(Number(seconds));
  if (s < 0) return t("dur_negative", { d: formatDuration(-s) });
  const nf = new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 });
  const unit = (key, n) => (n > 0 ? [t(key, { n: nf.format(n) })] : []);
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  let parts;
  if (days > 0) parts = [...unit("dur_d", days), ...unit("dur_h", hours)];
  else if (hours > 0) parts = [...unit("dur_h", hours), ...unit("dur_min", minutes)];
  else if (minutes > 0) parts = unit("dur_min", minutes);
  else parts = [t("dur_s", { n: nf.format(s) })];
  return parts.join(t("dur_sep"));
}

// --- times ----------------------------------------------------------------------------------------------------

function dateTimeFormat(options) {
  return new Intl.DateTimeFormat(locale(), { timeZone: TIME_ZONE, ...options });
}

/** Unix seconds as a local (UTC+8) date and time, e.g. "21/11/2026, 14:05". */
export function formatTime(unix) {
  if (unix === null || unix === undefined || unix === "") return t("none");
  return dateTimeFormat({
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).format(new Date(Number(unix) * 1000));
}

/** Unix seconds as a local (UTC+8) date. */
export function formatDate(unix) {
  if (unix === null || unix === undefined || unix === "") return t("none");
  return dateTimeFormat({ year: "numeric", month: "short", day: "numeric" }).format(new Date(Number(unix) * 1000));
}

/** Unix seconds as a short local date for chart labels ("21 Nov" / "11月21日"). */
export function formatShortDate(unix) {
  return dateTimeFormat({ month: "short", day: "numeric" }).format(new Date(Number(unix) * 1000));
}

/** Unix seconds as an ISO 8601 instant, for <time datetime>. */
export function isoInstant(unix) {
  return new Date(Number(unix) * 1000).toISOString().replace(".000Z", "Z");
}

/** A "YYYY-MM-DD" date (as a date input gives it) to the unix second its local (UTC+8) day starts. */
export function localDayStart(isoDate) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate || "");
  if (!match) return null;
  return Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) / 1000 - UTC_OFFSET_SECONDS;
}

/** The local (UTC+8) "YYYY-MM-DD" of unix seconds. */
export function localIsoDate(unix) {
  return new Date((Number(unix) + UTC_OFFSET_SECONDS) * 1000).toISOString().slice(0, 10);
}
