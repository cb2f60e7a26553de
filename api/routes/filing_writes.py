"""Citizens file requests and claim printed receipts, signed with keys made on their own devices and relayed by the
service (the citizen pays nothing). The checks and their order are ``api.filing_desk``'s; this module reads the
bodies and answers.

``POST /api/v1/filings``
    The Filing record (agency, commitment, district, channel, content hash, the new receipt key's address) signed with
    EIP-712 by that key in the filings module's domain (``GET /api/v1/chain``: ``filings_address``), the 32-byte salt,
    the content (``ledger.filings.FilingContent``: text, address, point, answers, contact details, photos named by
    hash), the photos' bytes, and the proof of work's nonce (``ledger.filings.work_digest``, ``filing_work_bits``
    zero bits). Answered 202 with the submission (``recorded`` with the filing's ``seq`` on a quick chain; else follow
    ``Location``), or a refusal ``{"error": {"code", "message"}}``:

    ======  ============================  ====================================================================
    429     ``rate_limited``              more than ``filing_rate_per_minute`` filings from this client
    413     ``body_too_large``            over the photos at their largest, in base64, and 256 KiB (``max_body_bytes``)
    400     ``invalid_json``              the body is not JSON
    422     ``invalid_body``              not the documented shape (``field`` names where), or refused by the module
    400     ``work_missing``              no proof of work, or not enough (``work_bits`` says how much)
    422     ``content_mismatch``          content, salt or photos are not what ``content_hash`` commits to
    400     ``bad_signature``             not a signature
    403     ``forged_signature``          not by the filing's receipt key
    409     ``duplicate``                 this signed filing was taken before (the body is that submission)
    404     ``unknown_agency`` /
            ``unknown_commitment``        no such agency, or no such commitment of it
    409     ``commitment_retired``        the commitment is retired
    409     ``receipt_in_use``            the key was used before, or another filing with it is in flight
    429     ``filing_queue_full`` /
            ``filing_budget_exhausted``   the agency's bounds (``Retry-After``)
    503     ``node_unavailable``          the chain cannot be reached, or writes are not configured
    ======  ============================  ====================================================================

``GET /api/v1/filing-policy``
    What a filing must carry here: the filings module's EIP-712 domain, the proof of work's bits, the content's format
    and limits, the channels.

``GET /api/v1/filings/submissions/{id}``
    A filing's submission as POST answered it, with ``seq``, ``case_id`` (the case an acceptance opens: its id follows
    from the seq) and ``service_request_id`` once recorded.

``POST /api/v1/receipt-claims`` and ``GET /api/v1/receipt-claims/{id}``
    A printed receipt moved to the holder's own key: the ReceiptClaim (agency, case, new key's address) signed by the
    printed code's key and by the new key. Refusals as above, plus ``unknown_receipt`` (404) and ``already_claimed``
    (409).

Nothing of the content is logged; the content is shown only to the agency asked (``civic-ledger intake show``).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import base64
import binascii
import logging
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.errors import refusal
from api.filing_desk import DeskDuplicate, DeskRefused, FilingDesk, Taken
from api.ratelimit import Budget
from api.routes.citizen import _CitizenRoute
from api.routes.write import DEFAULT_WAIT_SECONDS, RelayService, _Unavailable, settled
from api.schemas.filing_writes import FilingIn, FilingSubmissionOut, ReceiptClaimIn
from api.schemas.write import ErrorOut
from api.settings import ApiSettings
from ledger.chain.contract import DOMAIN_VERSION, MODULE_NAME
from ledger.encoding import code_text, module_address
from ledger.errors import InvalidRecord
from ledger.filings import (
    ANSWER_WINDOW_WORKING_DAYS,
    ATTACHMENT_TYPES,
    CONTACT_FIELDS,
    CONTENT_FORMAT,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_DESCRIPTION,
    MAX_FIELD,
    WORK_DOMAIN,
)
from ledger.open311 import service_request_id_of
from ledger.records import CHANNEL_NAMES, Filing, ReceiptClaim, filed_case_id, short_code
from ledger.relay.store import RelayStatus

log = logging.getLogger("api.filings")

PREFIX = "/api/v1"
#: the photos at their largest, in base64, and room for the rest (the content's text is a few KiB at most)
MAX_BODY_BYTES = MAX_ATTACHMENTS * ((MAX_ATTACHMENT_BYTES + 2) // 3 * 4) + 2**18


class _FilingRoute(_CitizenRoute):
    limiter_state = "filing_limiter"
    max_body_bytes = MAX_BODY_BYTES


def submission_body(
    status: RelayStatus, record: Filing | ReceiptClaim, receipt_code: str | None = None
) -> dict[str, Any]:
    """A filing's or claim's submission as the API answers it."""
    agency = code_text(record.agency_id)
    body: dict[str, Any] = {
        "id": status.key,
        "kind": "filing" if isinstance(record, Filing) else "receipt_claim",
        "status": status.state,
        "receipt": status.signer,
        "agency_id": agency,
        "record_hash": status.record_hash,
    }
    if status.tx_hash:
        body["tx_hash"] = status.tx_hash
    case_id: bytes | None = record.case_id if isinstance(record, ReceiptClaim) else None
    if status.seqs:
        body["seq"] = status.seqs[0]
        if isinstance(record, Filing):
            case_id = filed_case_id(status.seqs[0])
    if case_id is not None:
        body["case_id"] = "0x" + case_id.hex()
        body["service_request_id"] = service_request_id_of(agency, case_id)
    if receipt_code is not None:
        body["receipt_code"] = receipt_code
    if status.state == "failed":
        body["error"] = {"code": "relay_failed", "name": status.error_name or "NotRelayed",
                         "message": status.error or ""}
    return body


def _code(value: str, field: str) -> bytes:
    try:
        return short_code(value)
    except InvalidRecord as exc:
        raise DeskRefused("invalid_body", f"{field}: {exc}", field=field) from None


def photos_of(given: list[Any]) -> list[tuple[str, bytes]]:
    """The photos' (media type, bytes) from their base64."""
    photos = []
    for index, photo in enumerate(given):
        try:
            photos.append((photo.media_type, base64.b64decode(photo.data, validate=True)))
        except (binascii.Error, ValueError):
            where = f"photos.{index}.data"
            raise DeskRefused("invalid_body", f"{where}: not base64", field=where) from None
    return photos


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid_json, bad_signature or work_missing"},
    403: {"model": ErrorOut, "description": "forged_signature: not signed by the key it must be signed by"},
    404: {"model": ErrorOut, "description": "unknown_agency, unknown_commitment or unknown_receipt"},
    409: {"model": ErrorOut, "description": "duplicate (with the earlier submission), commitment_retired, "
                "receipt_in_use, already_claimed"},
    413: {"model": ErrorOut, "description": "body_too_large"},
    422: {"model": ErrorOut, "description": "invalid_body or content_mismatch"},
    429: {"model": ErrorOut, "description": "rate_limited, filing_queue_full or filing_budget_exhausted (see "
                "Retry-After)"},
    503: {"model": ErrorOut, "description": "the chain is not configured or not reachable"},
}


