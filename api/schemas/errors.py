"""The error shape of the read API: every 4xx (and 5xx) answer is an :class:`ErrorResponse` (``api.errors`` makes
them)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.schemas._common import Model


class ValidationIssue(Model):
    loc: list[str | int] = Field(description="where: location then parameter name", examples=[["query", "limit"]])
    msg: str = Field(description="what is wrong", examples=["Input should be less than or equal to 1000"])
    type: str = Field(description="machine-readable kind of problem", examples=["less_than_equal"])


class ErrorInfo(Model):
    code: str = Field(
        description="machine-readable: not_found, invalid_request, rate_limited, method_not_allowed, internal_error…",
        examples=["not_found"],
    )
    message: str = Field(description="what went wrong, for a person", examples=["no agency 'DEMO-PARKS'"])
    detail: list[ValidationIssue] | None = Field(
        default=None, description="for invalid_request: each problem found in the request"
    )


class ErrorResponse(Model):
    """Every 4xx (and 5xx) answer of the API has this shape."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_found", "message": "no agency 'DEMO-PARKS'"}}]}
    )
    error: ErrorInfo
