"""The citizen API: a case looked up by its receipt, and ratings and disputes signed with the receipt key in the
browser, checked, then relayed exactly once by the service (the citizen needs no wallet and pays nothing).

``GET /api/v1/receipts/{address}``
    The case of the receipt whose key has this address — the case lookup's answer, with every event and its proof —,
    the receipt entry, and the feedback state (``api.feedback``): the rating, if any (its comment when the citizen
    agreed to publish it), whether a rating or a dispute would be accepted now and if not why, the closure a dispute
    must name and its deadline, and every dispute with the agency's answer. When the index has no receipt with this
    key, or its state of the case is not the chain's (it is halted or behind), the answer comes from the chain
    (``api.feedback``, ``ledger.chain.receipt_case``): ``feedback.source`` is ``"chain"``,
    ``feedback.source_reason`` says why, and the case's events, rating and disputes are only what the index has.

``POST /api/v1/ratings`` and ``POST /api/v1/disputes``
    The record's fields, the signature (EIP-712 over the Rating or Dispute, domain CivicLedger / 1 / chain id /
    contract, by the receipt key), and optionally the comment or reason: its text, the random salt its on-chain hash
    was made with (``keccak256(salt ‖ utf8(text))``) and whether it may be published. Every check runs before
    anything is stored, in this order, each refusal a 4xx ``{"error": {"code", "message"}}``:

    ======  =========================  ====================================================================
    429     ``rate_limited``           more than ``write_rate_per_minute`` posts from this client
    429     ``citizen_queue_full``     this agency's cases have ``CITIZEN_QUEUE_PER_AGENCY`` ratings/disputes waiting
    413     ``body_too_large``         over 64 KiB
    400     ``invalid_json``           the body is not JSON
    422     ``invalid_body``           not the documented shape (``field`` names where)
    422     ``text_mismatch``          the comment (reason) and its salt do not hash to the record's hash
    400     ``bad_signature``          not 65 bytes, malformed, high s, or not recoverable
    404     ``unknown_receipt``        no receipt is recorded for this case (or no such case)
    403     ``forged_signature``       the signature is valid but not by the case's receipt key
    409     ``duplicate``              this signed record was submitted before (the body carries that submission);
                                       one that failed is sent again instead, once the chain would take it
    409     ``not_closed``             the case is not closed yet
    409     ``already_rated``          the case has been rated (once ever), or a rating of it is being relayed
    409     ``not_fulfilled``          a dispute of a case closed otherwise than fulfilled (rejected, withdrawn)
    409     ``already_disputed``       a dispute of the case awaits the agency's answer, or is being relayed
    409     ``closure_disputed``       the latest closure was disputed already and the agency answered it (standing
                                       by the fulfilment): the contract takes one dispute per closure
    409     ``stale_closure``          the dispute names another closure than the case's latest
    409     ``dispute_window_closed``  the fulfilment is older than the dispute window
    503     ``node_unavailable``       the chain cannot be reached, or writes are not configured
    ======  =========================  ====================================================================

    The receipt and state checks run on the chain itself — the contract's ``receiptCase`` (``Ledger.receipt_case``)
    through ``ledger.receipt_state``'s refusals, then the call run once on the latest block —, never on the index: a
    case the index lacks or lags behind is accepted exactly when the contract would accept it, and refused with the
    contract's reason.
    An accepted record is stored durably with its off-chain text (``ledger.relay.store.RelayStore.submit_citizen``)
    and sent as ``rateCase`` / ``disputeCase`` by the relay's citizens' lane — an outbox and a relayer key of its own,
    so no backlog of agency records ever delays it; nor is it charged to any agency's relay budget. The answer (202)
    waits a few seconds for it to be recorded, and ``GET /api/v1/ratings/{id}`` (``/disputes/{id}``) follows it
    afterwards; a rating someone else put on chain first (a copy of the same signed record) ends ``recorded`` with that
    transaction.

The comment and reason texts are never logged, never put on chain or in the index, and shown only when the citizen
agreed. Logs carry submission ids, receipt addresses (public, on chain) and error codes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api import feedback
from api.batches import batch_proofs
from api.errors import not_found, refusal
from api.http import etag_of, not_modified
from api.ratelimit import Budget
from api.read._common import read_snapshot
from api.read.state import index_state
from api.routes.write import (
    DEFAULT_WAIT_SECONDS,
    RelayService,
    _chain,
    _Unavailable,
    _WriteRoute,
    settled,
)
from api.schemas.citizen import (
    CitizenConflictOut,
    CitizenSubmissionOut,
    DisputeIn,
    OffChainTextIn,
    RatingIn,
    ReceiptView,
)
from api.schemas.errors import ErrorResponse
from api.schemas.write import ErrorOut
from api.settings import ApiSettings
from ledger.chain.contract import DOMAIN_NAME, DOMAIN_VERSION, REVERT_ERRORS, Ledger
from ledger.chain.receipt_case import ChainReceipts
from ledger.encoding import code_text
from ledger.errors import InvalidRecord, NodeUnavailable
from ledger.receipt_state import ReceiptCase, dispute_refusal, rate_refusal
from ledger.records import Dispute, Rating, ReceiptCaseStatus
from ledger.relay.store import CitizenFiles, RelayStatus
from ledger.relay.verify import OffChainText, RelayRefused, SignedCitizenRecord, check_citizen_signature

log = logging.getLogger("api.citizen")

PREFIX = "/api/v1"
#: a rating with a 2000-character comment: up to 24 KB of JSON, every character escaped as a surrogate pair
MAX_BODY_BYTES = 64 * 1024
REVALIDATE = "no-cache"


#: what each refusal of the case's state means, for people (the page words them in its own languages)
STATE_MESSAGES = {
    "not_closed": "the case is not closed yet: it can be rated once the agency has closed it",
    "already_rated": "this case has been rated already: a case is rated once",
    "rating_pending": "a rating of this case is being recorded already: a case is rated once",
    "not_fulfilled": "only a fulfilled case can be disputed; this one was closed otherwise (rejected or withdrawn)",
    "already_disputed": "a dispute of this case awaits the agency's answer already",
    "closure_disputed": "this fulfilment was disputed once already and the agency answered: each closure of a case can "
    "be disputed once",
    "dispute_pending": "a dispute of this fulfilment is being recorded already",
    "dispute_window_closed": "the time to dispute this fulfilment has passed",
}
#: the contract's custom errors (a final call on the latest block), as refusals of this API
REVERT_CODES = {
    "CaseHasNoReceipt": "unknown_receipt",
    "InvalidReceiptSignature": "forged_signature",
    "AlreadyRated": "already_rated",
    "AlreadyDisputed": "already_disputed",
    "StaleClosure": "stale_closure",
    "DisputeWindowClosed": "dispute_window_closed",
    "InvalidScore": "invalid_body",
}


class _Refused(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra




class _CitizenRoute(_WriteRoute):
    """The write routes' checks (rate limit and body size before parsing) with this API's limiter and answers."""

    limiter_state = "citizen_write_limiter"
    max_body_bytes = MAX_BODY_BYTES

    @staticmethod
    def invalid(exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return refusal("invalid_json", "the body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")  # never the input: it may be text
        return refusal("invalid_body", f"{where}: {message}", field=where)


# ---------------------------------------------------------------------- answers


def submission_body(status: RelayStatus, record: Rating | Dispute) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": status.key,
        "kind": "rating" if isinstance(record, Rating) else "dispute",
        "status": status.state,
        "receipt": status.signer,
        "agency_id": code_text(record.agency_id),
        "case_id": "0x" + record.case_id.hex(),
        "record_hash": status.record_hash,
    }
    if status.tx_hash:
        body["tx_hash"] = status.tx_hash
    if status.seqs:
        body["seq"] = status.seqs[0]
    if status.state == "failed":
        body["error"] = {"code": "relay_failed", "name": status.error_name or "NotRelayed", "message": status.error}
    return body


class _Duplicate(Exception):
    def __init__(self, status: RelayStatus, record: Rating | Dispute) -> None:
        super().__init__(status.key)
        self.status = status
        self.record = record


_CITIZEN_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "forged_signature: not signed by the case's receipt key"},
    404: {"model": ErrorOut, "description": "unknown_receipt: no receipt is recorded for this case"},
    409: {
        "model": CitizenConflictOut,
        "description": "the case's state refuses it (not_closed, already_rated, not_fulfilled, already_disputed, "
        "closure_disputed, stale_closure, dispute_window_closed), or duplicate (with the earlier submission)",
    },
    400: {"model": ErrorOut, "description": "invalid_json or bad_signature"},
    413: {"model": ErrorOut, "description": "body_too_large"},
    422: {"model": ErrorOut, "description": "invalid_body or text_mismatch"},
    429: {"model": ErrorOut, "description": "rate_limited, or citizen_queue_full: this agency's cases have as many "
                "ratings and disputes waiting as it may (see Retry-After)"},
    503: {"model": ErrorOut, "description": "the chain is not configured or not reachable"},
}


def register(app: FastAPI, settings: ApiSettings) -> None:
    service: RelayService = app.state.agency_writes  # one relay (key, store, writer) for agencies and citizens
    app.state.citizen_write_limiter = Budget("citizen_writes", settings.write_rate_per_minute, "ratings and disputes")
    wait_seconds = float(settings.extra.get("write_wait_seconds", DEFAULT_WAIT_SECONDS))
    files = CitizenFiles(settings.data_dir / "relay")

    # -- reading: a case by its receipt

    chain_receipts: list[ChainReceipts] = []  # one, over the relay's chain connection, built on first use

    def receipts_on_chain() -> ChainReceipts | None:
        """The chain's side of receipts (``ledger.chain.receipt_case``); None when no chain is configured or reachable
        now — the index then answers alone, as it can."""
        try:
            ledger = service.ledger
        except _Unavailable as exc:
            log.info("receipt look-up without the chain: %s", exc.code)
            return None
        if not chain_receipts or chain_receipts[0].ledger is not ledger:  # first use, or the relay was restarted
            chain_receipts[:] = [ChainReceipts(ledger)]
        return chain_receipts[0]

    reader = APIRouter(prefix=PREFIX, tags=["receipts"])

    @reader.get(
        "/receipts/{address}",
        operation_id="getReceipt",
        response_model=ReceiptView,
        summary="A case by its receipt key's address, with what its holder may do now",
        responses={
            200: {"description": "The case, its receipt and the feedback state"},
            304: {"description": "Not modified: If-None-Match matched the current ETag"},
            404: {"model": ErrorResponse, "description": "No receipt with this key is recorded"},
        },
    )
    async def get_receipt(
        request: Request,
        address: Annotated[
            str,
            Path(
                pattern=r"^0x[0-9a-fA-F]{40}$",
                description="address of the receipt key (the page derives it from the receipt's code, which never "
                "leaves the browser)",
                examples=["0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"],
            ),
        ],
    ) -> Any:
        """The case as `GET /cases/{agency_id}/{case_id}` shows it (state, every event with its proof), plus
        `receipt` (the ReceiptIssued entry and its proof) and `feedback`: the rating (its comment only when the
        citizen agreed to publish it), `can_rate` / `rate_refusal`, `can_dispute` / `dispute_refusal` with the
        closure a dispute must name and its deadline, every dispute with the agency's answer, and submissions
        accepted here that the index does not show yet."""
        checksummed, now = to_checksum_address(address), int(time.time())

        def read() -> tuple[bytes | None, str]:
            chain = receipts_on_chain()
            with read_snapshot(request.app.state.store) as conn:
                state = index_state(conn, settings.contract_address, settings.chain_id)
                view = feedback.receipt_view(conn, state, checksummed, now, files, batch_proofs(request.app), chain)
            body = None if view is None else view.model_dump_json().encode()
            return body, etag_of("receipt", hashlib.sha256(body or b"").hexdigest())

        body, etag = await run_in_threadpool(read)
        if body is None:
            raise not_found("no receipt with this key is recorded (check the code, or wait a minute: a receipt "
                            "issued just now may not be on the ledger yet)")
        headers = {"ETag": etag, "Cache-Control": REVALIDATE}
        if not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    app.include_router(reader)

    # -- writing: ratings and disputes

    router = APIRouter(prefix=PREFIX, tags=["ratings and disputes"], route_class=_CitizenRoute)

    def domain(ledger: Ledger) -> dict[str, Any]:
        if settings.chain_id is not None and settings.contract_address:
            return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": settings.chain_id,
                    "verifyingContract": to_checksum_address(settings.contract_address)}
        return ledger.domain()

    def parse(body: RatingIn | DisputeIn) -> tuple[Rating | Dispute, OffChainText | None]:
        try:
            agency = feedback.code_bytes(body.agency_id)
        except InvalidRecord:
            raise _Refused("invalid_body", "agency_id: not an agency code", field="agency_id") from None
        case = bytes.fromhex(body.case_id[2:])
        given: OffChainTextIn | None
        record: Rating | Dispute
        if isinstance(body, RatingIn):
            record = Rating(agency_id=agency, case_id=case, score=body.score,
                            comment_hash=bytes.fromhex(body.comment_hash[2:]))
            given, hashed, name = body.comment, record.comment_hash, "comment"
        else:
            record = Dispute(agency_id=agency, case_id=case, closure=body.closure,
                             reason_hash=bytes.fromhex(body.reason_hash[2:]))
            given, hashed, name = body.reason, record.reason_hash, "reason"
        text = None
        if given is not None:
            text = OffChainText(given.text, bytes.fromhex(given.salt[2:]), given.publish)
            if text.hash != hashed:
                raise _Refused(
                    "text_mismatch",
                    f"keccak256(salt ‖ utf8({name})) is not the record's {name}_hash: the {name} or its salt differs "
                    "from what was signed",
                    field=f"{name}_hash",
                )
        return record, text

    def refuse_state(code: str | None) -> None:
        if code is not None:
            mapped = {"rating_pending": "already_rated", "dispute_pending": "already_disputed"}.get(code, code)
            raise _Refused(mapped, STATE_MESSAGES[code])

    def check_against(signed: SignedCitizenRecord, tracked: ReceiptCase, now: int) -> None:
        """The contract's checks, in its order, on the case's state as the contract tracks it: ``rate_refusal`` and
        ``dispute_refusal`` (of the closure the dispute names) of ``ledger.receipt_state``, the one definition the
        receipt view also uses. Only the words are this API's (:data:`STATE_MESSAGES`, and stale_closure's, which
        name the closures)."""
        record = signed.record
        if isinstance(record, Rating):
            refuse_state(rate_refusal(tracked))
            return
        assert isinstance(record, Dispute)
        refused = dispute_refusal(tracked, now, closure=record.closure)
        if refused == "stale_closure":
            raise _Refused(
                "stale_closure",
                f"the dispute names closure {record.closure}, but the case's latest is {tracked.closures}: "
                "look the case up again and sign anew",
                expected_closure=tracked.closures,
            )
        refuse_state(refused)

    def accept(body: RatingIn | DisputeIn) -> tuple[int, dict[str, Any]]:
        """Every check, then the durable store; (HTTP status, body). Runs in a worker thread."""
        record, text = parse(body)
        ledger, store = service.ledger, service.store
        try:
            signed = check_citizen_signature(record, body.signature, domain(ledger))
        except RelayRefused as exc:
            raise _Refused(exc.code, exc.message, field="signature") from None
        agency_code, case_hex = code_text(record.agency_id), "0x" + record.case_id.hex()
        # the chain's own state of the case (``receiptCase``), not the index's: a case the index lacks or lags
        # behind is taken exactly when the contract would take it, and refused with the contract's reason
        chain = _chain(lambda: ledger.receipt_case(record.agency_id, record.case_id))
        if chain.status is ReceiptCaseStatus.NONE:
            raise _Refused("unknown_receipt", f"the ledger has no receipt for case {case_hex} of agency "
                                              f"{agency_code!r}")
        if chain.receipt != signed.signer:
            raise _Refused(
                "forged_signature",
                "the signature is not by this case's receipt key: only the key derived from the case's receipt "
                "code can rate or dispute it",
            )
        existing = store.status(signed.key)
        if existing is not None and existing.state != "failed":
            raise _Duplicate(existing, record)
        latest = _chain(lambda: ledger.w3.eth.get_block("latest"))
        # the block the record is checked at: a copy mined from then on is the same record (the relay looks there)
        block_time, seen = int(latest["timestamp"]), int(latest["number"])
        check_against(signed, ReceiptCase.of_chain(chain), block_time)
        simulate(ledger, signed)
        try:
            if existing is not None:  # it failed, and the chain takes it now: the same submission, sent again
                status, created = store.retry_citizen(signed.key), True
            else:
                status, created = store.submit_citizen(signed, text, seen_block=seen)
        except RelayRefused as exc:  # another rating (dispute) of the case is in flight, or the agency's queue is full
            retry_after = exc.details.get("retry_after")
            raise _Refused(exc.code, exc.message, submission=exc.details.get("submission"),
                           headers=None if retry_after is None else {"Retry-After": str(retry_after)}) from None
        except NodeUnavailable as exc:
            raise _Unavailable("node_unavailable", "the ledger's node did not answer; try again later") from exc
        if not created:
            raise _Duplicate(status, record)
        log.info("accepted a %s of %s", signed.primary_type, agency_code)  # never its receipt or submission key
        return 202, submission_body(status, record)

    def simulate(ledger: Ledger, signed: SignedCitizenRecord) -> None:
        """Run the call once on the latest block, as the relayer would send it: any refusal is answered now."""
        call = ledger.encode_citizen_call(signed.record, signed.signature)
        relayer = service.citizen_relayer_address

        def run() -> None:
            try:
                call.call({"from": relayer} if relayer else {})
            except REVERT_ERRORS as exc:
                reverted = ledger.decode_revert(exc)
                if reverted.error_name == "InvalidReceiptCaseStatus":
                    closed = int(reverted.error_args.get("status", 0)) != int(ReceiptCaseStatus.OPEN)
                    code = "not_fulfilled" if closed else "not_closed"
                else:
                    code = REVERT_CODES.get(reverted.error_name, "refused_by_ledger")
                message = STATE_MESSAGES.get(code) or f"the ledger refuses it: {reverted.error_name}"
                raise _Refused(code, message) from None

        _chain(run)

    async def submit(body: RatingIn | DisputeIn, follow: str) -> Response:
        try:
            status_code, payload = await run_in_threadpool(accept, body)
        except _Refused as exc:
            log.info("citizen write refused: %s", exc.code)
            return refusal(exc.code, exc.message, **exc.extra)
        except _Duplicate as dup:
            log.info("citizen write refused: duplicate")
            message = "this signed record was submitted before; the body is that submission"
            return JSONResponse(
                {"error": {"code": "duplicate", "message": message}, **submission_body(dup.status, dup.record)},
                status_code=409,
            )
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)
        key = payload["id"]
        current = await settled(service, key, wait_seconds)
        if current is not None:
            payload = submission_body(current, parse(body)[0])
        return JSONResponse(payload, status_code=status_code, headers={"Location": f"{PREFIX}/{follow}/{key}"})

    @router.post(
        "/ratings",
        operation_id="submitRating",
        status_code=202,
        response_model=CitizenSubmissionOut,
        responses=_CITIZEN_ERRORS,
        summary="Rate a closed case: a Rating signed by its receipt key, relayed by the service",
    )
    async def post_rating(body: RatingIn) -> Response:
        """The Rating (agency, case, score 1–5, comment hash) signed with EIP-712 by the receipt key, and optionally
        the comment with its salt and whether it may be published. Checked against the index and the chain (see the
        error codes), stored durably and relayed as `rateCase`; the entry's actor on chain is the receipt key.
        Waits a few seconds for the transaction; else follow `GET /api/v1/ratings/{id}`."""
        return await submit(body, "ratings")

    @router.post(
        "/disputes",
        operation_id="submitDispute",
        status_code=202,
        response_model=CitizenSubmissionOut,
        responses=_CITIZEN_ERRORS,
        summary="Dispute a fulfilment: a Dispute signed by the case's receipt key, relayed by the service",
    )
    async def post_dispute(body: DisputeIn) -> Response:
        """The Dispute (agency, case, the closure disputed — the latest —, reason hash) signed with EIP-712 by the
        receipt key, and optionally the reason with its salt and whether it may be published. Accepted within the
        dispute window after the fulfilment; the agency must then answer (reopen the case, or reject the dispute
        with a reason). Relayed as `disputeCase`; follow it with `GET /api/v1/disputes/{id}`."""
        return await submit(body, "disputes")

    def status_route(kind: type[Rating] | type[Dispute], path: str, operation: str) -> None:
        name = "rating" if kind is Rating else "dispute"

        async def get_status(
            submission_id: Annotated[
                str, Path(description="the id a POST answered with (0x + 64 hex digits)", examples=["0x7d3c…"])
            ],
        ) -> Response:
            text = submission_id.lower()
            if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
                return refusal("not_found", f"no such {name} (ids are 0x and 64 hex digits)")

            def read() -> dict[str, Any] | None:
                store = service.store
                envelope = store.envelope(text)
                status = store.status(text)
                if envelope is None or status is None or envelope.primary_type != kind.TYPE_NAME:
                    return None
                record = envelope.records()[0]
                assert isinstance(record, (Rating, Dispute))
                return submission_body(status, record)

            try:
                found = await run_in_threadpool(read)
            except _Unavailable as exc:
                return refusal(exc.code, exc.message)
            if found is None:
                return refusal("not_found", f"no such {name}")
            return JSONResponse(found)

        router.add_api_route(
            f"/{path}/{{submission_id}}",
            get_status,
            methods=["GET"],
            operation_id=operation,
            response_model=CitizenSubmissionOut,
            responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
            summary=f"A {name}'s status (pending, sent, recorded or failed, with the decoded error)",
            description=f"The {name} with this id as POST answered it, with `tx_hash` and `seq` once recorded and the "
            "contract's decoded custom error when it failed.",
        )

    status_route(Rating, "ratings", "getRating")
    status_route(Dispute, "disputes", "getDispute")
    app.include_router(router)
    app.openapi_tags = (app.openapi_tags or []) + [
        {"name": "receipts", "description": "A case seen through the citizen's receipt"},
        {"name": "ratings and disputes", "description": "Citizens' feedback, signed with the receipt key"},
    ]


__all__ = ["register"]
