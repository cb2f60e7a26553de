"""The agency write API: records signed with EIP-712 by an authorised agency key, checked, then relayed exactly once.

``POST /api/v1/agency/records`` takes ``{"typed_data": <eth_signTypedData_v4 object>, "signature": "0x…"}`` (and
optionally ``"signer"``). Every check runs before anything is stored, each refusal a 4xx ``{"error": {"code",
"message"}}``: body shape (422 ``invalid_body``; 400 ``invalid_json``), primary type, types, domain (``wrong_chain``,
``wrong_contract``), the record, the signature (``bad_signature``, ``signer_mismatch``; a contract wallet's, named by
``signer``, is put to the wallet on chain: ERC-1271 ``isValidSignature``), a message already submitted (409
``duplicate``, with that submission), the deadline (``expired``), the key (403 ``unauthorized_signer``) and its nonce
(409 ``stale_nonce``); a key past one of its relay budgets is refused first of all those that ask the chain (429
``budget_exceeded`` naming the budget, ``Retry-After``: ``ledger.relay.budgets``). An accepted record is stored
durably (``ledger.relay.store.RelayStore``) and sent by the agencies' relayer key
(``ledger.relay.writer.RelayWriter``); the answer (202) waits a few seconds for it to be recorded, and
``GET /api/v1/agency/records/{id}`` follows it afterwards.

Logs carry submission ids, signer addresses and error codes only — never bodies.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_hex_address, to_checksum_address
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from api.bodies import MAX_JSON_DEPTH, BodyRefused, nests_too_deep, read_body
from api.clients import client_of
from api.errors import ApiError, budget_exceeded, refusal
from api.ratelimit import Budget
from api.schemas.write import (
    ConflictOut,
    ErrorOut,
    NonceOut,
    SignedRecordIn,
    SubmissionOut,
    TypedDataTemplate,
)
from api.settings import ApiSettings
from ledger.chain.contract import DOMAIN_NAME, DOMAIN_VERSION, NODE_ERRORS, Chain, Ledger
from ledger.chain.erc1271 import DEFAULT_TIMEOUT as WALLET_CHECK_TIMEOUT
from ledger.chain.erc1271 import ContractSigners
from ledger.chain.keys import KeyStore
from ledger.encoding import code_text
from ledger.errors import ChainMismatch, LedgerError, NodeUnavailable, OutboxError
from ledger.relay.budgets import BudgetExceeded
from ledger.relay.store import AGENCY_LANE, CITIZEN_LANE, LANES, RelayStatus, RelayStore
from ledger.relay.verify import MAX_RELAY_BATCH, RELAY_TYPES, RelayRefused, check_signed_record, relay_types
from ledger.relay.writer import RelayWriter

log = logging.getLogger("api.write")

PREFIX = "/api/v1/agency"
#: a batch of MAX_RELAY_BATCH case events is about 250 KB of JSON
MAX_BODY_BYTES = 1024 * 1024
#: how long POST waits for the relay before answering "pending" (ApiSettings.extra["write_wait_seconds"])
DEFAULT_WAIT_SECONDS = 5.0





class _Unavailable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------- the relay, started on first use


class RelayService:
    """The chain connection, relay store and relay writers of one app, built on first use and closed at shutdown.

    One writer per lane (``ledger.relay.store.LANES``): agencies' records from the key ``relayer``, citizens'
    ratings and disputes from the key ``relayer-citizens`` (both in ``<data_dir>/keys``; fund both), so no agency
    backlog ever stands in front of a citizen's record."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._store: RelayStore | None = None
        self._contract_signers: ContractSigners | None = None
        self._writers: dict[str, RelayWriter] = {}
        self._relayers: dict[str, LocalAccount] = {}
        self._retry_writer_at: dict[str, float] = {}
        self._closed = False

    def _ensure(self) -> tuple[Ledger, RelayStore]:
        with self._lock:
            if self._closed:
                raise _Unavailable("write_unavailable", "the service is shutting down")
            if self._ledger is not None and self._store is not None:
                self._start_writers(self._ledger, self._store)  # the relaying process may have gone
                return self._ledger, self._store
            s = self.settings
            if not s.rpc_url or not s.contract_address:
                raise _Unavailable("write_unavailable", "this deployment has no chain configured for writes")
            try:
                chain = Chain.connect(s.rpc_url, expected_chain_id=s.chain_id, timeout=10.0)
                ledger = Ledger(chain, s.contract_address)
            except ChainMismatch as exc:
                log.error("write API: the configured ledger does not match the node: %s", exc)
                raise _Unavailable("write_unavailable", "the configured ledger is not on this node") from exc
            except LedgerError as exc:
                log.error("write API cannot reach its ledger: %s", type(exc).__name__)
                raise _Unavailable("node_unavailable", "the ledger's node cannot be reached; try again later") from exc
            try:
                store = RelayStore(s.data_dir / "relay", ledger, budgets=s.relay_budgets,
                                   filings_per_agency_per_day=s.filings_per_agency_per_day)
                keys = KeyStore(s.data_dir / "keys")
                self._relayers = {lane: keys.get_or_create(key_name) for lane, (_, key_name) in LANES.items()}
            except (LedgerError, OSError, ValueError) as exc:
                log.error("write API cannot open its relay store or key: %s", type(exc).__name__)
                raise _Unavailable("write_unavailable", "the relay is not available; try again later") from exc
            self._ledger, self._store = ledger, store
            self._start_writers(ledger, store)
            return ledger, store

    def _start_writers(self, ledger: Ledger, store: RelayStore) -> None:
        for lane, relayer in self._relayers.items():
            if lane in self._writers or time.monotonic() < self._retry_writer_at.get(lane, 0.0):
                continue
            try:
                writer = RelayWriter(ledger, relayer, store, lane=lane)
            except OutboxError:
                # Another process (another worker) holds the lane's outbox: it sends what this one stores. Try
                # again later, in case that process has stopped.
                log.info("relay outbox of the %s held by another process; this one stores submissions for it", lane)
                self._retry_writer_at[lane] = time.monotonic() + 10.0
                continue
            writer.start()
            self._writers[lane] = writer
            log.info("relaying the %s' records from %s", lane, relayer.address)

    def warm_up(self) -> None:
        """Start relaying at once (submissions left pending by the last run go out without waiting for a request)."""
        try:
            self._ensure()
        except _Unavailable as exc:
            log.warning("write API not started: %s", exc.code)

    @property
    def ledger(self) -> Ledger:
        return self._ensure()[0]

    @property
    def relayer_address(self) -> str | None:
        """The agencies' relayer key's address (None until the relay started)."""
        relayer = self._relayers.get(AGENCY_LANE)
        return None if relayer is None else relayer.address

    @property
    def citizen_relayer_address(self) -> str | None:
        """The address of the key that sends citizens' ratings and disputes (None until the relay started)."""
        relayer = self._relayers.get(CITIZEN_LANE)
        return None if relayer is None else relayer.address

    @property
    def store(self) -> RelayStore:
        return self._ensure()[1]

    @property
    def contract_signers(self) -> ContractSigners:
        """Asks the node whether a contract-wallet signer (ERC-1271) accepts a signature; each request times out
        after ``ApiSettings.extra["wallet_check_timeout"]`` seconds (5 by default)."""
        ledger = self._ensure()[0]
        with self._lock:
            if self._contract_signers is None:
                timeout = float(self.settings.extra.get("wallet_check_timeout", WALLET_CHECK_TIMEOUT))
                self._contract_signers = ContractSigners(ledger.chain, timeout=timeout)
            return self._contract_signers

    def open(self) -> None:
        """Accept work again (the app's lifespan starts it; an app may be started again after a shutdown)."""
        with self._lock:
            self._closed = False
            self._retry_writer_at.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for writer in self._writers.values():
                writer.close()  # stops the thread; what is pending stays in the outbox for the next start
            if self._store is not None:
                self._store.close()
            self._ledger = self._store = None
            if self._contract_signers is not None:
                self._contract_signers.close()
                self._contract_signers = None
            self._writers = {}


