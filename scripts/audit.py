#!/usr/bin/env python3
"""Independent audit of a Civic Ledger from its chain (and public API): see ``ledger/audit/cli.py`` or ``--help``.

Also installed as the ``civic-audit`` command.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.audit.cli import main

if __name__ == "__main__":
    sys.exit(main())
