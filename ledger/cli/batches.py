"""Merkle-anchored batches: ``batch submit`` records a file's case events as batches anchored on chain (which rows
may go in a batch is :func:`ledger.batches.submit.batchable`), ``batch verify`` checks a batched entry's proof."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_typing import HexStr
from rich.table import Table
from web3.exceptions import TimeExhausted

from ledger import batches
from ledger.batches.submit import NO_BATCH_RECEIPTS, batchable
from ledger.chain.contract import Ledger
from ledger.chain.keys import AgencyKey
from ledger.cli.common import (
    KeyEnvOpt,
    KeyOpt,
    PasswordOpt,
    Settings,
    agency_of,
    case_ids_of,
    command,
    err,
    fail,
    open_writer,
    out,
    problems_table,
    settings,
)
from ledger.encoding import code_text
from ledger.errors import InvalidRecord
from ledger.importer import read_rows, references
from ledger.records import CaseAction, CaseEvent
from ledger.writer.outbox import OutboxState

batch_app = typer.Typer(
    help="Merkle-anchored batches: many case events in one transaction (a few gas each), each provable on its own.",
    no_args_is_help=True,
)


#: entries in one anchored batch, unless --max-entries says otherwise (a file of about 30 MB)
DEFAULT_BATCH_ENTRIES = 100_000
BatchDirOpt = Annotated[
    Path | None,
    typer.Option("--batches", help="batch directory: where files are published for the API and the indexer "
                 "(default DATA_DIR/batches)"),
]


def _batch_store(s: Settings, batch_dir: Path | None) -> batches.BatchStore:
    return batches.BatchStore(batch_dir or s.data_dir / "batches")


@command(batch_app, "submit")
def batch_submit(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv, .jsonl or .ndjson file")],
    max_entries: Annotated[
        int, typer.Option("--max-entries", help="split larger inputs into batches of at most this many entries")
    ] = DEFAULT_BATCH_ENTRIES,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="anchor the good rows even when some are refused (submit the fixed "
                           "rows alone later: an edited file is a new batch, whose good rows would be recorded twice)")
    ] = False,
    batch_dir: BatchDirOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Record case events as Merkle-anchored batches: rows as for `case import`; each batch's file is published to
    the batch directory (which the API serves) and its root, count and file hash anchored in one transaction.
    Batched cases get no receipts, and cases with one are refused (record those with `case import`). Any refused
    row stops the whole file unless --skip-invalid. Running the command again anchors nothing twice: a batch is
    recognised on chain by its file's hash."""
    s = settings(ctx)
    if not 1 <= max_entries <= batches.MAX_ENTRIES:
        raise InvalidRecord(f"--max-entries must be from 1 to {batches.MAX_ENTRIES:,}")
    signer = s.key(key, key_env, password_file)
    agency = agency_of(s, signer)
    s.ledger()  # the chain and the contract are checked before the input is read
    store = _batch_store(s, batch_dir)
    with open_writer(s, signer) as writer:
        ids = case_ids_of(s, agency, writer.outbox)
        with err.status(f"reading {path.name}…"):
            ids.prefetch(references(path))
            rows = list(read_rows(path, agency_id=agency, salt=s.salt(agency), case_ids=ids,
                                  no_receipts=NO_BATCH_RECEIPTS))
        # This key's outbox goes first: its transactions and the anchors share the key's nonces.
        waiting = writer.outbox.counts()[OutboxState.PENDING]
        sent = writer.flush()
        if waiting or sent:
            err.print(f"{len(sent) or waiting} entries waiting in the outbox of {signer.address} were sent first")
    events, refused = batchable(s.ledger(), agency, rows)
    summary = Table(title=f"batch submit of {path.name}")
    for column in ("rows", "to batch", "refused"):
        summary.add_column(column, justify="right")
    summary.add_row(str(len(rows)), str(len(events)), str(len(refused)))
    out.print(summary)
    if refused:
        problems_table(refused)
        if not skip_invalid:
            out.print("nothing was anchored: fix or remove these rows and run the command again (or pass "
                      "--skip-invalid to anchor the others now)")
            raise typer.Exit(1)
    if not events:
        fail("no rows to batch", code=1)
    _anchor_all(s, signer, events, store, max_entries)
    out.print("receipts are not issued for batched cases; each entry's Merkle proof is served by the API once the "
              "index has synced (`civic-ledger batch verify SEQ INDEX` checks one here)")
    if refused:
        raise typer.Exit(1)


