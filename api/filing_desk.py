"""Taking a citizen's filing, or a receipt claim, for the ledger: every check, then the relay's durable store. The
routes that take them (``POST /api/v1/filings``, ``POST /api/v1/receipt-claims``, Open311's ``POST requests``) parse
their own formats and answer in their own shapes; what is checked, in what order and with what refusal is here, once.

A filing (:meth:`FilingDesk.file`), each refusal a :class:`DeskRefused` with a code of ``api.errors.ERRORS``:

1. ``work_missing`` — the proof of work (``ledger.filings.work_done``) is absent or short, when the route asks for
   it (the page's filers do it; an Open311 app with its API key does not);
2. ``content_mismatch`` — the content, its salt or the photos are not what the filing's ``contentHash`` commits to
   (``ledger.filings.FilingContent.content_hash``), or a photo is not the image it claims to be;
3. ``bad_signature`` / ``forged_signature`` — the signature does not recover, or not to the filing's receipt key
   (a filing is signed by its own new key, in the filings module's EIP-712 domain);
4. ``duplicate`` — this signed filing was taken before (:class:`DeskDuplicate` carries it);
5. the module's own refusal, the call run once on the latest block as the relayer would send it: ``unknown_agency``,
   ``unknown_commitment``, ``commitment_retired``, ``receipt_in_use`` (the key was used before: a key files once),
   ``invalid_body``;
6. the relay's bounds (``ledger.relay.store.RelayStore.submit_filing``): ``receipt_in_use`` while another filing with
   the key is in flight, ``filing_queue_full`` and ``filing_budget_exhausted`` per agency (with ``Retry-After``);
7. ``node_unavailable`` / ``write_unavailable`` when the chain or the relay cannot be reached.

What passes is stored durably — the signed filing and, beside it, the private content, its salt and the photos
(``RelayStore.submit_filing``) — and sent by the citizens' lane: the filer pays nothing, and no agency's backlog
stands in front of it. The content is never logged: logs carry submission ids, public codes and error codes.

A client that cannot make a key (a plain Open311 app) may ask the service to make one
(:meth:`FilingDesk.file_with_new_key`): its receipt code is made here, used to sign, answered once and never kept.
Such a filing is on chain like any other; the key is the citizen's from then on, but the service saw it once — as it
serves the page whose script makes the other keys. ``docs/threat-model.md`` weighs it.

A receipt claim (:meth:`FilingDesk.claim`): the issued key's signature and the new key's, both checked here
(``bad_signature``; ``forged_signature`` unless the first is by the case's current receipt key and the second by the
new key), then ``already_claimed`` (the case's receipt is citizen-held already, or a claim of it is in flight),
``receipt_in_use`` (the new key was used before), ``unknown_receipt`` (the case has no receipt), each from the chain.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.routes.write import RelayService, _chain, _Unavailable
from ledger.chain.contract import REVERT_ERRORS, Ledger
from ledger.errors import NodeUnavailable, OutboxError
from ledger.filings import FilingContent, attachment_of, work_done
from ledger.receipts import address as receipt_address
from ledger.receipts import format_code, new_code, private_key
from ledger.records import Filing, ReceiptCaseStatus, ReceiptClaim
from ledger.relay.store import RelayStatus
from ledger.relay.verify import RelayRefused, SignedCitizenRecord, check_citizen_signature

log = logging.getLogger("api.filings")

#: the module's custom errors (the call run once on the latest block), as refusals of this API
REVERT_CODES = {
    "UnknownAgency": ("unknown_agency", "no agency with this code is registered on the ledger"),
    "UnknownCommitment": ("unknown_commitment", "the agency has published no commitment with this code"),
    "CommitmentIsRetired": ("commitment_retired", "this commitment is retired: file under one in force"),
    "ReceiptKeyAlreadyUsed": ("receipt_in_use", "this receipt key has been used on the ledger already: each filing "
                              "(each claim) is made with a new key"),
    "ReceiptKeyIsContract": ("receipt_in_use", "the receipt key's address holds a contract: use a new key"),
    "InvalidReceipt": ("invalid_body", "the receipt address must not be zero"),
    "InvalidFiling": ("invalid_body", "the ledger refuses the filing's fields"),
    "InvalidKeySignature": ("forged_signature", "the signature is not by the key it must be by"),
    "CaseHasNoReceipt": ("unknown_receipt", "the ledger has no receipt for this case"),
    "ReceiptAlreadyCitizenHeld": ("already_claimed", "this case's receipt is held by a citizen already: a claim is "
                                  "made once, and a case filed by its citizen needs none"),
}


class DeskRefused(Exception):
    """A refusal: ``code`` (``api.errors.ERRORS``), a message for people, and facts beside them (``retry_after``,
    ``field``, ``submission``)."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = {k: v for k, v in extra.items() if v is not None}


