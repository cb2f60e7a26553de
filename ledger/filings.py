"""Citizens' filings: the rules the index, the API and the auditor apply to them, one definition each. Pure
functions, no chain, no database.

A citizen files a request (``ledger.records.Filing``) with a key of their own; the filing is an entry of the ledger,
so its block time is when the clock starts. The agency answers it (``ledger.records.FilingAnswer``): accepted, the
case opens bound to the filing — its id is ``ledger.records.filed_case_id`` of the filing's seq, its receipt key the
filer's, its ``opened_at`` the filing's block time, whatever the agency claims; or rejected, with a reason code and
the reason's hash. The answer is due within :data:`ANSWER_WINDOW_WORKING_DAYS` working days of the agency's
jurisdiction (the end of that working day, local time, as a commitment counted in working days is due:
``ledger.workdays.working_days_due``), as ``ICivicFilings.ANSWER_WINDOW_WORKING_DAYS`` publishes. A filing not
answered by then is overdue; an answer after it is late. Neither can be enforced on chain (nobody can make an agency
write); the figures, the page and the auditor count them. A year for which the agency's jurisdiction published no
holiday calendar counts Monday to Friday as working days: unlike a commitment's deadline (left undecided without a
calendar), a filing's window must not be something an agency escapes by publishing nothing — and without its
holidays the window only gets shorter for it.

Key origin
    A case's receipt key is *filed* when it came with the citizen's filing: made on their device, the agency never
    saw it. It is *agency-issued* when the agency recorded it (``ReceiptIssued``), as with a code it printed: a
    rating signed with it is one the agency may have made itself. It is *claimed* when the holder of a printed code
    moved the case to a key of their own (``ledger.records.ReceiptClaim``): that shows only that the claimant held
    the printed code — an agency that kept it can claim it first (the citizen then finds their code claimed, which
    the page shows) — so claimed keys are counted apart from both. Ratings and disputes are counted by the origin of
    the key that signed them, at the time they were signed.

Content
    What the citizen wrote stays off chain, in the service's private store, shown only to the agency asked: the
    request's text, its location (an address in words, and a point), the answers to the service's questions, links
    and photos, and any contact details (:class:`FilingContent`). The filing carries only ``contentHash`` =
    ``keccak256(salt ‖ utf8(canonical JSON))`` (:meth:`FilingContent.content_hash`, with
    ``ledger.records.salted_text_hash``): the citizen's side picks the 32-byte salt, so the hash of a short request
    cannot be found by guessing, and a photo counts by its SHA-256 (``attachments``). The canonical JSON is
    :meth:`FilingContent.canonical`: the fields that are not empty, keys sorted, no spaces, characters as they are
    (only ``"``, ``\\`` and control characters escaped) — what ``JSON.stringify`` of an object built in key order
    gives in a browser (``api/static/filing.js`` builds it; the tests check they agree), tagged ``"format":
    "civic-filing/1"``. Coordinates are decimal text, as the citizen gave them, never re-formatted
    numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ledger.records import EntryKind, FilingDecision, FilingStatus, salted_text_hash
from ledger.workdays import YearCalendar, working_days_due_always

#: working days an agency has to answer a filing (``ICivicFilings.ANSWER_WINDOW_WORKING_DAYS``)
ANSWER_WINDOW_WORKING_DAYS = 1

FILED = "filed"
CLAIMED = "claimed"
AGENCY_ISSUED = "agency_issued"
KEY_ORIGINS = (FILED, CLAIMED, AGENCY_ISSUED)


def answer_due(filed_at: int, calendars: Mapping[int, YearCalendar]) -> int:
    """When the answer to a filing made at block time `filed_at` is due, by the jurisdiction's published calendars
    (year → calendar; Monday to Friday for a year without one)."""
    return working_days_due_always(filed_at, ANSWER_WINDOW_WORKING_DAYS, calendars)


def overdue(due: int, as_of: int, *, answered: bool) -> bool:
    """Whether a filing whose answer is due at `due` (:func:`answer_due`) is unanswered past it as of `as_of` (False
    once answered)."""
    return not answered and as_of > due


def late(due: int, answered_at: int) -> bool:
    """Whether an answer recorded at block time `answered_at` came after its due time `due`."""
    return answered_at > due


#: an answer's decision as the API, the command line and the audit name it (``ledger.records.FilingDecision``)
DECISION_NAMES = {int(d): d.name.lower() for d in FilingDecision}


def answer_refusal(status: int, filing_agency: bytes, agency: bytes) -> str | None:
    """Why the filings module would refuse `agency`'s answer to a filing that stands at `status`
    (``ledger.records.FilingStatus``) for `filing_agency`, in words; None when it would take one."""
    if status == FilingStatus.NONE:
        return "no such filing (UnknownFiling)"
    if filing_agency != agency:
        return "another agency's filing: only the agency asked answers it (UnauthorizedSigner)"
    if status != FilingStatus.FILED:
        answered = FilingStatus(status).name.lower()
        return f"answered already ({answered}): a filing is answered once (FilingAlreadyAnswered)"
    return None


def key_origin(binding_kind: int) -> str:
    """The origin of a key bound to a case by an entry of `binding_kind` (``ledger.records.EntryKind``)."""
    if binding_kind == EntryKind.FILING_ANSWERED:
        return FILED
    if binding_kind == EntryKind.RECEIPT_CLAIMED:
        return CLAIMED
    if binding_kind == EntryKind.RECEIPT_ISSUED:
        return AGENCY_ISSUED
    raise ValueError(f"entry kind {binding_kind} binds no key to a case")


# ---------------------------------------------------------------------- the content kept off chain

#: the canonical content's format tag (:meth:`FilingContent.canonical`)
CONTENT_FORMAT = "civic-filing/1"
#: the longest request text, in characters
MAX_DESCRIPTION = 4000
#: the longest address, link, contact detail or answer to a question, in characters
MAX_FIELD = 300
#: questions answered, answers per question
MAX_ATTRIBUTES, MAX_ATTRIBUTE_VALUES = 20, 10
#: photos per filing, and the largest (the page scales a phone's photo down to fit)
MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES = 3, 2**20


def _webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


#: the media types a photo may have, each with the test of the bytes its file starts with
ATTACHMENT_TYPES = {
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": _webp,
}
#: what contact details a filing may carry (Open311's names)
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "device_id", "account_id")

_DEGREES = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,10})?$")
_CODE = r"^[A-Za-z0-9_.:-]{1,64}$"

Short = Annotated[str, StringConstraints(max_length=MAX_FIELD)]


def _no_lone_surrogates(text: str, field: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} is not valid Unicode text (it has a lone surrogate)") from None
    return text


class Attachment(BaseModel):
    """A photo, by what the content hash commits to: its media type, SHA-256 (hex) and size. Its bytes are kept
    beside the content (:func:`attachment_of` makes one from them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    media_type: str
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES)

    @field_validator("media_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ATTACHMENT_TYPES:
            raise ValueError(f"a photo is one of {', '.join(ATTACHMENT_TYPES)}")
        return value


def attachment_of(media_type: str, data: bytes) -> Attachment:
    """The :class:`Attachment` of a photo's bytes; ValueError when they are not a photo of that type or too big."""
    if media_type not in ATTACHMENT_TYPES:
        raise ValueError(f"a photo is one of {', '.join(ATTACHMENT_TYPES)}, not {media_type[:40]!r}")
    if not data or len(data) > MAX_ATTACHMENT_BYTES:
        raise ValueError(f"a photo has 1 to {MAX_ATTACHMENT_BYTES} bytes")
    if not ATTACHMENT_TYPES[media_type](data):
        raise ValueError(f"the photo's bytes are not {media_type}")
    return Attachment(media_type=media_type, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


class FilingContent(BaseModel):
    """What a citizen's request says, kept off chain: the filing commits to it with :meth:`content_hash`. Every
    field but ``description`` may be empty; empty ones are left out of the canonical form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DESCRIPTION)]
    #: where, in words (Open311 ``address_string``)
    address: Short = ""
    #: where, as a point: decimal degrees as text (Open311 ``lat`` / ``long``), both or neither
    lat: Short = ""
    long: Short = ""
    #: answers to the service's questions (Open311 ``attribute[code]``): code → values, in the order given
    attributes: dict[Annotated[str, StringConstraints(pattern=_CODE)], list[Short]] = Field(default_factory=dict)
    #: a link to a photo elsewhere (Open311 ``media_url``)
    media_url: Short = ""
    #: contact details (:data:`CONTACT_FIELDS`), shown to the agency only
    contact: dict[str, Short] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @model_validator(mode="after")
    def _checked(self) -> FilingContent:
        if not self.description.strip():
            raise ValueError("description: the request says what is wrong (it is empty)")
        _no_lone_surrogates(self.description, "description")
        for name in ("address", "media_url"):
            _no_lone_surrogates(getattr(self, name), name)
        if bool(self.lat) != bool(self.long):
            raise ValueError("lat and long: a point has both or neither")
        for name, limit in (("lat", 90), ("long", 180)):
            value = getattr(self, name)
            if value and (not _DEGREES.match(value) or abs(float(value)) > limit):
                raise ValueError(f"{name}: decimal degrees between -{limit} and {limit}, as text (e.g. 31.2304)")
        if len(self.attributes) > MAX_ATTRIBUTES:
            raise ValueError(f"attributes: at most {MAX_ATTRIBUTES} questions answered")
        for code, values in self.attributes.items():
            if not values or len(values) > MAX_ATTRIBUTE_VALUES:
                raise ValueError(f"attributes.{code}: 1 to {MAX_ATTRIBUTE_VALUES} answers")
            for value in values:
                _no_lone_surrogates(value, f"attributes.{code}")
        for name, value in self.contact.items():
            if name not in CONTACT_FIELDS:
                raise ValueError(f"contact.{name}: contact details are {', '.join(CONTACT_FIELDS)}")
            _no_lone_surrogates(value, f"contact.{name}")
        return self

    def canonical(self) -> str:
        """The JSON text the content hash is made of (see the module's docstring)."""
        data: dict[str, object] = {"format": CONTENT_FORMAT, "description": self.description}
        for name in ("address", "lat", "long", "media_url"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.attributes:
            data["attributes"] = {code: list(values) for code, values in self.attributes.items()}
        contact = {name: value for name, value in self.contact.items() if value}
        if contact:
            data["contact"] = contact
        if self.attachments:
            data["attachments"] = [a.model_dump() for a in self.attachments]
        return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_canonical(cls, text: str) -> FilingContent:
        """The content whose :meth:`canonical` form is `text` (ValueError when it is none)."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("format", None) != CONTENT_FORMAT:
            raise ValueError(f"not a {CONTENT_FORMAT} content")
        return cls.model_validate(data)

    def content_hash(self, salt: bytes) -> bytes:
        """``keccak256(salt ‖ utf8(canonical()))``: the filing's ``contentHash``."""
        if len(salt) != 32:
            raise ValueError("the content's salt is 32 bytes")
        return salted_text_hash(salt, self.canonical())

    def __repr__(self) -> str:  # never the text itself (reprs end up in logs and tracebacks)
        return f"FilingContent(<{len(self.description)} characters>, {len(self.attachments)} photos)"

    __str__ = __repr__


# ---------------------------------------------------------------------- the filer's small proof of work

#: what the proof of work hashes first (its version)
WORK_DOMAIN = b"civic-ledger/filing-work/v1"
#: leading zero bits asked by default: about 260,000 SHA-256 in the browser, well under a second
DEFAULT_WORK_BITS = 18
#: the most a deployment may ask (about 16 million hashes)
MAX_WORK_BITS = 24


def work_digest(receipt: str, nonce: int) -> bytes:
    """``sha256(WORK_DOMAIN ‖ receipt address (20 bytes) ‖ nonce (8 bytes, big-endian))``. The work is bound to the
    filing's receipt key, which files once (the contract refuses a used key): each filing costs its own work, and
    work done for one filing is worth nothing for another."""
    if not 0 <= nonce < 2**64:
        raise ValueError("the work's nonce is a 64-bit unsigned integer")
    return hashlib.sha256(WORK_DOMAIN + bytes.fromhex(receipt[2:]) + nonce.to_bytes(8, "big")).digest()


def work_done(receipt: str, nonce: int, bits: int) -> bool:
    """Whether :func:`work_digest` of (`receipt`, `nonce`) starts with `bits` zero bits."""
    value = int.from_bytes(work_digest(receipt, nonce), "big")
    return value >> (256 - bits) == 0 if bits > 0 else True


def do_work(receipt: str, bits: int) -> int:
    """The first nonce whose :func:`work_digest` starts with `bits` zero bits (what the page computes; here for
    clients written in Python and the tests)."""
    nonce = 0
    while not work_done(receipt, nonce, bits):
        nonce += 1
    return nonce
