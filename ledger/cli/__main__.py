"""``python -m ledger.cli``: the operator command line, as ``civic-ledger``."""

import sys

from ledger.cli import app

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