# ---------------------------------------------------------------------- responses


def submission_body(status: RelayStatus) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": status.key,
        "status": status.state,
        "signer": status.signer,
        "agency_id": code_text(status.agency_id),
        "primary_type": status.primary_type,
        "nonce": status.nonce,
        "record_hash": status.record_hash,
        "entries": status.entries,
    }
    if status.tx_hash:
        body["tx_hash"] = status.tx_hash
    if status.seqs:
        body["seq"] = status.seqs[0]
        if status.entries > 1:
            body["seqs"] = list(status.seqs)
    if status.state == "failed":
        body["error"] = {"code": "relay_failed", "name": status.error_name or "NotRelayed", "message": status.error}
    return body


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return refusal("invalid_json", "the body is not valid JSON")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "body"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return refusal("invalid_body", f"{where}: {message}", field=where)


async def guard_body(request: Request, limit: int) -> tuple[str, str] | None:
    """Read the body as it arrives (``api.bodies.read_body``: at most `limit` bytes, within its time); refuse a JSON
    body nested deeper than :data:`MAX_JSON_DEPTH` before anything parses it. The body read is kept on the request
    for the route. ``(code, message)`` of a refusal, or None."""
    try:
        body = await read_body(request, limit)
    except BodyRefused as refused:
        return refused.code, refused.message
    content_type = request.headers.get("content-type", "")
    if body and (not content_type or "json" in content_type) and nests_too_deep(body):
        return "invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels: no body here does"
    return None


