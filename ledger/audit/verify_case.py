"""``civic-verify-case``: verify one case from its id — every event with its proof, checked against the chain.

For each event of the case it prints what was claimed and when it was recorded, the transaction, block and log that
hold it, and the entry hash; then it checks, independently of any service: that the transaction's receipt (from the
node) holds that very log in that block and that it decodes to the same entry hash; that the whole log folds to the
contract's own ``runningHash()`` and ``entryCount()`` (so no event of the case is missing or altered); and that the
case's events are valid transitions. With ``--api`` it also compares the public API's view of the case. An event
written in a Merkle-anchored batch is read from its batch file (``--batches``, a directory or API URL; by default the
API): its proof is the anchoring transaction's log, checked the same way, plus the event's inclusion proof in the
batch's Merkle tree, rebuilt from the file and checked off chain and by the contract's own ``verifyBatchEntry``.
A batch of the case's agency whose file cannot be read (withheld: not published yet, or never matching) leaves the
case unverified — its events might be there — and is named, with its agency; another agency's batch cannot hold the
case's events and does not matter. A batched event of a receipt case is never applied to it
(``ledger.cases.batched_event_applies``): such an event of the case is named as a problem.
Exit code 0: everything verifies; 1: something does not (or no such case); 2: could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from eth_abi import encode as abi_encode
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.audit import expected
from ledger.audit.apiread import ApiError, PublicApi
from ledger.audit.batchfiles import WITHHELD_MEANING, anchors_of, load, source_for
from ledger.audit.chainread import ChainReader, ChainSnapshot
from ledger.audit.checks import run_check
from ledger.audit.context import AuditConfig, AuditContext
from ledger.audit.errors import CannotAudit
from ledger.audit.rebuild import CaseRecord, LedgerModel, feedback_item, hex0x, rebuild
from ledger.audit.rpc import Rpc, RpcError
from ledger.batches import MerkleTree, verify_proof
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT, CaseProgress, Event
from ledger.chain.logs import DecodedEntry, LogDecoder
from ledger.encoding import code_text, keccak, module_address
from ledger.metrics import CaseRow, is_case_overdue_at
from ledger.records import CaseAction
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS

LOCAL = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS))


def _time(value: int | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, LOCAL).strftime("%Y-%m-%d %H:%M:%S%z")


def _span(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    return f"{sign}{days}d {hours:02d}h{rest // 60:02d}m" if days else f"{sign}{hours}h{rest // 60:02d}m"


_VERIFY_BATCH_ENTRY = keccak(b"verifyBatchEntry(uint256,uint256,bytes32,bytes32[])")[:4]


def merkle_proofs(rpc: Rpc, contract: str, events: list[DecodedEntry], model: LedgerModel) -> dict[int, Any]:
    """For each batched event: its batch, index and Merkle proof (rebuilt from the batch file), checked off chain
    (``verified``) and by the chain's ``verifyBatchEntry`` (the ledger's filings module, against the root the ledger
    stored) at the latest block (``contract_verified``)."""
    module = module_address(contract)
    out: dict[int, Any] = {}
    trees: dict[int, MerkleTree] = {}
    calls = []
    for e in events:
        anchor = model.batch_of(e.seq) if model.anchors else None
        if anchor is None or anchor.seq not in model.contents:
            continue
        content = model.contents[anchor.seq]
        tree = trees.get(anchor.seq)
        if tree is None:
            tree = trees[anchor.seq] = MerkleTree.of_records(content.record_hashes)
        index = e.seq - anchor.seq
        branch = tree.proof(index)
        out[e.seq] = {
            "batch_seq": anchor.seq, "index": index, "root": hex0x(anchor.record["root"]),
            "merkle_proof": [hex0x(h) for h in branch],
            "verified": verify_proof(anchor.record["root"], index, e.record_hash, branch),
        }
        data = _VERIFY_BATCH_ENTRY + abi_encode(["uint256", "uint256", "bytes32", "bytes32[]"],
                                                [anchor.seq, index, e.record_hash, branch])
        calls.append((e.seq, ("eth_call", [{"to": module, "data": hex0x(data)}, "latest"])))
    if calls:
        try:
            answers = rpc.batch([call for _, call in calls])
        except RpcError:
            answers = [None] * len(calls)
        for (seq, _), answer in zip(calls, answers, strict=True):
            out[seq]["contract_verified"] = None if answer in (None, "0x") else int(answer, 16) == 1
    return out


def receipt_proofs(rpc: Rpc, events: list[DecodedEntry], model: LedgerModel | None = None) -> dict[int, str | None]:
    """seq -> None when the node's receipt of the event's transaction holds the same log (same entry hash) in the
    same block, else what is wrong. A batched event's log is its batch's anchor."""
    decoder = LogDecoder()
    hashes = sorted({e.tx_hash for e in events})
    receipts = dict(zip(hashes, rpc.batch([("eth_getTransactionReceipt", [hex0x(h)]) for h in hashes]), strict=True))
    out: dict[int, str | None] = {}
    for e in events:
        anchor = model.batch_of(e.seq) if model is not None and model.anchors else None
        logged = anchor or e  # the log that holds the event
        receipt = receipts.get(e.tx_hash)
        if receipt is None:
            out[e.seq] = "the node has no receipt for the transaction"
            continue
        if int(receipt.get("status", "0x0"), 16) != 1:
            out[e.seq] = "the transaction failed"
            continue
        if receipt.get("blockHash", "").lower() != hex0x(e.block_hash):
            out[e.seq] = f"the receipt is in block {receipt.get('blockHash')}, not the log's"
            continue
        logs = [log for log in receipt.get("logs", []) if int(log["logIndex"], 16) == e.log_index]
        decoded = decoder.decode([{**log, "blockTimestamp": None} for log in logs]) if logs else []
        if not decoded:
            out[e.seq] = f"the receipt has no ledger entry at log index {e.log_index}"
        elif decoded[0].entry_hash != logged.entry_hash or decoded[0].seq != logged.seq:
            out[e.seq] = "the receipt's log decodes to another entry" + (" than the batch's anchor" if anchor else "")
        else:
            out[e.seq] = None
    return out


def _transitions(record: CaseRecord, model: LedgerModel) -> dict[int, str]:
    """seq -> status after the event ('invalid …' for an event that is not a valid transition, 'voided by …'); the
    case's receipt, ratings and disputes fold in between (a dispute is what makes a DisputeRejected valid)."""
    progress = CaseProgress()
    out: dict[int, str] = {}
    feedback = {item.seq: item for item in (feedback_item(e) for e in record.feedback)}
    pending = sorted(feedback)
    for e in record.events:
        while pending and pending[0] < e.seq:
            progress.take(feedback[pending.pop(0)])
        if e.seq in model.voided:
            out[e.seq] = f"voided by seq {model.voided[e.seq]}"
            continue
        if e.seq in model.not_applied:
            out[e.seq] = "NOT APPLIED: a receipt case's event hidden in a batch"
            continue
        r = e.record
        action = int(r["action"])
        event = (
            Event(e.seq, action, r["occurred_at"], code_text(r["commitment_id"]), code_text(r["district"]),
                  r["channel"])
            if action == CaseAction.OPENED else Event(e.seq, action, r["occurred_at"])
        )
        before = progress.status if progress.opened else "(not opened)"
        out[e.seq] = progress.status if progress.apply(event) else f"INVALID from {before}"
    return out


