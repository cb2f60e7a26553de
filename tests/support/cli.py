"""For the tests of the operator CLI (``civic-ledger``, run in-process on an anvil: each module's ``env`` fixture): a
time as the CLI takes it (ISO 8601, `offset` seconds from the chain's clock), and the receipt code ``case open``
prints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def iso(env: Mapping[str, Any], offset: int = 0) -> str:
    now = env["chain"].w3.eth.get_block("latest")["timestamp"]
    return datetime.fromtimestamp(now + offset, UTC).isoformat()


def code_in(output: str) -> str:
    found = re.search(r"receipt code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){4})", output)
    assert found, output
    return found.group(1)