def answer_refused(exc: Exception) -> JSONResponse:
    """The JSON answer to a desk's refusal, duplicate or unavailability."""
    if isinstance(exc, DeskRefused):
        log.info("filing write refused: %s", exc.code)
        extra = dict(exc.extra)
        retry_after = extra.pop("retry_after", None)
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        return refusal(exc.code, exc.message, headers=headers, **extra)
    if isinstance(exc, DeskDuplicate):
        log.info("filing write refused: duplicate")
        message = "this signed record was submitted before; the body is that submission"
        return JSONResponse({"error": {"code": "duplicate", "message": message}, "id": exc.status.key,
                             "status": exc.status.state}, status_code=409)
    assert isinstance(exc, _Unavailable)
    return refusal(exc.code, exc.message)


def register(app: FastAPI, settings: ApiSettings) -> None:
    service: RelayService = app.state.agency_writes  # the one relay: the citizens' lane sends filings and claims
    desk = FilingDesk(service, work_bits=settings.filing_work_bits)
    app.state.filing_desk = desk
    app.state.filing_limiter = Budget("filings", settings.filing_rate_per_minute, "filings")
    wait_seconds = float(settings.extra.get("write_wait_seconds", DEFAULT_WAIT_SECONDS))

    router = APIRouter(prefix=PREFIX, tags=["filings"], route_class=_FilingRoute)

    async def answer(taken: Taken, record: Filing | ReceiptClaim, follow: str) -> JSONResponse:
        current = await settled(service, taken.status.key, wait_seconds) or taken.status
        body = submission_body(current, record, taken.receipt_code)
        return JSONResponse(body, status_code=202, headers={"Location": f"{PREFIX}/{follow}/{taken.status.key}"})

    @router.post(
        "/filings",
        operation_id="fileRequest",
        status_code=202,
        response_model=FilingSubmissionOut,
        responses=_ERRORS,
        summary="File a request: a Filing signed by a key made on the citizen's device, relayed by the service",
    )
    async def post_filing(body: FilingIn) -> JSONResponse:
        """Checked (see the error codes), stored durably with its private content and relayed as the filings
        module's `file`: the filing is an entry of the ledger at once, and the case's clock starts at its block
        time. Waits a few seconds for the transaction; else follow `Location`."""
        try:
            filing = Filing(
                agency_id=_code(body.filing.agency_id, "filing.agency_id"),
                commitment_id=_code(body.filing.commitment_id, "filing.commitment_id"),
                district=_code(body.filing.district, "filing.district"),
                channel=body.filing.channel,
                content_hash=bytes.fromhex(body.filing.content_hash[2:]),
                receipt=to_checksum_address(body.filing.receipt),
            )
            photos = photos_of(body.photos)
            taken = await run_in_threadpool(
                desk.file, filing, body.signature, body.content, bytes.fromhex(body.salt[2:]), photos,
                work_nonce=body.work,
            )
        except (DeskRefused, DeskDuplicate, _Unavailable) as exc:
            return answer_refused(exc)
        except ValidationError as exc:  # the record's own rules (ledger.records.Filing)
            errors = exc.errors()
            message = str(errors[0]["msg"]).removeprefix("Value error, ") if errors else "invalid"
            return refusal("invalid_body", f"filing: {message}", field="filing")
        return await answer(taken, filing, "filings/submissions")

    @router.post(
        "/receipt-claims",
        operation_id="claimReceipt",
        status_code=202,
        response_model=FilingSubmissionOut,
        responses=_ERRORS,
        summary="Move a printed receipt to a key of the holder's own, signed by both keys",
    )
    async def post_claim(body: ReceiptClaimIn) -> JSONResponse:
        """The claim makes the case's receipt citizen-held: from then on only the new key may rate or dispute it.
        Once per case; relayed as the filings module's `claimReceipt`."""
        try:
            claim = ReceiptClaim(agency_id=_code(body.agency_id, "agency_id"),
                                 case_id=bytes.fromhex(body.case_id[2:]), receipt=to_checksum_address(body.receipt))
            taken = await run_in_threadpool(desk.claim, claim, body.signature, body.new_key_signature)
        except (DeskRefused, DeskDuplicate, _Unavailable) as exc:
            return answer_refused(exc)
        return await answer(taken, claim, "receipt-claims")

    def status_route(path: str, kind: type[Filing] | type[ReceiptClaim], operation: str) -> None:
        name = "filing" if kind is Filing else "receipt claim"

        async def get_status(
            submission_id: Annotated[str, Path(description="the id POST answered with (0x + 64 hex digits)")],
        ) -> JSONResponse:
            text = submission_id.lower()
            if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
                return refusal("not_found", f"no such {name} (ids are 0x and 64 hex digits)")

            def read() -> dict[str, Any] | None:
                store = service.store
                envelope, status = store.envelope(text), store.status(text)
                if envelope is None or status is None or envelope.primary_type != kind.TYPE_NAME:
                    return None
                record = envelope.records()[0]
                assert isinstance(record, (Filing, ReceiptClaim))
                return submission_body(status, record)

            try:
                found = await run_in_threadpool(read)
            except _Unavailable as exc:
                return refusal(exc.code, exc.message)
            return refusal("not_found", f"no such {name}") if found is None else JSONResponse(found)

        router.add_api_route(
            f"/{path}/{{submission_id}}", get_status, methods=["GET"], operation_id=operation,
            response_model=FilingSubmissionOut, responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
            summary=f"A {name}'s submission: pending, sent, recorded (with its seq) or failed",
        )

    policy_router = APIRouter(prefix=PREFIX, tags=["filings"])

    @policy_router.get(
        "/filing-policy",
        operation_id="getFilingPolicy",
        summary="What a filing must carry here: the module's EIP-712 domain, the proof of work, the limits",
    )
    def filing_policy() -> JSONResponse:
        """What a client needs to make a filing this service takes: the filings module's EIP-712 domain (what the new
        key signs under), the proof of work's bits and domain (``ledger.filings.work_digest``), the canonical content's
        format and its limits, the channels, and the per-client rate."""
        domain = None
        if settings.chain_id is not None and settings.contract_address:
            domain = {"name": MODULE_NAME, "version": DOMAIN_VERSION, "chainId": settings.chain_id,
                      "verifyingContract": module_address(to_checksum_address(settings.contract_address))}
        body = {
            "domain": domain,
            "work": {"bits": settings.filing_work_bits, "domain": WORK_DOMAIN.decode()},
            "content": {"format": CONTENT_FORMAT, "max_description": MAX_DESCRIPTION, "max_field": MAX_FIELD,
                        "max_photos": MAX_ATTACHMENTS, "max_photo_bytes": MAX_ATTACHMENT_BYTES,
                        "photo_types": list(ATTACHMENT_TYPES), "contact_fields": list(CONTACT_FIELDS)},
            "channels": {name: code for code, name in CHANNEL_NAMES.items()},
            "rate_per_minute": settings.filing_rate_per_minute,
            "max_body_bytes": MAX_BODY_BYTES,
            "answer_window_working_days": ANSWER_WINDOW_WORKING_DAYS,
        }
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})

    app.include_router(policy_router)

    status_route("filings/submissions", Filing, "getFilingSubmission")
    status_route("receipt-claims", ReceiptClaim, "getReceiptClaim")
    app.include_router(router)


__all__ = ["answer_refused", "photos_of", "register", "submission_body"]
