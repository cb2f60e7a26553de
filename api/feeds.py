"""Atom feeds (RFC 4287) of what the ledger records, for any feed reader: a case followed by its receipt, an agency,
a commitment. Read from the index, each item a ledger entry with its seq and a link to its page and proof.

What each feed holds (newest first, at most :data:`FEED_SIZE` items):
    * a case, by its receipt key's address — its filing, if it was filed, and the agency's answer; every event of the
      case (opened, accepted, on hold, … fulfilled, reopened), its receipt's issue and claim, ratings, disputes and
      the agency's answers to them;
    * an agency — every entry of the agency (its commitments, cases, receipts, ratings, filings and answers), the
      ledger's own order;
    * a commitment — its versions and retirement, and every case opened under it, each shown with its latest event.
Nothing personal: what a feed says is what the ledger holds (codes, times, hashes), in English or Chinese (``lang``).
Ids are ``tag:`` URIs of the deployment (chain id and contract) and the entry's seq, so a reader never shows an item
twice, and an item of a rebuilt index keeps its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from ledger.open311 import Lang
from ledger.records import CaseAction, EntryKind

FEED_SIZE = 50
ATOM = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"

_KIND_WORDS: dict[Lang, dict[int, str]] = {
    "en": {
        EntryKind.AGENCY_REGISTERED: "Agency registered", EntryKind.SIGNER_AUTHORIZED: "Key authorised",
        EntryKind.SIGNER_REVOKED: "Key revoked", EntryKind.COMMITMENT_PUBLISHED: "Commitment published",
        EntryKind.COMMITMENT_RETIRED: "Commitment retired", EntryKind.CASE_EVENT: "Case event",
        EntryKind.CORRECTION: "Correction", EntryKind.HOLIDAY_CALENDAR_PUBLISHED: "Holiday calendar published",
        EntryKind.RECEIPT_ISSUED: "Receipt issued", EntryKind.CASE_RATED: "Case rated",
        EntryKind.CASE_DISPUTED: "Fulfilment disputed", EntryKind.BATCH_ANCHORED: "Batch anchored",
        EntryKind.AUDITOR_AUTHORIZED: "Auditor registered", EntryKind.AUDITOR_REVOKED: "Auditor revoked",
        EntryKind.AUDIT_ATTESTED: "Audit attested", EntryKind.FILING_RECORDED: "Request filed",
        EntryKind.FILING_ANSWERED: "Filing answered", EntryKind.RECEIPT_CLAIMED: "Receipt claimed by its holder",
    },
    "zh": {
        EntryKind.AGENCY_REGISTERED: "机关登记", EntryKind.SIGNER_AUTHORIZED: "授权密钥",
        EntryKind.SIGNER_REVOKED: "撤销密钥", EntryKind.COMMITMENT_PUBLISHED: "发布承诺",
        EntryKind.COMMITMENT_RETIRED: "停止承诺", EntryKind.CASE_EVENT: "办件事件", EntryKind.CORRECTION: "更正",
        EntryKind.HOLIDAY_CALENDAR_PUBLISHED: "发布节假日日历", EntryKind.RECEIPT_ISSUED: "发放回执",
        EntryKind.CASE_RATED: "办件评价", EntryKind.CASE_DISPUTED: "对办结提出异议",
        EntryKind.BATCH_ANCHORED: "批次锚定", EntryKind.AUDITOR_AUTHORIZED: "登记审计方",
        EntryKind.AUDITOR_REVOKED: "撤销审计方", EntryKind.AUDIT_ATTESTED: "审计证明",
        EntryKind.FILING_RECORDED: "群众提交诉求", EntryKind.FILING_ANSWERED: "机关答复诉求",
        EntryKind.RECEIPT_CLAIMED: "回执由持有人认领",
    },
}
_ACTION_WORDS: dict[Lang, dict[int, str]] = {
    "en": {
        CaseAction.OPENED: "Case opened", CaseAction.ACCEPTED: "Case accepted", CaseAction.ON_HOLD: "Case on hold",
        CaseAction.RESUMED: "Case resumed", CaseAction.ESCALATED: "Case escalated",
        CaseAction.FULFILLED: "Case fulfilled", CaseAction.REJECTED: "Case rejected",
        CaseAction.WITHDRAWN: "Case withdrawn", CaseAction.REOPENED: "Case reopened",
        CaseAction.DISPUTE_REJECTED: "Dispute rejected: the agency stands by its fulfilment",
        CaseAction.RECTIFIED: "Bad rating rectified: the agency reports what it changed",
    },
    "zh": {
        CaseAction.OPENED: "受理登记", CaseAction.ACCEPTED: "已受理", CaseAction.ON_HOLD: "挂起",
        CaseAction.RESUMED: "恢复办理", CaseAction.ESCALATED: "督办", CaseAction.FULFILLED: "办结",
        CaseAction.REJECTED: "不予办理", CaseAction.WITHDRAWN: "撤回", CaseAction.REOPENED: "重新办理",
        CaseAction.DISPUTE_REJECTED: "驳回异议：维持办结", CaseAction.RECTIFIED: "差评整改：机构报告整改情况",
    },
}


def kind_title(kind: int, lang: Lang, action: int | None = None) -> str:
    """An entry's title in words: a case event by its action, anything else by its kind."""
    if kind == EntryKind.CASE_EVENT and action is not None and action in _ACTION_WORDS[lang]:
        return _ACTION_WORDS[lang][action]
    if kind == EntryKind.FILING_ANSWERED and action == CaseAction.OPENED:  # an acceptance opens the filed case
        return "诉求已受理，办件开始" if lang == "zh" else "Filing accepted: case opened"
    return _KIND_WORDS[lang].get(kind, f"#{kind}")


@dataclass(frozen=True)
class FeedItem:
    seq: int
    title: str
    #: block time of the entry (what `updated` says)
    at: int
    #: the page that shows it (absolute URL)
    link: str
    summary: str


def _time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(*, feed_id: str, title: str, self_url: str, page_url: str, items: Sequence[FeedItem], lang: Lang,
           item_id: str, empty_at: int) -> bytes:
    """The Atom document. `item_id` is a format string with ``{seq}``; `empty_at` the feed's time when it has no
    items (the index's latest block time)."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "zh-CN" if lang == "zh"
                                         else "en"})

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    add(feed, "id", feed_id)
    add(feed, "title", title)
    add(feed, "updated", _time(max((i.at for i in items), default=empty_at)))
    add(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    add(feed, "link", rel="alternate", type="text/html", href=page_url)
    author = add(feed, "author")
    add(author, "name", "Civic Ledger")
    add(feed, "generator", "Civic Ledger")
    for item in items:
        entry = add(feed, "entry")
        add(entry, "id", item_id.format(seq=item.seq))
        add(entry, "title", item.title)
        add(entry, "updated", _time(item.at))
        add(entry, "link", rel="alternate", type="text/html", href=item.link)
        add(entry, "summary", item.summary)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


__all__ = ["FEED_SIZE", "MEDIA_TYPE", "FeedItem", "kind_title", "render"]
