"""The operator command line: register agencies and keys, publish commitments, record cases (one by one, imported
from CSV / JSON Lines, or as Merkle-anchored batches), sync the index and show metrics. ``civic-ledger --help`` lists
everything.

Agencies write through the :class:`~ledger.writer.sender.Writer` and its durable outbox (``DATA_DIR/outbox/``), so a
command interrupted halfway can simply be run again: nothing is recorded twice. ``batch submit`` writes through
:mod:`ledger.batches` instead: a batch is recognised on chain by its file's hash, so running it again anchors nothing
twice either.

One module per group of commands, each a thin layer over the ledger's packages: :mod:`~ledger.cli.governance`
(agency, auditor), :mod:`~ledger.cli.commitments` (commitment, calendar), :mod:`~ledger.cli.cases` (case),
:mod:`~ledger.cli.intake` (citizens' filings), :mod:`~ledger.cli.outbox`, :mod:`~ledger.cli.batches` (batch) and
:mod:`~ledger.cli.index` (sync, metrics); what they
share (settings, keys, errors turned into exit codes) is in :mod:`~ledger.cli.common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledger.cli import batches, cases, commitments, deploy, governance, index, intake, outbox
from ledger.cli.common import Settings
from ledger.config import DEFAULT_DATA_DIR

app = typer.Typer(
    help="Civic Ledger operator commands: agencies and keys, commitments, cases (one by one, imported, or in "
    "Merkle-anchored batches), the index and its metrics. Agency writes go through a durable outbox: an interrupted "
    "command can be run again.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(index.index_app)  # sync, metrics: top-level commands
app.add_typer(deploy.deploy_app)  # deploy, verify-deployment: top-level commands
app.add_typer(governance.agency_app, name="agency")
app.add_typer(commitments.commitment_app, name="commitment")
app.add_typer(cases.case_app, name="case")
app.add_typer(commitments.calendar_app, name="calendar")
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(batches.batch_app, name="batch")
app.add_typer(governance.auditor_app, name="auditor")
app.add_typer(intake.intake_app, name="intake")


@app.callback()
def main(
    ctx: typer.Context,
    rpc_url: Annotated[str, typer.Option(envvar="CIVIC_RPC_URL", help="JSON-RPC URL of the chain")] = (
        "http://127.0.0.1:8545"
    ),
    contract: Annotated[
        str | None, typer.Option(envvar="CIVIC_CONTRACT", help="ledger contract address (default: DATA_DIR's)")
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option(envvar="CIVIC_CHAIN_ID", help="refuse to work on any other chain id")
    ] = None,
    data_dir: Annotated[Path, typer.Option(envvar="CIVIC_DATA_DIR", help="keys, outboxes, index")] = DEFAULT_DATA_DIR,
) -> None:
    ctx.obj = Settings(rpc_url=rpc_url, contract=contract, chain_id=chain_id, data_dir=data_dir)