def verify(
    rpc_url: str, contract: str, case_id: bytes, *, agency: str | None = None, api: PublicApi | None = None,
    chain_id: int | None = None, batches: str | None = None,
) -> dict[str, Any]:
    """Everything the command prints, as data; `ok` says whether it all verified. `batches`: where batch files are
    read (a directory or an API base URL; default: `api`)."""
    rpc = Rpc(rpc_url)
    try:
        reader = ChainReader(rpc, contract, expected_chain_id=chain_id)
        chain: ChainSnapshot = reader.read()
        anchors = anchors_of(chain.entries)
        source = source_for(batches, api) if anchors else None
        outcomes = {}
        if source is not None:
            try:
                outcomes = load(anchors, source)
            finally:
                source.close()
        model = rebuild(chain.entries, {s: o.content for s, o in outcomes.items() if o.content is not None})
        log = run_check("log_complete", AuditContext(
            config=AuditConfig(rpc_url=rpc_url, contract=contract), chain=chain, model=model, reader=reader,
        ))
        records = [r for (a, c), r in sorted(model.cases.items()) if c == case_id and (agency is None or a == agency)]
        cases = []
        ok = bool(records) and log.status.value == "pass"
        # A batch holds case events of its anchor's agency only: another agency's withheld batch cannot hide this case.
        agencies = {agency} if agency is not None else {r.agency_id for r in records}
        unread = [a for a in anchors if a.seq not in model.contents
                  and (not agencies or code_text(a.agency_id) in agencies)]
        batch_notes = [_withheld_note(a, outcomes.get(a.seq)) for a in unread]
        if unread:
            ok = False  # the case may have events in a batch that could not be read
        hidden = [
            f"seq {e.seq}: {CaseAction(e.record['action']).name.lower()} of this receipt case hidden in batch seq "
            f"{a.seq} by {code_text(e.agency_id)}: {BATCHED_RECEIPT_CASE_EVENT}"
            for e in model.not_applied.values()
            if e.record["case_id"] == case_id and (agency is None or code_text(e.agency_id) == agency)
            and (a := model.batch_of(e.seq)) is not None
        ]
        if hidden:
            ok = False
        for record in records:
            proofs = receipt_proofs(rpc, record.events, model)
            merkle = merkle_proofs(rpc, chain.address, record.events, model)
            after = _transitions(record, model)
            state = record.state
            overdue = None
            if state is not None:
                row = CaseRow(agency_id=record.agency_id, case_id=record.case_id, **state.row())
                overdue = is_case_overdue_at(row, chain.block_time)
            api_diffs: list[tuple[str, Any, Any]] | None = None
            if api is not None:
                path = f"/cases/{quote(record.agency_id, safe='')}/{hex0x(record.case_id)}"
                try:
                    view = api.get_or_none(path)
                except ApiError as exc:
                    api_diffs = [("(request)", "an answer", str(exc))]
                else:
                    api_diffs = (
                        [("(whole)", "the case", "404 not found")] if view is None
                        else expected.differences(expected.case_view(record, model), view)
                    )
            events = []
            for e in record.events:
                item = expected.case_event(e, model)
                problem = proofs[e.seq]
                batch = merkle.get(e.seq)
                if batch is not None and problem is None:
                    if not batch["verified"]:
                        problem = "its Merkle proof does not lead to the anchored root"
                    elif batch.get("contract_verified") is False:
                        problem = "the contract's verifyBatchEntry refuses its Merkle proof"
                item.update(
                    status_after=after[e.seq], record_hash=hex0x(e.record_hash),
                    running_hash=hex0x(model.running.get(e.seq)), actor=e.actor,
                    proof_verified=problem is None, proof_problem=problem, batch=batch,
                )
                events.append(item)
            problems = [f"seq {ev['seq']}: {ev['proof_problem']}" for ev in events if ev["proof_problem"]]
            problems += [f"seq {e.seq}: not a valid transition ({after[e.seq]})" for e, _ in record.invalid]
            if api_diffs:
                problems += [f"the API's view differs: {f}: API {a!r}, chain {w!r}" for f, w, a in api_diffs[:10]]
            ok = ok and not problems
            cases.append({
                "agency_id": record.agency_id, "case_id": hex0x(record.case_id),
                "state": None if state is None else {**state._asdict(), "overdue_at_audited_block": overdue},
                "events": events, "problems": problems,
            })
        return {
            "ok": ok, "case_id": hex0x(case_id), "agency_id": agency, "chain_id": chain.chain_id,
            "contract": chain.address, "block_number": chain.block_number, "block_time": chain.block_time,
            "entry_count": chain.contract_count, "running_hash": hex0x(chain.contract_head),
            "log_complete": log.status.value == "pass",
            "log_findings": [f.message for f in log.findings[:10]], "cases": cases,
            "unread_batches": batch_notes, "hidden_events": hidden,
        }
    finally:
        rpc.close()


