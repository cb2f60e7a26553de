"""Every published metric reproduced: the API's metrics, scorecards and trends for a set of selections equal the
figures ``ledger.metrics`` computes from rows the auditor rebuilt from the chain — the same definitions, the same
selection (explicit ``from``, ``to`` and ``as_of`` on both sides), exactly.

The selections are a few fixed ones (cheap, whole-city and busiest groups) and more drawn at random from the audit's
secret seed (``ctx.rng("metric selections")``), so an operator cannot know which to answer honestly: every pair of
the dimensions (agency, commitment, district, channel, a date range, ``as_of``) appears together in at least one
drawn selection, values taken from a random case so that the selection is never empty, other dimensions added at
random. When the API is past the audited block, a selection whose figures later entries may change (of an agency
with later entries, or of the whole city while any has them) is left to an audit at a later block, and counted."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import Horizon, horizon, horizon_at, moved
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.metrics import (
    Metrics,
    MetricsFilter,
    compute_metrics_from_rows,
    rate_from_bps,
    scorecards_from_rows,
)

NAME = "metrics_reproduced"
DAY = 86_400
WEEK = 7 * DAY


def period(h: Horizon, as_of: int) -> tuple[int, int]:
    """[from, to): from midnight UTC of the day of the first case event to just after the audited block."""
    model = h.model
    first = min(
        [row.opened_at for row in model.case_rows] + [row.block_time for row in model.event_rows], default=as_of
    )
    start = max(0, first - first % DAY)
    return start, max(as_of + 1, start + 1)


def filters(h: Horizon, start: int, end: int) -> list[MetricsFilter]:
    """The selections /metrics is asked for: the whole period, its last week, the busiest agency, its busiest
    commitment, the busiest district and channel, and that district within that agency."""
    rows = h.model.case_rows
    out = [MetricsFilter(start=start, end=end, as_of=end)]
    if end - WEEK > start:
        out.append(MetricsFilter(start=end - WEEK, end=end, as_of=end))
    if rows:
        agency = Counter(r.agency_id for r in rows).most_common(1)[0][0]
        commitment = Counter(r.commitment_id for r in rows if r.agency_id == agency).most_common(1)[0][0]
        district = Counter(r.district for r in rows).most_common(1)[0][0]
        channel = Counter(r.channel for r in rows).most_common(1)[0][0]
        out += [
            MetricsFilter(agency_id=agency, start=start, end=end, as_of=end),
            MetricsFilter(agency_id=agency, commitment_id=commitment, start=start, end=end, as_of=end),
            MetricsFilter(district=district, start=start, end=end, as_of=end),
            MetricsFilter(channel=channel, start=start, end=end, as_of=end),
            MetricsFilter(agency_id=agency, district=district, start=start, end=end, as_of=end),
        ]
    return out


#: what a selection can name (a commitment names its agency too)
DIMENSIONS = ("agency", "commitment", "district", "channel", "range", "as_of")


def drawn(h: Horizon, start: int, end: int, rng: random.Random, count: int) -> list[MetricsFilter]:
    """`count` selections drawn by `rng` (at least one per pair of :data:`DIMENSIONS`, in a random order, when
    `count` allows): each names the dimensions of its pair, each other one with probability 1/3; agency, commitment,
    district and channel are those of one case drawn at random (never an empty selection), the range is two random
    instants of the period, ``as_of`` a random instant after the range's start."""
    rows = h.model.case_rows
    if not rows or count <= 0:
        return []
    pairs = [set(p) for p in itertools.combinations(DIMENSIONS, 2)]
    rng.shuffle(pairs)
    out: list[MetricsFilter] = []
    for i in range(count):
        named = pairs[i] if i < len(pairs) else set()
        named |= {d for d in DIMENSIONS if rng.random() < 1 / 3}
        if len(named) < 2:
            named |= set(rng.sample(DIMENSIONS, 2))
        row = rng.choice(rows)
        lo, hi = start, end
        if "range" in named:
            lo, hi = sorted(rng.sample(range(start, end + 1), 2))
        at = rng.randint(lo + 1, end) if "as_of" in named else hi
        out.append(MetricsFilter(
            agency_id=row.agency_id if named & {"agency", "commitment"} else None,
            commitment_id=row.commitment_id if "commitment" in named else None,
            district=row.district if "district" in named else None,
            channel=row.channel if "channel" in named else None,
            start=lo, end=hi, as_of=at,
        ))
    return out


def params(flt: MetricsFilter) -> dict[str, Any]:
    return {
        "agency_id": flt.agency_id, "commitment_id": flt.commitment_id, "from": flt.start, "to": flt.end,
        "district": flt.district, "channel": flt.channel, "as_of": flt.as_of,
    }


def _echo(flt: MetricsFilter) -> dict[str, Any]:
    return {
        "agency_id": flt.agency_id, "commitment_id": flt.commitment_id, "from": flt.start, "to": flt.end,
        "district": flt.district, "channel": flt.channel, "as_of": flt.as_of,
    }


