"""What an audit reports: one :class:`CheckResult` per check, each with its :class:`Finding` s."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: the longest value quoted into a finding (``expected``, ``actual``: what the API, the node or the log said), in
#: characters; an API could otherwise fill the report with megabytes of its own text
QUOTE_LIMIT = 200
#: the longest message (or subject) of a finding: messages quote values too, several at a time
MESSAGE_LIMIT = 1000

# C0 and C1 control characters and DEL: in a terminal they move the cursor, clear lines or set colours (ESC)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def cut(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` made safe to quote: control characters written as escapes (``\\x1b``), and when it is longer than
    `limit` characters, its first `limit` followed by ``… (N characters)``, N its original length. Escaping for a
    rendering (HTML, terminal markup) is the report's job (``ledger.audit.report``)."""
    if len(text) <= limit:
        return _CONTROL.sub(_escaped, text)
    return f"{_CONTROL.sub(_escaped, text[:limit])}… ({len(text):,} characters)"


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> Any:
    """A value quoted from what was audited, bounded for the report: text as :func:`cut` makes it; a list or object
    whose JSON text is longer than `limit` becomes that text, cut; numbers, booleans and None as they are (an integer
    too long to show is cut as text)."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 4 * limit else cut(hex(value), limit)
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return value if len(text) <= limit and not _CONTROL.search(text) else cut(text, limit)
    return cut(str(value), limit)


class Status(str, enum.Enum):
    """Outcome of one check. Only ``fail`` makes the audit fail; ``skipped`` says why the check could not run."""

    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class Finding:
    """One thing wrong, pointing at the entry it concerns (``seq``, transaction hash and log index) when it concerns
    one. ``subject`` names what else it is about (a case, a metric filter, an API path); ``expected`` is what the
    chain says and ``actual`` what was found instead (in the log, the API, the code). ``agency`` names the agency the
    finding is against when it is that agency's own doing on the chain (a batch it anchored and withheld, an event it
    hid in a batch), so findings can be counted per agency."""

    check: str
    message: str
    seq: int | None = None
    tx_hash: str | None = None
    log_index: int | None = None
    block_number: int | None = None
    subject: str | None = None
    field: str | None = None
    expected: Any = None
    actual: Any = None
    agency: str | None = None

    def __post_init__(self) -> None:
        # What was quoted from the audited services is bounded here, once, for every report (JSON, HTML, terminal).
        for name, limit in (("expected", QUOTE_LIMIT), ("actual", QUOTE_LIMIT), ("field", QUOTE_LIMIT),
                            ("agency", QUOTE_LIMIT), ("message", MESSAGE_LIMIT), ("subject", MESSAGE_LIMIT)):
            object.__setattr__(self, name, quoted(getattr(self, name), limit))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def where(self) -> str:
        """Where the finding points, for a person: the entry (seq, transaction, log index) and/or the subject."""
        parts = []
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        if self.tx_hash is not None:
            parts.append(f"tx {self.tx_hash}")
        if self.log_index is not None:
            parts.append(f"log {self.log_index}")
        if self.subject is not None:
            parts.append(self.subject)
        return ", ".join(parts) or "-"


@dataclass
class CheckResult:
    """What one check did: its status, counts of what it looked at, findings (failures), warnings (listed, not
    failures) and notes (how it ran: samples, thresholds, why it was skipped)."""

    name: str
    title: str
    description: str
    status: Status = Status.PASS
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: findings beyond the report's limit are counted here, not listed
    findings_omitted: int = 0
    warnings_omitted: int = 0
    #: how many findings (and warnings) are listed at most
    limit: int = 1000

    def add(self, finding: Finding) -> None:
        """Record a finding: the check fails."""
        if len(self.findings) < self.limit:
            self.findings.append(finding)
        else:
            self.findings_omitted += 1

    def warn(self, warning: Finding) -> None:
        """Record a warning: listed in the report, not a failure."""
        if len(self.warnings) < self.limit:
            self.warnings.append(warning)
        else:
            self.warnings_omitted += 1

    def skip(self, reason: str) -> None:
        self.status = Status.SKIPPED
        self.notes.append(reason)

    def not_applicable(self, reason: str) -> None:
        self.status = Status.NOT_APPLICABLE
        self.notes.append(reason)

    def settle(self) -> None:
        """Once the check has run: it failed if it found anything."""
        if self.status is Status.PASS and self.finding_total():
            self.status = Status.FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "status": self.status.value,
            "counts": dict(self.counts),
            "finding_count": len(self.findings) + self.findings_omitted,
            "findings": [f.to_dict() for f in self.findings],
            "findings_omitted": self.findings_omitted,
            "warning_count": len(self.warnings) + self.warnings_omitted,
            "warnings": [w.to_dict() for w in self.warnings],
            "warnings_omitted": self.warnings_omitted,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }

    def finding_total(self) -> int:
        return len(self.findings) + self.findings_omitted


@dataclass
class AuditReport:
    """The whole audit: what was audited (chain, contract, snapshot block, API), every check's result, and the
    statistics the HTML report charts."""

    tool: str
    target: dict[str, Any]
    checks: list[CheckResult]
    started_at: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    #: checks that could not complete (an auditor bug or a failing service): the audit did not fully run
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def exit_code(self) -> int:
        """0 when no check failed, 1 when one did, 2 when a check could not complete (an audit that could not run
        at all raises :class:`~ledger.audit.errors.CannotAudit` instead of making a report)."""
        if self.errors:
            return 2
        return 1 if self.failed else 0

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def summary(self) -> dict[str, int]:
        out = {status.value: 0 for status in Status}
        for result in self.checks:
            out[result.status.value] += 1
        out["findings"] = sum(c.finding_total() for c in self.checks)
        out["warnings"] = sum(len(c.warnings) + c.warnings_omitted for c in self.checks)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "target": self.target,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
            "errors": list(self.errors),
            "stats": self.stats,
        }