class _GuardedRoute(APIRoute):
    """A route whose request body is read with :func:`guard_body` (size bound while it arrives, JSON depth) before
    FastAPI parses it, refused in the API's error shape."""

    max_body_bytes = 64 * 1024

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        limit = self.max_body_bytes

        async def handler(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                refused = await guard_body(request, limit)
                if refused is not None:
                    return refusal(*refused)
            return await original(request)

        return handler


class _WriteRoute(APIRoute):
    """Routes of this router answer in the write API's error shape: the rate limit and body size are checked before
    the body is parsed, and a body that does not parse or fit the model is a 400/422 ``{"error": …}``. Subclasses
    (the citizen write API) name their own limiter (an ``app.state`` attribute), body limit and error answers."""

    limiter_state = "agency_write_limiter"
    max_body_bytes = MAX_BODY_BYTES

    @staticmethod
    def refuse(code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
        return refusal(code, message, headers=headers, **extra)

    @staticmethod
    def invalid(exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        limit = self.max_body_bytes

        async def handler(request: Request) -> Response:
            if request.method == "POST":
                budget: Budget = getattr(request.app.state, self.limiter_state)
                wait = budget.wait(client_of(request))
                if wait:
                    log.info("write refused: rate_limited")
                    spent = budget.refusal(wait)
                    return self.refuse(spent.code, spent.message, headers=spent.headers, **spent.extra)
            if request.method in ("POST", "PUT", "PATCH"):
                refused = await guard_body(request, limit)
                if refused is not None:
                    return self.refuse(*refused)
            try:
                return await original(request)
            except RequestValidationError as exc:
                if request.method == "POST":
                    log.info("write refused: invalid body")
                return self.invalid(exc)
            except HTTPException as exc:
                if request.method != "POST" or exc.status_code != 400:
                    raise
                # FastAPI's answer to a body it cannot even decode (not UTF-8): in this API's shape
                log.info("write refused: invalid body")
                return self.refuse("invalid_json", "the body is not valid JSON (UTF-8)")

        return handler


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "refused: the code says why"},
    403: {"model": ErrorOut, "description": "unauthorized_signer: the key is unknown or revoked; agency_mismatch: "
                "signed for another agency than the key writes for"},
    409: {"model": ConflictOut, "description": "duplicate (with the earlier submission) or stale_nonce"},
    413: {"model": ErrorOut, "description": "body_too_large"},
    422: {"model": ErrorOut, "description": "invalid_body: the body does not have the documented shape"},
    429: {"model": ErrorOut, "description": "rate_limited, or budget_exceeded: the signer's relay budget `budget` "
                "(transactions or gas per hour or day) is used up until `resets_at` (see Retry-After)"},
    503: {"model": ErrorOut, "description": "the chain is not configured or not reachable"},
}


def register(app: FastAPI, settings: ApiSettings) -> None:
    service = RelayService(settings)
    app.state.agency_writes = service
    app.state.agency_write_limiter = Budget("writes", settings.write_rate_per_minute, "agency writes")
    wait_seconds = float(settings.extra.get("write_wait_seconds", DEFAULT_WAIT_SECONDS))

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        service.open()
        if (settings.data_dir / "relay" / "relays.sqlite").exists():
            # This deployment has relayed before: resume at once (in the background: startup does not wait for the
            # node), so submissions left pending by the last run do not wait for the next request.
            threading.Thread(target=service.warm_up, name="agency-writes-warm-up", daemon=True).start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    router = APIRouter(prefix=PREFIX, tags=["agency writes"], route_class=_WriteRoute, lifespan=lifespan)

    def domain() -> dict[str, Any]:
        if settings.chain_id is not None and settings.contract_address:
            return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": settings.chain_id,
                    "verifyingContract": to_checksum_address(settings.contract_address)}
        return service.ledger.domain()

    def accept(body: SignedRecordIn) -> tuple[int, dict[str, Any]]:
        """Every check, then the durable store; (HTTP status, body). Runs in a worker thread."""
        ledger = service.ledger
        store = service.store
        typed = body.typed_data.model_dump()
        # A contract wallet's signature (ERC-1271) is checked by asking it on chain: the node failing is a 503.
        signed = _chain(lambda: check_signed_record(typed, body.signature, ledger.domain(), signer=body.signer,
                                                    contract_signers=service.contract_signers))
        existing = store.status(signed.key)
        if existing is not None:
            raise _Duplicate(existing)
        signed.check_deadline()
        try:
            store.check_budget(signed)  # a flood is refused before it costs a node call
            agency_id = _chain(lambda: ledger.agency_of(signed.signer))
            if agency_id == b"\0" * 32:
                raise RelayRefused(
                    "unauthorized_signer",
                    f"{signed.signer} is not authorised for any agency (unknown, or revoked)",
                    signer=signed.signer,
                )
            if agency_id != signed.agency_id:
                raise RelayRefused(
                    "agency_mismatch",
                    f"the record is signed for agency {code_text(signed.agency_id)} but {signed.signer} now writes "
                    f"for {code_text(agency_id)}: the contract would refuse it; sign again for the key's agency",
                    signer=signed.signer,
                )
            status, created = store.submit(signed, agency_id, lambda: _chain(lambda: ledger.nonce(signed.signer)))
        except BudgetExceeded as exc:
            log.info("write refused: %s of %s", exc.budget, signed.signer)
            raise budget_exceeded(exc.budget, exc.message, limit=exc.limit, used=exc.used, resets_at=exc.resets_at,
                                  retry_after=exc.retry_after) from None
        except NodeUnavailable as exc:
            raise _Unavailable("node_unavailable", "the ledger's node did not answer; try again later") from exc
        if not created:
            raise _Duplicate(status)
        log.info("accepted %s: %s by %s (%s), nonce %d", status.key, status.primary_type, status.signer,
                 code_text(agency_id), status.nonce)
        return 202, submission_body(status)

    @router.post(
        "/records",
        operation_id="submitAgencyRecord",
        status_code=202,
        response_model=SubmissionOut,
        responses=_ERRORS,
        summary="Submit a record signed with EIP-712 (eth_signTypedData_v4) by an authorised agency key",
    )
    async def submit_record(body: SignedRecordIn) -> Response:
        """Checks the typed data and signature (see the error codes), stores the submission durably and relays it
        from the service's relayer key; the entry's actor on chain is the agency key. Waits a few seconds for the
        transaction, so the answer is often already `recorded`; else follow `GET /api/v1/agency/records/{id}`."""
        try:
            status_code, payload = await run_in_threadpool(accept, body)
        except RelayRefused as exc:
            log.info("write refused: %s", exc.code)
            return refusal(exc.code, exc.message, **{k: v for k, v in exc.details.items() if k != "recovered"})
        except _Duplicate as dup:
            log.info("write refused: duplicate of %s", dup.status.key)
            message = "this signed record was already submitted; here is that submission"
            if dup.status.state == "failed":
                message += " (it failed: to try again, sign the record again, e.g. with another deadline)"
            return JSONResponse(
                {"error": {"code": "duplicate", "message": message}, **submission_body(dup.status)}, status_code=409
            )
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)
        except ApiError as exc:  # over a budget: 429 from the API's error table
            return exc.response()
        current = await settled(service, payload["id"], wait_seconds)
        if current is not None:
            payload = submission_body(current)
        return JSONResponse(payload, status_code=status_code)

    @router.get(
        "/records/{submission_id}",
        operation_id="getAgencySubmission",
        response_model=SubmissionOut,
        responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="A submission's status (pending, sent, recorded or failed, with the decoded error)",
    )
    async def get_record(submission_id: str) -> Response:
        """The submission with this id (as POST answered it), with `tx_hash` and `seq` once recorded and the
        contract's decoded custom error when it failed."""
        text = submission_id.lower()
        if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
            return refusal("not_found", "no such submission (ids are 0x and 64 hex digits)")
        try:
            status = await run_in_threadpool(lambda: service.store.status(text))
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)
        if status is None:
            return refusal("not_found", "no such submission")
        return JSONResponse(submission_body(status))

    @router.get(
        "/nonce/{address}",
        operation_id="getAgencyNonce",
        response_model=NonceOut,
        responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="The nonce a signer's next signed record must carry (on-chain nonce plus pending relays)",
    )
    async def get_nonce(address: str) -> Response:
        """The signer's on-chain nonce and its submissions still being relayed: the next signed record carries
        `next_nonce`."""
        if not is_hex_address(address):
            return refusal("invalid_address", "not an Ethereum address")
        signer = to_checksum_address(address)

        def read() -> dict[str, Any]:
            onchain = _chain(lambda: service.ledger.nonce(signer))
            next_nonce, pending = service.store.next_nonce(signer, onchain)
            return {"address": signer, "onchain_nonce": onchain, "pending": pending, "next_nonce": next_nonce}

        try:
            return JSONResponse(await run_in_threadpool(read))
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)

    @router.get(
        "/typed-data/{primary_type}",
        operation_id="getAgencyTypedData",
        response_model=TypedDataTemplate,
        responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="EIP-712 types and domain of a relayed record for this deployment",
    )
    async def get_typed_data(primary_type: str) -> Response:
        """What a wallet or library needs to build the typed data: the EIP-712 `types` and this deployment's
        `domain`; the message holds the record (field names as in docs/ledger-format.md), `nonce` and `deadline`."""
        spec = RELAY_TYPES.get(primary_type)
        if spec is None:
            return refusal("not_found", f"unknown primary type; one of {', '.join(RELAY_TYPES)}")
        try:
            found = await run_in_threadpool(domain)
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)
        return JSONResponse({
            "primaryType": primary_type,
            "types": relay_types(primary_type),
            "domain": found,
            "message_fields": ["agencyId", spec.field, "nonce", "deadline"],
            "max_batch": MAX_RELAY_BATCH if spec.batch else None,
        })

    app.include_router(router)


