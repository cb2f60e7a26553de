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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ledger.records import EntryKind, FilingDecision, FilingStatus
from ledger.workdays import YearCalendar, working_days_due

#: working days an agency has to answer a filing (``ICivicFilings.ANSWER_WINDOW_WORKING_DAYS``)
ANSWER_WINDOW_WORKING_DAYS = 1

FILED = "filed"
CLAIMED = "claimed"
AGENCY_ISSUED = "agency_issued"
KEY_ORIGINS = (FILED, CLAIMED, AGENCY_ISSUED)


class _WeekdaysWhereUnpublished(Mapping[int, YearCalendar]):
    """The jurisdiction's published calendars, and a plain Monday-to-Friday one for any other year."""

    def __init__(self, published: Mapping[int, YearCalendar]) -> None:
        self._published = published

    def __getitem__(self, year: int) -> YearCalendar:
        found = self._published.get(year)
        return YearCalendar.of(year) if found is None else found

    def __iter__(self) -> Iterator[int]:
        return iter(self._published)

    def __len__(self) -> int:
        return len(self._published)


def answer_due(filed_at: int, calendars: Mapping[int, YearCalendar]) -> int:
    """When the answer to a filing made at block time `filed_at` is due, by the jurisdiction's published calendars
    (year → calendar; Monday to Friday for a year without one)."""
    due = working_days_due(filed_at, ANSWER_WINDOW_WORKING_DAYS, _WeekdaysWhereUnpublished(calendars))
    assert due is not None  # every year has a calendar here
    return due


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
