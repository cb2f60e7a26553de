"""A contract call that must revert with a named custom error (``ledger.errors.ContractReverted``, decoded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.errors import ContractReverted


def refused(error_name: str, call: Callable[..., Any], *args: Any) -> ContractReverted:
    """Run `call`, which must revert with the custom error `error_name`; return the decoded error."""
    with pytest.raises(ContractReverted) as info:
        call(*args)
    assert info.value.error_name == error_name, f"expected {error_name}, got {info.value}"
    return info.value