def _compare(result: CheckResult, path: str, want: Metrics, got: Any, label: str) -> None:
    diffs = [d for d in expected.differences(want.to_dict(), got) if not _same_number(d[1], d[2])]
    for field, value, served in diffs:
        result.add(Finding(
            NAME, f"{label}: {field} is {served!r} in the API, {value!r} recomputed from the chain",
            subject=path, field=field, expected=value, actual=served,
        ))


def _same_number(want: Any, served: Any) -> bool:
    """A rate or average served as a JSON number rather than the exact decimal string: the same figure if it is the
    same number (``4.25`` for ``"4.2500"``)."""
    if not isinstance(want, str) or isinstance(served, bool) or not isinstance(served, (int, float)):
        return False
    try:
        return Decimal(want) == Decimal(str(served))
    except InvalidOperation:
        return False


def run(ctx: AuditContext, result: CheckResult) -> None:
    """Compare at the API's position; if the index moved meanwhile, compare again at its new position; if it moved
    again, the differences are listed as warnings (they may come from the moving index, not from wrong figures)."""
    h = horizon(ctx)
    first = CheckResult(NAME, result.title, result.description, limit=result.limit)
    _compare_all(ctx, h, first)
    now = moved(ctx, h)
    if now is None:
        _merge(first, result)
        return
    h2 = horizon_at(ctx, now)
    second = CheckResult(NAME, result.title, result.description, limit=result.limit)
    _compare_all(ctx, h2, second)
    again = moved(ctx, h2)
    _merge(second, result, as_warnings=again is not None)
    result.notes.insert(0, (
        f"the index advanced from {h.facts.get('entry_count')} to {now.get('entry_count')} entries during the audit: "
        "the figures were compared again at its new position"
        + ("; it kept advancing, so the differences are listed as warnings: audit a paused index, or again"
           if again is not None else "")
    ))


def _merge(source: CheckResult, target: CheckResult, *, as_warnings: bool = False) -> None:
    for finding in source.findings:
        (target.warn if as_warnings else target.add)(finding)
    for warning in source.warnings:
        target.warn(warning)
    if as_warnings:
        target.warnings_omitted += source.findings_omitted
    else:
        target.findings_omitted += source.findings_omitted
    target.counts.update(source.counts)
    target.notes.extend(source.notes)