def _anchor_all(s: Settings, signer: AgencyKey, events: list[CaseEvent], store: batches.BatchStore,
                max_entries: int) -> None:
    ledger, w3 = s.ledger(), s.ledger().w3
    pending = w3.eth.get_transaction_count(signer.address, "pending") - w3.eth.get_transaction_count(signer.address)
    if pending > 0:
        # An earlier anchoring that timed out may still be in the node's pool: another now could anchor it twice.
        fail(f"{signer.address} has {pending} transaction(s) in the node's pool, not mined yet (an earlier run's "
             "anchoring?): run this again once they are mined, so that no batch is anchored twice")
    agency_id = ledger.agency_of(signer.address)
    start = s.deploy_block()
    count = -(-len(events) // max_entries)
    out.print(f"{len(events):,} entries in {count} batch(es) of at most {max_entries:,}")
    for number, start_index in enumerate(range(0, len(events), max_entries), start=1):
        chunk = events[start_index : start_index + max_entries]
        with err.status(f"building and anchoring batch {number} of {count} ({len(chunk):,} entries)…"):
            batch = batches.build_batch(chunk)
            path = store.put(batch)  # published first: a file nobody anchored is harmless
            found = batches.find_anchored(ledger, agency_id, batch.file_hash, start)
            try:
                anchored = found or batches.anchor(ledger, signer, batch, store, from_block=start)
            except BaseException as exc:
                err.print(f"the batch of the input's entries {start_index + 1}-{start_index + len(chunk)} was "
                          f"published to {path}, but its anchoring did not complete (or its answer was lost). The "
                          "file alone is harmless: nothing refers to it. Run the command again: it anchors what is "
                          "missing, and nothing twice")
                if isinstance(exc, TimeExhausted):
                    fail(f"the anchoring transaction was not mined in time ({exc})", code=1)
                raise
        gas = int(w3.eth.get_transaction_receipt(HexStr("0x" + anchored.tx_hash.hex()))["gasUsed"])
        out.print(f"batch at seq {anchored.seq}: entries {anchored.seq}-{anchored.seq + batch.count - 1} "
                  f"({batch.count:,}), {'anchored earlier' if found else 'anchored now'} in block "
                  f"{anchored.block_number}, gas {gas:,} ({gas / batch.count:.2f} per entry)")
        out.print(f"  root         0x{batch.root.hex()}", soft_wrap=True)
        out.print(f"  file hash    0x{batch.file_hash.hex()}", soft_wrap=True)
        out.print(f"  file         {path}", soft_wrap=True)
        out.print(f"  transaction  0x{anchored.tx_hash.hex()}", soft_wrap=True)


@command(batch_app, "verify")
def batch_verify(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the batch's first seq (its anchor's)")],
    index: Annotated[int, typer.Argument(help="the entry's position in the batch: its seq minus the batch's")],
    batch_dir: BatchDirOpt = None,
) -> None:
    """Show a batched entry, its Merkle proof, and check it off chain and with the contract's verifyBatchEntry."""
    s = settings(ctx)
    ledger = s.ledger()
    found = _batch_anchor(ledger, seq, s.deploy_block())
    if found is None:
        fail(f"no batch is anchored at seq {seq} (give the batch's first seq, and the entry's index in it)", code=1)
    root, count, file_hash = bytes(found["root"]), int(found["count"]), bytes(found["fileHash"])
    if not 0 <= index < count:
        fail(f"the batch at seq {seq} holds {count} entries: index must be from 0 to {count - 1}", code=1)
    store = _batch_store(s, batch_dir)
    content = store.get(file_hash)
    if content is None:
        fail(f"the batch file 0x{file_hash.hex()} is not in {store.directory} (the API serves it at "
             f"/api/v1/batches/{seq}/file)", code=1)
    batch = batches.rebuild(content)
    if batch.root != root or batch.count != count:
        fail(f"the file {store.path(file_hash)} does not build the anchored root and count", code=1)
    event, record_hash, proof = batch.events[index], batch.record_hashes[index], batch.proof(index)
    off_chain = batches.verify_proof(root, index, record_hash, proof)
    on_chain = ledger.verify_batch_entry(seq, index, record_hash, proof)
    out.print(f"entry {seq + index}: index {index} of the batch at seq {seq} ({count:,} entries, agency "
              f"{code_text(bytes(found['agencyId']))}, signer {found['signer']})")
    out.print(f"  case 0x{event.case_id.hex()} {event.action.name.lower()} at "
              f"{datetime.fromtimestamp(event.occurred_at, UTC).isoformat()}"
              + (f", commitment {code_text(event.commitment_id)}, district {code_text(event.district)}, channel "
                 f"{event.channel}" if event.action is CaseAction.OPENED else ""))
    out.print(f"  record hash 0x{record_hash.hex()}", soft_wrap=True)
    out.print(f"  root        0x{root.hex()}", soft_wrap=True)
    out.print(f"  file hash   0x{file_hash.hex()}", soft_wrap=True)
    out.print(f"  Merkle proof ({len(proof)} hashes, {32 * len(proof)} bytes):")
    for sibling in proof:
        out.print(f"    0x{sibling.hex()}", soft_wrap=True)
    out.print(f"  off chain (ledger.batches.verify_proof): {'valid' if off_chain else 'INVALID'}")
    out.print(f"  on chain (verifyBatchEntry):             {'valid' if on_chain else 'INVALID'}")
    if not (off_chain and on_chain):
        raise typer.Exit(1)


def _batch_anchor(ledger: Ledger, seq: int, from_block: int) -> dict[str, Any] | None:
    """The BatchAnchored event whose first seq is `seq` (its first indexed topic), if any."""
    event = ledger.contract.events.BatchAnchored
    logs = ledger.w3.eth.get_logs({"address": ledger.address, "fromBlock": from_block, "toBlock": "latest",
                                   "topics": [event.topic, "0x" + seq.to_bytes(32, "big").hex()]})
    return dict(event().process_log(logs[0])["args"]) if logs else None
