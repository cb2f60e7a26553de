"""Log completeness: the entries the logs record are exactly seq 0 … n-1, once each, and fold to the contract's own
running hash and count at the audited block. A batch anchor accounts for its ``count`` entries (seq … seq+count-1)
and is folded once, as the contract folds it."""

from __future__ import annotations

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import entry_pointer, hex0x
from ledger.chain.logs import DecodedEntry
from ledger.records import EntryKind

NAME = "log_complete"


def run(ctx: AuditContext, result: CheckResult) -> None:
    chain, model = ctx.chain, ctx.model
    for problem in chain.problems:
        result.add(Finding(NAME, problem.message, seq=problem.seq, tx_hash=hex0x(problem.tx_hash),
                           log_index=problem.log_index, block_number=problem.block_number))

    # Each seq once.
    seen: dict[int, DecodedEntry] = {}
    duplicates = 0
    for e in chain.entries:
        first = seen.get(e.seq)
        if first is None:
            seen[e.seq] = e
            continue
        duplicates += 1
        same = first.tx_hash == e.tx_hash and first.log_index == e.log_index
        what = (
            "the node served this log twice" if same
            else f"two logs claim seq {e.seq}: tx 0x{first.tx_hash.hex()} log {first.log_index} and this one"
        )
        result.add(Finding(NAME, f"duplicated entry: {what}", **entry_pointer(e),
                           expected=hex0x(first.entry_hash), actual=hex0x(e.entry_hash)))

    # Seq 0 … count-1, no gap, nothing beyond the contract's count; a batch covers seq … seq+count-1.
    count = chain.contract_count
    seqs = sorted(seen)
    expected_next = 0
    gaps = 0
    covered = batches = batched = 0
    holder: DecodedEntry | None = None  # the entry (or batch) covering the seqs before expected_next
    for seq in seqs:
        e = seen[seq]
        span = e.record["count"] if e.kind == EntryKind.BATCH_ANCHORED else 1
        if seq >= count:
            result.add(Finding(NAME, f"the log holds seq {seq}, beyond the contract's entry count {count}",
                               **entry_pointer(e)))
            continue
        if seq < expected_next and holder is not None:
            result.add(Finding(
                NAME, f"seq {seq} is also one of the {holder.record['count']} entries of the batch anchored at seq "
                f"{holder.seq} (tx 0x{holder.tx_hash.hex()} log {holder.log_index}): two entries claim it",
                **entry_pointer(e), expected=hex0x(holder.entry_hash), actual=hex0x(e.entry_hash),
            ))
            continue
        if seq > expected_next:
            gaps += seq - expected_next
            _gap(result, seen, expected_next, seq - 1, holder)
        expected_next = seq + span
        covered += span
        holder = e
        if span > 1 or e.kind == EntryKind.BATCH_ANCHORED:
            batches += 1
            batched += span
            if expected_next > count:
                result.add(Finding(
                    NAME, f"the batch anchored at seq {seq} claims {span} entries, beyond the contract's entry count "
                    f"{count}", **entry_pointer(e), field="count", actual=span,
                ))
    if expected_next < count:
        gaps += count - expected_next
        _gap(result, seen, expected_next, count - 1, holder)

    # The running hash over the log = the contract's (a gap already explains a difference).
    if not gaps:
        folded = model.running.get(count - 1) if count else b"\0" * 24
        if folded != chain.contract_head:
            _locate_divergence(ctx, result)
    else:
        result.notes.append("running hash not compared: entries are missing from the log")

    result.counts.update(
        entries=covered, logged_entries=len(seen), batches=batches, batched_entries=batched,
        contract_entry_count=count, duplicates=duplicates, missing=gaps,
        blocks=len({e.block_number for e in chain.entries}), log_requests=chain.log_requests,
    )
    result.notes.append(
        f"blocks {chain.from_block}-{chain.block_number}; contract entryCount() = {count}, runningHash() = "
        f"0x{chain.contract_head.hex()} at block {chain.block_number} (0x{chain.block_hash.hex()})"
    )


def _gap(
    result: CheckResult, seen: dict[int, DecodedEntry], first: int, last: int, before: DecodedEntry | None
) -> None:
    """Seqs first … last are missing; `before` is the entry (or batch) that ends just before them."""
    after = seen.get(last + 1)
    span = f"seq {first}" if first == last else f"seqs {first}-{last} ({last - first + 1} entries)"
    around = []
    if before is not None:
        around.append(f"after seq {before.seq} (tx 0x{before.tx_hash.hex()})")
    if after is not None:
        around.append(f"before seq {after.seq} (tx 0x{after.tx_hash.hex()})")
    # No transaction to point at: the finding names the missing seq and the block of the entry before it.
    neighbour = before or after
    result.add(Finding(NAME, f"missing from the log: {span} {' and '.join(around)}".rstrip(), seq=first,
                       block_number=neighbour.block_number if neighbour else None))


def _locate_divergence(ctx: AuditContext, result: CheckResult) -> None:
    """The fold differs from the contract: find the first block whose contract state disagrees (needs a node that
    keeps historical state; the hash chain makes agreement monotone, so bisection finds it)."""
    chain, model = ctx.chain, ctx.model
    message = (
        f"the log's entries fold to running hash 0x{model.running.get(chain.contract_count - 1, b'').hex()} but the "
        f"contract's runningHash() is 0x{chain.contract_head.hex()}: an entry's logged fields were altered"
    )
    blocks = sorted({e.block_number for e in model.logged})
    if ctx.reader is None or not blocks:
        result.add(Finding(NAME, message, subject="running hash",
                           expected=hex0x(chain.contract_head), actual=hex0x(model.head)))
        return

    def agrees(block: int) -> bool | None:
        state = ctx.reader.contract_head_at(block)  # type: ignore[union-attr]
        if state is None:
            return None
        n, head = state
        return n == 0 or model.running.get(n - 1) == head

    low, high = 0, len(blocks) - 1
    if agrees(blocks[high]) is None:
        result.add(Finding(NAME, message + " (the node keeps no historical state to locate it)",
                           subject="running hash", expected=hex0x(chain.contract_head), actual=hex0x(model.head)))
        return
    while low < high:
        mid = (low + high) // 2
        if agrees(blocks[mid]):
            low = mid + 1
        else:
            high = mid
    block = blocks[low]
    in_block = [e for e in model.logged if e.block_number == block]
    seqs = f"seq {in_block[0].seq}" if len(in_block) == 1 else f"seqs {in_block[0].seq}-{in_block[-1].seq}"
    result.add(Finding(
        NAME,
        f"the running hash first diverges from the contract's in block {block}: the logs of {seqs} do not fold to "
        f"the contract's running hash there (an entry of that block was altered or forged in the log)",
        **entry_pointer(in_block[0]), subject="running hash",
        expected=hex0x(chain.contract_head), actual=hex0x(model.head),
    ))


CHECK = Check(
    NAME,
    "Log complete (running hash and count)",
    "Every entry seq 0 … entryCount()-1 appears in the logs exactly once, from the canonical block its log names "
    "(a Merkle batch's anchor accounts for its count entries, seq … seq+count-1), and the entries fold "
    "(docs/ledger-format.md; a batch once, over its anchor) to the contract's own runningHash() and entryCount() at "
    "the audited block; where they do not, the first divergent block is found by bisection on historical state.",
    run,
)