def _withheld_note(anchor: DecodedEntry, outcome: Any) -> str:
    """Why a batch that may hold the case's events was not read (`outcome`: its BatchOutcome, None if not fetched)."""
    head = f"batch seq {anchor.seq} ({anchor.record['count']} entries) of {code_text(anchor.agency_id)}"
    if outcome is None:
        return f"{head}: its file was not read (--batches, or --api)"
    kind = outcome.withheld
    why = outcome.problem.message if outcome.problem is not None else "its file was not read"
    return f"{head} withheld — {WITHHELD_MEANING[kind]}: {why}" if kind else head


def _print(result: dict[str, Any], console: Console) -> None:
    tick = {True: "[green]✓[/]", False: "[red]✗[/]"}
    console.print(
        f"[bold]Case {result['case_id']}[/] on chain {result['chain_id']}, contract {result['contract']}, "
        f"as of block {result['block_number']} ({_time(result['block_time'])})"
    )
    console.print(
        f"{tick[result['log_complete']]} the log folds to the contract's runningHash() {result['running_hash']} over "
        f"{result['entry_count']:,} entries: no entry is missing or altered"
    )
    for message in result["log_findings"]:
        console.print(f"  [red]{message}[/]")
    for message in result.get("unread_batches", []):
        console.print(f"[red]✗ {escape(message)}: the case may have events there[/]", highlight=False)
    for message in result.get("hidden_events", []):
        console.print(f"[red]✗ {escape(message)}[/]", highlight=False)
    if not result["cases"]:
        console.print(f"[red]no case {result['case_id']} on this ledger[/]"
                      + (f" for agency {result['agency_id']}" if result["agency_id"] else ""))
    for case in result["cases"]:
        table = Table(title=f"{case['agency_id']} / {case['case_id']}", title_justify="left")
        for column in ("seq", "action", "claimed", "recorded", "latency", "status after", "proof"):
            table.add_column(column)
        for ev in case["events"]:
            table.add_row(
                str(ev["seq"]), ev["action"], _time(ev["occurred_at"]), _time(ev["recorded_at"]),
                _span(ev["recording_latency_seconds"]), ev["status_after"],
                tick[ev["proof_verified"]] if ev["proof_verified"] else f"✗ {ev['proof_problem']}",
            )
        console.print(table)
        for ev in case["events"]:
            p = ev["proof"]
            console.print(
                f"  seq {ev['seq']}: tx {p['tx_hash']} · block {p['block_number']} {p['block_hash']} · log "
                f"{p['log_index']} · entry hash {p['entry_hash']} · record hash {ev['record_hash']} · signed by "
                f"{ev['actor']}", highlight=False,
            )
            b = ev.get("batch")
            if b:
                on_chain = {True: "✓", False: "✗", None: "not asked"}[b.get("contract_verified")]
                console.print(
                    f"    in batch seq {b['batch_seq']} at index {b['index']}: Merkle proof of "
                    f"{len(b['merkle_proof'])} hashes to root {b['root']} {'✓' if b['verified'] else '✗'} · the "
                    f"contract's verifyBatchEntry {on_chain}", highlight=False,
                )
        state = case["state"]
        if state is None:
            console.print("  [yellow]no state: the case has no opening that stands[/]")
        else:
            console.print(
                f"  status [bold]{state['status']}[/] · commitment {state['commitment_id']} v"
                f"{state['commitment_version']} · opened {_time(state['opened_at'])} · due {_time(state['due_at'])} · "
                f"closed {_time(state['closed_at'])} · on hold {_span(state['hold_seconds'])} · on time "
                f"{state['on_time']} · overdue {state['overdue_at_audited_block']} · invalid transitions "
                f"{state['invalid_transitions']}", highlight=False,
            )
            rectification = "" if state["rectification_due"] is None else (
                f" · rating {state['rating']} rectified {_time(state['rectified_at'])} (due "
                f"{_time(state['rectification_due'])})"
            )
            console.print(f"  responded {_time(state['responded_at'])} (due {_time(state['response_due'])})"
                          + rectification, highlight=False)
        for problem in case["problems"]:
            console.print(f"  [red]✗ {problem}[/]", highlight=False)
    console.print("[bold green]VERIFIED[/]" if result["ok"] else "[bold red]NOT VERIFIED[/]")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="civic-verify-case", description=__doc__.split("\n\n")[0])
    p.add_argument("case_id", help="the case id from the receipt: 0x + 64 hex digits")
    p.add_argument("--rpc-url", required=True, help="JSON-RPC URL of a node of the ledger's chain")
    p.add_argument("--contract", required=True, help="address of the CivicLedger contract")
    p.add_argument("--agency", default=None, help="the agency the case belongs to (default: any that has the id)")
    p.add_argument("--api", default=None, metavar="URL", help="also compare the public API's view of the case")
    p.add_argument("--batches", default=None, metavar="DIR_OR_URL",
                   help="where batch files are published (a directory, or an API base URL; default: --api)")
    p.add_argument("--chain-id", type=int, default=None, help="the chain id expected (another one: exit 2)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the result as JSON")
    args = p.parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)
    text = args.case_id[2:] if args.case_id.lower().startswith("0x") else args.case_id
    try:
        case_id = bytes.fromhex(text)
        if len(case_id) != 32:
            raise ValueError
    except ValueError:
        err.print(f"[red]{args.case_id!r} is not a case id (0x + 64 hex digits)[/]")
        return 2
    api = PublicApi(args.api) if args.api else None
    try:
        result = verify(args.rpc_url, args.contract, case_id, agency=args.agency, api=api, chain_id=args.chain_id,
                        batches=args.batches)
    except (CannotAudit, RpcError) as exc:
        err.print(f"[bold red]could not verify[/]: {exc}", highlight=False)
        return 2
    finally:
        if api is not None:
            api.close()
    _print(result, Console())
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