def _compare_all(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    api = ctx.api
    model = h.model
    if not h.consistent:
        result.notes.append(
            "the API's /chain does not match the chain (see api_records): figures are compared with the chain's first "
            f"{h.count} entries anyway, and differences may follow from that"
        )
    start, end = period(h, ctx.as_of)
    cases, events, commitments = model.case_rows, model.event_rows, model.commitment_rows
    feedback = {"rating_rows": model.rating_rows, "dispute_rows": model.dispute_rows}
    compared = later = 0
    rng = ctx.rng("metric selections")
    selections = filters(h, start, end) + drawn(h, start, end, rng, ctx.config.metric_sample)
    for flt in selections:
        if not h.untouched(flt.agency_id):
            later += 1
            continue
        query = params(flt)
        path = api.path_of("/metrics", query)
        try:
            answer = api.get("/metrics", query)
        except ApiError as exc:
            result.add(Finding(NAME, f"the API refused the selection: {exc.message}", subject=path))
            continue
        echo = expected.differences(_echo(flt), answer.get("filter", {}))
        if echo:
            result.add(Finding(NAME, f"the API applied another selection than asked: {echo}", subject=path))
        _compare(result, path, compute_metrics_from_rows(cases, events, commitments, flt, **feedback),
                 answer.get("metrics"), "metrics")
        compared += 1

    # Scorecards: every agency and every commitment, over the whole period (and one district's), and drawn ones.
    whole = MetricsFilter(start=start, end=end, as_of=end)
    district = Counter(r.district for r in cases).most_common(1)[0][0] if cases else None
    targets = _targets(model)
    cards: list[tuple[str, MetricsFilter | None]] = [
        ("agency", whole), ("commitment", whole),
        ("commitment", dataclasses.replace(whole, district=district) if district else None),
    ]
    card_rng = ctx.rng("scorecard selections")
    cards += [(card_rng.choice(("agency", "commitment")), flt)
              for flt in drawn(h, start, end, card_rng, ctx.config.scorecard_sample)]
    for by, flt in cards:
        if flt is None:
            continue
        query = {"by": by, **params(flt)}
        path = api.path_of("/scorecards", query)
        try:
            answer = api.get("/scorecards", query)
        except ApiError as exc:
            result.add(Finding(NAME, f"the API refused the scorecards: {exc.message}", subject=path))
            continue
        mine = scorecards_from_rows(cases, events, commitments, flt, by=by, **feedback)  # type: ignore[arg-type]
        served = {}
        for item in answer.get("items", []):
            key = item.get("agency_id") if by == "agency" else (item.get("agency_id"), item.get("commitment_id"))
            served[key] = item
        for key, metrics in mine.items():
            item = served.pop(key, None)
            if not h.untouched(key if by == "agency" else key[0]):
                later += 1
                continue
            label = f"scorecard {key if by == 'agency' else '/'.join(key)}"
            if item is None:
                result.add(Finding(NAME, f"{label} is missing from the API's scorecards", subject=path))
                continue
            _compare(result, path, metrics, item.get("metrics"), label)
            compared += 1
            if by == "commitment":
                want = targets.get(key)
                if item.get("target_rate") != want:
                    result.add(Finding(NAME, f"{label}: target_rate {item.get('target_rate')!r} in the API, {want!r} "
                                       "on chain (latest version not voided)", subject=path, field="target_rate",
                                       expected=want, actual=item.get("target_rate")))
                retired = model.commitments[key].retirement is not None if key in model.commitments else None
                if item.get("retired") is not retired:
                    result.add(Finding(NAME, f"{label}: retired {item.get('retired')!r} in the API, {retired!r} on "
                                       "chain",
                                       subject=path, field="retired", expected=retired, actual=item.get("retired")))
        for key in served:
            if h.untouched(key if by == "agency" else key[0]):
                result.add(Finding(NAME, f"the API has a scorecard for {key}, which has no case on chain",
                                   subject=path))

    # A trend: the busiest commitment, week by week over the period.
    compared += _trend(ctx, h, result, start, end)
    result.counts["figures_compared"] = compared
    result.counts["selections_drawn"] = ctx.config.metric_sample + ctx.config.scorecard_sample
    if later:
        result.notes.append(f"{later} selections or scorecards whose figures entries past the audited block may change "
                            "were not compared (the API is past the audited block)")
    result.notes.append(
        f"selection period from={start} to={end} as_of={end} (unix seconds), the audited block's time; "
        f"{h.note}"
    )
    ctx.stats["metrics_period"] = {"from": start, "to": end}


def _targets(model: Any) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for key, c in model.commitments.items():
        live = [row for row, _ in c.versions if row.voided_by is None]
        out[key] = str(rate_from_bps(max(live, key=lambda r: r.version).target_bps)) if live else None
    return out


def _trend(ctx: AuditContext, h: Horizon, result: CheckResult, start: int, end: int) -> int:
    rows = h.model.case_rows
    if not rows:
        return 0
    agency, commitment = Counter((r.agency_id, r.commitment_id) for r in rows).most_common(1)[0][0]
    if not h.untouched(agency):
        return 0
    query = {"from": start, "to": end, "bucket": "week"}
    path_of = f"/commitments/{agency}/{commitment}/trend"
    path = ctx.api.path_of(path_of, query)
    requested_at = int(time.time())
    try:
        answer = ctx.api.get(f"/commitments/{quote(agency, safe='')}/{quote(commitment, safe='')}/trend", query)
    except ApiError as exc:
        if exc.status == 404:
            result.notes.append("the API has no trend endpoint: trends not compared")
            return 0
        result.add(Finding(NAME, f"the API refused the trend: {exc.message}", subject=path))
        return 0
    model = h.model
    compared = 0
    buckets = answer.get("buckets", [])
    length = WEEK
    count = -(-(end - start) // length)
    if len(buckets) != count:
        result.add(Finding(NAME, f"trend: {len(buckets)} buckets in the API, {count} expected", subject=path))
    for i, bucket in enumerate(buckets[:count]):
        b0, b1 = start + i * length, min(start + (i + 1) * length, end)
        if (bucket.get("start"), bucket.get("end")) != (b0, b1):
            result.add(Finding(NAME, f"trend bucket {i}: [{bucket.get('start')}, {bucket.get('end')}) in the API, "
                               f"[{b0}, {b1}) expected", subject=path))
            continue
        if b1 > requested_at:
            # the API takes a bucket's open and overdue counts at min(end, its now): not knowable to the second
            result.notes.append(f"trend bucket [{b0}, {b1}) ends after the request: not compared")
            continue
        flt = MetricsFilter(agency_id=agency, commitment_id=commitment, start=b0, end=b1, as_of=b1)
        want = compute_metrics_from_rows(model.case_rows, model.event_rows, model.commitment_rows, flt,
                                         rating_rows=model.rating_rows, dispute_rows=model.dispute_rows)
        _compare(result, path, want, bucket.get("metrics"), f"trend bucket [{b0}, {b1})")
        compared += 1
    return compared


CHECK = Check(
    NAME,
    "Every published metric reproduced",
    "The API's /metrics (whole period, last week, busiest agency, commitment, district, channel, agency and "
    "district, and selections drawn at random from the audit's secret seed covering every pair of agency, "
    "commitment, district, channel, date range and as_of), /scorecards (every agency, every commitment, per "
    "commitment within one district, and drawn selections) and one commitment's weekly trend equal the figures ledger/metrics.py computes from case, event and commitment rows "
    "rebuilt from the chain, field by field, with the same from/to/as_of.",
    run,
    needs_api=True,
)
