#!/usr/bin/env python3
"""Verify one case from its id, printing each event with its proof: see ``ledger/audit/verify_case.py`` or ``--help``.

Also installed as the ``civic-verify-case`` command.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.audit.verify_case import main

if __name__ == "__main__":
    sys.exit(main())
