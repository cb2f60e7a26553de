"""What an agency key's outbox holds: waiting, sent, recorded or failed."""

from __future__ import annotations

import typer
from rich.table import Table

from ledger.cli.common import KeyEnvOpt, KeyOpt, PasswordOpt, command, out, settings
from ledger.writer.outbox import Outbox, OutboxState

outbox_app = typer.Typer(help="What an agency key has waiting, sent or failed.", no_args_is_help=True)


@command(outbox_app, "status")
def outbox_status(
    ctx: typer.Context,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Counts of a key's outbox by state, and the failed entries with their reasons."""
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    outbox = Outbox(s.data_dir / "outbox" / f"{signer.address}.sqlite")
    try:
        counts = outbox.counts()
        table = Table(title=f"outbox of {signer.address}")
        for state in OutboxState:
            table.add_column(state.value, justify="right")
        table.add_row(*(str(counts[state]) for state in OutboxState))
        out.print(table)
        for item in outbox.items(OutboxState.FAILED, limit=50):
            out.print(f"  #{item.id}: {item.error}")
    finally:
        outbox.close()
