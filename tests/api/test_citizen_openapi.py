"""The citizen API's OpenAPI document is true: schemathesis calls the receipt lookup, the rating and dispute posts and
their status endpoints with generated requests (against the ASGI app, on a ledger of its own with receipt cases) and
finds no server error and no answer that breaks the document. Generated bodies never carry a receipt key's signature,
so every post is refused before anything is stored — which the test checks too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.settings import ApiSettings
from ledger.records import CaseAction
from tests.support.citizens import CitizenWorld, citizen_world

CITIZEN_OPERATIONS = {
    "getReceipt": ("get", "/api/v1/receipts/{address}"),
    "submitRating": ("post", "/api/v1/ratings"),
    "submitDispute": ("post", "/api/v1/disputes"),
    "getRating": ("get", "/api/v1/ratings/{submission_id}"),
    "getDispute": ("get", "/api/v1/disputes/{submission_id}"),
}

#: the whole app on default settings: its document needs no chain or store, so it can be read when tests are collected
DOCUMENTED = create_app(ApiSettings(store_url="sqlite://", rpc_url=None))
schema = schemathesis.openapi.from_asgi("/openapi.json", DOCUMENTED).include(operation_id=list(CITIZEN_OPERATIONS))


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("citizen-openapi")) as world:
        world.open("fuzzed")
        world.act("fuzzed", CaseAction.FULFILLED)
        world.sync()
        yield world


@pytest.fixture(scope="module")
def fuzzed_app(cw: CitizenWorld) -> FastAPI:
    return create_app(cw.settings(read_rate_per_minute=10**9, write_rate_per_minute=10**9,
                                  extra={"write_wait_seconds": "0"}))


def test_every_citizen_operation_is_documented_with_examples() -> None:
    document = DOCUMENTED.openapi()
    for op_id, (method, path) in CITIZEN_OPERATIONS.items():
        op = document["paths"][path][method]
        assert op["operationId"] == op_id
        assert op.get("summary") and op.get("description"), op_id
        for parameter in op.get("parameters", []):
            assert parameter.get("description") and parameter["schema"].get("examples"), op_id
        assert "200" in op["responses"] or "202" in op["responses"], op_id
    for name in ("RatingIn", "DisputeIn", "CitizenSubmissionOut", "Feedback"):
        assert document["components"]["schemas"][name].get("examples"), name
    for method_path in (("post", "/api/v1/ratings"), ("post", "/api/v1/disputes")):
        responses = document["paths"][method_path[1]][method_path[0]]["responses"]
        assert {"202", "400", "403", "404", "409", "413", "422", "429", "503"} <= set(responses), method_path


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    case: Any, fuzzed_app: FastAPI, cw: CitizenWorld
) -> None:
    entries = cw.ledger.entry_count()
    # generated bodies are well formed but signed by no receipt key: refused (400, 422, 403, 404, 409), never a 5xx
    case.call_and_validate(app=fuzzed_app, excluded_checks=[positive_data_acceptance])
    assert cw.ledger.entry_count() == entries