class _Duplicate(Exception):
    def __init__(self, status: RelayStatus) -> None:
        super().__init__(status.key)
        self.status = status


#: what a read from the node raises when the node, not the code, failed (a revert decoded by the ledger included)
_NODE_FAILURES: tuple[type[Exception], ...] = (LedgerError, *NODE_ERRORS)


async def settled(service: RelayService, key: str, wait_seconds: float) -> RelayStatus | None:
    """The submission's status once it is recorded or failed, or as it stands after `wait_seconds` (a POST waits a
    little for the relay, so that on a quick chain its answer is already "recorded"); None when the store has none."""
    deadline = time.monotonic() + wait_seconds
    current = await run_in_threadpool(service.store.status, key)
    while current is not None and current.state in ("pending", "sent") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        current = await run_in_threadpool(service.store.status, key)
    return current


def _chain(call: Callable[[], Any]) -> Any:
    """A read from the node; the node's failure (``NODE_ERRORS``, or a LedgerError such as a revert) is a 503. A
    refusal raised by the call passes through, and so does any other exception: a programming error is a 500, never
    reported as the node being unavailable."""
    try:
        return call()
    except (RelayRefused, _Unavailable):
        raise
    except _NODE_FAILURES as exc:
        log.warning("write API: node read failed (%s)", type(exc).__name__)
        raise _Unavailable("node_unavailable", "the ledger's node did not answer; try again later") from exc


__all__ = ["RelayService", "register"]
