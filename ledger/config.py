"""Where the service keeps its things, and the record of which ledger it serves: one definition for the operator's
command line, the API and the local network.

- ``DEFAULT_DATA_DIR``: ``CIVIC_DATA_DIR``, else ``data/`` beside the code (keys, outboxes, relay store, batch files,
  audit reports, the SQLite index, ``deployment.json``).
- :class:`Deployment`: ``DATA_DIR/deployment.json``, written when the ledger is deployed, read by every part that
  is not told the contract's address (``CIVIC_CONTRACT``) explicitly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ledger.errors import LedgerError

DEFAULT_DATA_DIR = Path(os.environ.get("CIVIC_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
DEPLOYMENT_FILE = "deployment.json"


@dataclass(frozen=True)
class Deployment:
    """Where the ledger this data directory serves was deployed."""

    chain_id: int
    address: str
    block: int
    governance: str

    @classmethod
    def load(cls, path: Path) -> Deployment | None:
        """The record at ``path`` (a data directory's ``deployment.json``), or None when there is none."""
        if not path.exists():
            return None
        try:
            recorded = json.loads(path.read_text())
            return cls(chain_id=int(recorded["chain_id"]), address=str(recorded["address"]),
                       block=int(recorded.get("block", 0)), governance=str(recorded.get("governance", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"{path} is not a deployment record ({type(exc).__name__}: {exc})") from None

    @classmethod
    def of(cls, data_dir: Path) -> Deployment | None:
        return cls.load(Path(data_dir) / DEPLOYMENT_FILE)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves half a file
