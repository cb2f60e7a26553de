"""One table of error codes (api.errors.ERRORS): every code the API or the relay refuses with has exactly one status,
whichever route answers it, and the statuses routes once disagreed on are the ones documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.errors import ERRORS, STATUS_CODES, ApiError, refusal
from api.routes.citizen import REVERT_CODES, STATE_MESSAGES

ROOT = Path(__file__).resolve().parents[2]
#: a refusal raised or returned with a literal code, in the API and in the relay whose refusals it answers with
RAISED = re.compile(r"\b(?:refusal|ApiError|refuse|_Refused|_Unavailable|RelayRefused)\(\s*\"([a-z_]+)\"", re.S)


def _codes_in_source() -> set[str]:
    codes = set()
    for path in [*(ROOT / "api").rglob("*.py"), *(ROOT / "ledger" / "relay").rglob("*.py")]:
        codes |= set(RAISED.findall(path.read_text()))
    return codes


def test_every_code_the_api_answers_with_has_its_one_status() -> None:
    used = _codes_in_source() | set(REVERT_CODES.values()) | set(STATE_MESSAGES) - {"rating_pending", "dispute_pending"}
    assert len(used) > 25  # the scan finds the routes' refusals
    assert not used - set(ERRORS), "codes answered with but missing from api.errors.ERRORS"
    assert set(STATUS_CODES.values()) <= set(ERRORS)
    assert all(ERRORS[code] == status for status, code in STATUS_CODES.items())


@pytest.mark.parametrize(("code", "status"), [("invalid_json", 400), ("bad_signature", 400), ("body_too_large", 413),
                                              ("invalid_body", 422), ("node_unavailable", 503)])
def test_the_codes_routes_once_disagreed_on(code: str, status: int) -> None:
    assert ERRORS[code] == status
    assert refusal(code, "m").status_code == status == ApiError(code, "m").status_code


def test_an_unknown_code_is_a_programming_error_not_an_answer() -> None:
    with pytest.raises(KeyError):
        refusal("no_such_code", "m")