class DeskDuplicate(Exception):
    """The same signed record was taken before: its submission."""

    def __init__(self, status: RelayStatus) -> None:
        super().__init__(status.key)
        self.status = status


@dataclass(frozen=True)
class Taken:
    """A filing or claim the relay stored (or had stored: ``created`` False), and a service-made key's code."""

    status: RelayStatus
    created: bool
    #: the receipt code of a key this service made for the filer (:meth:`FilingDesk.file_with_new_key`), shown once
    receipt_code: str | None = None


class FilingDesk:
    """Checks and stores citizens' filings and receipt claims through one :class:`RelayService`."""

    def __init__(self, service: RelayService, *, work_bits: int) -> None:
        self.service = service
        self.work_bits = work_bits

    # -- filings

    def file(
        self,
        filing: Filing,
        signature: str | bytes,
        content: FilingContent,
        salt: bytes,
        photos: list[tuple[str, bytes]],
        *,
        work_nonce: int | None,
        work_required: bool = True,
    ) -> Taken:
        """Every check of the module's docstring, in its order, then the durable store. Runs in a worker thread."""
        if work_required and self.work_bits > 0 and (
            work_nonce is None or not work_done(filing.receipt, work_nonce, self.work_bits)
        ):
            raise DeskRefused(
                "work_missing",
                f"a filing carries a proof of work: a nonce whose sha256 with the receipt address starts with "
                f"{self.work_bits} zero bits (the page computes it)", work_bits=self.work_bits,
            )
        self._check_content(filing, content, salt, photos)
        ledger = self.service.ledger
        signed = self._signed(filing, signature, ledger)
        if signed.signer != filing.receipt:
            raise DeskRefused("forged_signature", "a filing is signed by its own receipt key: the signature is by "
                                                  "another key", field="signature")
        self._refuse_duplicate(signed)
        seen = self._head(ledger)
        self._simulate(ledger, filing, signed.signature)
        taken = self._store("filing", lambda: self.service.store.submit_filing(
            signed, content, salt, [data for _, data in photos], seen_block=seen))
        # never its receipt address nor its submission key (Open311's token): either finds the filer's case
        log.info("filing accepted for agency %s", filing.agency_id.rstrip(b"\0").decode("ascii", "replace"))
        return taken

    def file_with_new_key(
        self,
        agency_id: bytes,
        commitment_id: bytes,
        district: bytes,
        channel: int,
        content: FilingContent,
        photos: list[tuple[str, bytes]],
    ) -> Taken:
        """File for a client that cannot make a key: a receipt code made here, its key signing the filing, the code
        answered once (``Taken.receipt_code``) and kept nowhere. No proof of work: the route asks its own (an API
        key)."""
        code = new_code()
        salt = os.urandom(32)
        filing = Filing(agency_id=agency_id, commitment_id=commitment_id, district=district, channel=channel,
                        content_hash=content.content_hash(salt), receipt=receipt_address(code))
        signature = self.service.ledger.sign_filing(private_key(code), filing)
        taken = self.file(filing, signature, content, salt, photos, work_nonce=None, work_required=False)
        return Taken(taken.status, taken.created, format_code(code))

    @staticmethod
    def _check_content(filing: Filing, content: FilingContent, salt: bytes, photos: list[tuple[str, bytes]]) -> None:
        if len(photos) != len(content.attachments):
            raise DeskRefused("content_mismatch", f"the content names {len(content.attachments)} photos, and "
                                                  f"{len(photos)} came", field="photos")
        for index, ((media_type, data), named) in enumerate(zip(photos, content.attachments, strict=True)):
            try:
                attachment = attachment_of(media_type, data)
            except ValueError as exc:
                raise DeskRefused("content_mismatch", f"photos.{index}: {exc}", field=f"photos.{index}") from None
            if attachment != named:
                raise DeskRefused("content_mismatch", f"photos.{index} is not the photo content.attachments.{index} "
                                                      "names (its type, SHA-256 or size differ)",
                                  field=f"photos.{index}")
        if len(salt) != 32 or content.content_hash(salt) != filing.content_hash:
            raise DeskRefused(
                "content_mismatch",
                "keccak256(salt ‖ utf8(canonical content)) is not the filing's content_hash: the content or its salt "
                "differs from what was signed", field="content_hash",
            )

    # -- receipt claims

    def claim(self, claim: ReceiptClaim, signature: str | bytes, new_key_signature: str | bytes) -> Taken:
        """Check a claim (the module's docstring) and store it for the citizens' lane. Runs in a worker thread."""
        ledger = self.service.ledger
        issued = self._signed(claim, signature, ledger)
        new = self._signed(claim, new_key_signature, ledger, field="new_key_signature")
        if new.signer != claim.receipt:
            raise DeskRefused("forged_signature", "new_key_signature is not by the new receipt key the claim names",
                              field="new_key_signature")
        case = _chain(lambda: ledger.receipt_case(claim.agency_id, claim.case_id))
        if case.status is ReceiptCaseStatus.NONE:
            raise DeskRefused("unknown_receipt", "the ledger has no receipt for this case")
        if case.receipt != issued.signer:
            raise DeskRefused("forged_signature", "the claim is not signed by this case's receipt key: only the "
                                                  "holder of its code can claim it", field="signature")
        both = SignedCitizenRecord(claim, issued.digest, issued.signature + new.signature, issued.signer)
        self._refuse_duplicate(both)
        seen = self._head(ledger)
        self._simulate(ledger, claim, both.signature)
        taken = self._store("claim", lambda: self.service.store.submit_citizen(both, seen_block=seen))
        log.info("receipt claim accepted for agency %s", claim.agency_id.rstrip(b"\0").decode("ascii", "replace"))
        return taken

    # -- shared steps

    @staticmethod
    def _store(what: str, submit: Callable[[], tuple[RelayStatus, bool]]) -> Taken:
        """Store a checked filing or claim (`submit`: the relay store's call), its refusals as this desk's."""
        try:
            status, created = submit()
        except RelayRefused as exc:
            raise DeskRefused(exc.code, exc.message, retry_after=exc.details.get("retry_after"),
                              submission=exc.details.get("submission")) from None
        except NodeUnavailable as exc:
            raise _Unavailable("node_unavailable", "the ledger's node did not answer; try again later") from exc
        except OutboxError as exc:
            log.error("%s not stored: %s", what, type(exc).__name__)
            raise _Unavailable("write_unavailable", f"the relay cannot store the {what} now; try again later") from exc
        if not created:
            raise DeskDuplicate(status)
        return Taken(status, created)

    @staticmethod
    def _signed(record: Filing | ReceiptClaim, signature: str | bytes, ledger: Ledger,
                field: str = "signature") -> SignedCitizenRecord:
        try:
            return check_citizen_signature(record, signature, ledger.filings_domain())
        except RelayRefused as exc:
            raise DeskRefused(exc.code, f"{field}: {exc.message}", field=field) from None

    @staticmethod
    def _head(ledger: Ledger) -> int:
        """The latest block before the record is checked against the chain: a copy of it mined from then on is the
        same record (the relay looks for it there before it fails the submission)."""
        return int(_chain(lambda: ledger.w3.eth.block_number))

    def _refuse_duplicate(self, signed: SignedCitizenRecord) -> None:
        existing = self.service.store.status(signed.key)
        if existing is not None:
            raise DeskDuplicate(existing)

    def _simulate(self, ledger: Ledger, record: Filing | ReceiptClaim, signature: bytes) -> None:
        """Run the call once on the latest block, as the citizens' relayer would send it: any refusal is answered
        now, with the module's reason."""
        call = ledger.encode_citizen_call(record, signature)
        relayer = self.service.citizen_relayer_address

        def run() -> None:
            try:
                call.call({"from": relayer} if relayer else {})
            except REVERT_ERRORS as exc:
                reverted = ledger.decode_revert(exc)
                code, message = REVERT_CODES.get(
                    reverted.error_name, ("refused_by_ledger", f"the ledger refuses it: {reverted.error_name}")
                )
                raise DeskRefused(code, message, error_name=reverted.error_name) from None

        _chain(run)


__all__ = ["DeskDuplicate", "DeskRefused", "FilingDesk", "Taken"]
