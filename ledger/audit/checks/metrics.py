"""Every published metric reproduced: the API's metrics, scorecards and trends for a set of selections equal the
figures ``ledger.metrics`` computes from rows the auditor rebuilt from the chain — the same definitions, the same
selection (explicit ``from``, ``to`` and ``as_of`` on both sides), exactly.

The selections are a few fixed ones (cheap, whole-city and busiest groups) and more drawn at random from the audit's
secret seed (``ctx.rng("metric selections")``), so an operator cannot know which to answer honestly: every pair of
the dimensions (agency, commitment, district, channel, a date range, ``as_of``) appears together in at least one
drawn selection, values taken from a random case so that the selection is never empty, other dimensions added at
random. Trends: every commitment's (a sample drawn from the seed when there are more than :data:`TREND_SAMPLE`,
every agency's among them), each over a bucket length (day or week) and range drawn from the seed, besides the
busiest commitment's weekly trend over the whole period. When the API is past the audited block, a selection whose
figures later entries may change (of an agency with later entries, or of the whole city while any has them) is left
to an audit at a later block, and counted."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypedDict
from urllib.parse import quote

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import Horizon, horizon, horizon_at, moved, withheld_of
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.metrics import (
    MIN_RANKED_SAMPLE,
    RANKED_FIGURES,
    TIME_STEP,
    DisputeRow,
    FilingRow,
    Metrics,
    MetricsFilter,
    RatingRow,
    compute_metrics_from_rows,
    ranks,
    rate_from_bps,
    scorecards_from_rows,
    whole_step,
)

NAME = "metrics_reproduced"
DAY = 86_400
WEEK = 7 * DAY


class _FeedbackRows(TypedDict):
    """The feedback rows the metrics are computed from, as keyword arguments."""

    rating_rows: list[RatingRow]
    dispute_rows: list[DisputeRow]
    filing_rows: list[FilingRow]


def period(h: Horizon, as_of: int) -> tuple[int, int]:
    """[from, to): from midnight UTC of the day of the first case event to the whole minute after the audited block
    (selections name whole minutes, as the API takes them: ``ledger.metrics.TIME_STEP``)."""
    model = h.model
    first = min(
        [row.opened_at for row in model.case_rows] + [row.block_time for row in model.event_rows], default=as_of
    )
    start = max(0, first - first % DAY)
    end = max(as_of + 1, start + 1)
    return start, whole_step(end + TIME_STEP - 1)


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
    whole minutes of the period, ``as_of`` a random whole minute after the range's start."""
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
            lo, hi = sorted(rng.sample(range(start, end + 1, TIME_STEP), 2))
        at = rng.randrange(lo + TIME_STEP, end + 1, TIME_STEP) if "as_of" in named else hi
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
    feedback: _FeedbackRows = {"rating_rows": model.rating_rows, "dispute_rows": model.dispute_rows,
                               "filing_rows": model.filing_rows}
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
    withheld = withheld_of(ctx, h)
    cards: list[tuple[Literal["agency", "commitment"], MetricsFilter | None]] = [
        ("agency", whole), ("commitment", whole),
        ("commitment", dataclasses.replace(whole, district=district) if district else None),
    ]
    card_rng = ctx.rng("scorecard selections")
    cards += [(card_rng.choice(("agency", "commitment")), flt)
              for flt in drawn(h, start, end, card_rng, ctx.config.scorecard_sample)]
    for by, card_flt in cards:
        if card_flt is None:
            continue
        query = {"by": by, **params(card_flt)}
        path = api.path_of("/scorecards", query)
        try:
            answer = api.get("/scorecards", query)
        except ApiError as exc:
            result.add(Finding(NAME, f"the API refused the scorecards: {exc.message}", subject=path))
            continue
        mine = scorecards_from_rows(cases, events, commitments, card_flt, by=by, **feedback)
        served: dict[Any, Any] = {}
        order: list[Any] = []
        for item in answer.get("items", []):
            key = item.get("agency_id") if by == "agency" else (item.get("agency_id"), item.get("commitment_id"))
            if key in served:  # a second scorecard of one agency (commitment): one of them is never compared
                result.add(Finding(NAME, f"the API serves two scorecards for {key}", subject=path))
            served[key] = item
            order.append(key)
        _compare_order(result, path, h, by, mine, order)
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
            counts = withheld.counts(key) if by == "agency" else None
            for field, want, got in expected.differences({**_card_names(model, key, by), **(counts or {})}, item):
                result.add(Finding(NAME, f"{label}: {field} {got!r} in the API, {want!r} on chain", subject=path,
                                   field=field, expected=want, actual=got))
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
        _compare_ranks(result, path, h, by, mine, answer)

    # Trends: the busiest commitment's, week by week over the period, and every commitment's (or a drawn sample).
    compared += _trends(ctx, h, result, start, end)
    result.counts["figures_compared"] = compared
    result.counts["selections_drawn"] = ctx.config.metric_sample + ctx.config.scorecard_sample
    if later:
        result.notes.append(f"{later} selections or scorecards whose figures entries past the audited block may change "
                            "were not compared (the API is past the audited block)")
    result.notes.append(
        f"selection period from={start} to={end} as_of={end} (unix seconds), the whole minute after the audited "
        "block's time; "
        f"{h.note}"
    )
    ctx.stats["metrics_period"] = {"from": start, "to": end}


def _compare_order(result: CheckResult, path: str, h: Horizon, by: str, mine: dict[Any, Metrics],
                   order: list[Any]) -> None:
    """Scorecards come in id order (code points), as the recomputed ones do: the page lists equal ranks, and the
    unranked, in the order served, so an operator must not choose it."""
    wanted = [key for key in mine if key in set(order)]
    if all(h.untouched(key if by == "agency" else key[0]) for key in mine) and \
            [key for key in order if key in mine] != wanted:
        result.add(Finding(NAME, "the API's scorecards are not in id order", subject=path, field="items",
                           expected=[str(k) for k in wanted], actual=[str(k) for k in order]))


def _compare_ranks(result: CheckResult, path: str, h: Horizon, by: str, mine: dict[Any, Metrics],
                   answer: dict[str, Any]) -> None:
    """The scorecards' ranks are those ``ledger.metrics.ranks`` gives the recomputed scorecards, with the minimum
    sample it defines: an operator cannot leave an agency out of a ranking, or rank one whose rate rests on too few
    cases. Ranks depend on every scorecard, so they are compared only when none may have moved past the audited
    block."""
    if not all(h.untouched(key if by == "agency" else key[0]) for key in mine):
        return
    if answer.get("min_ranked_sample") != MIN_RANKED_SAMPLE:
        result.add(Finding(NAME, f"min_ranked_sample {answer.get('min_ranked_sample')!r} in the API, "
                           f"{MIN_RANKED_SAMPLE} by the published definition", subject=path,
                           field="min_ranked_sample", expected=MIN_RANKED_SAMPLE,
                           actual=answer.get("min_ranked_sample")))
    served = {(item.get("agency_id") if by == "agency" else (item.get("agency_id"), item.get("commitment_id"))):
              item.get("ranks") or {} for item in answer.get("items", [])}
    for figure in RANKED_FIGURES:
        for key, want in ranks(mine, figure).items():
            got = served.get(key, {}).get(figure)
            # type and value: a rank served as JSON true is not rank 1
            if key in served and expected.differences({figure: want}, {figure: got}):
                label = key if by == "agency" else "/".join(key)
                result.add(Finding(NAME, f"scorecard {label}: rank by {figure} {got!r} in the API, {want!r} on chain",
                                   subject=path, field=f"ranks.{figure}", expected=want, actual=got))


def _card_names(model: Any, key: Any, by: str) -> dict[str, Any]:
    """The names a scorecard shows: its agency's, and (by commitment) its commitment's current version's."""
    agency = model.agencies.get(key if by == "agency" else key[0])
    out = {"agency_name_zh": agency.name_zh if agency else None, "agency_name_en": agency.name_en if agency else None}
    if by == "commitment":
        c = model.commitments.get(key)
        row = c.current[0] if c is not None and c.versions else None
        out.update(commitment_name_zh=row.name_zh if row else None, commitment_name_en=row.name_en if row else None)
    return out


def _targets(model: Any) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for key, c in model.commitments.items():
        live = [row for row, _ in c.versions if row.voided_by is None]
        out[key] = str(rate_from_bps(max(live, key=lambda r: r.version).target_bps)) if live else None
    return out


#: commitments whose trend is compared in a run: every one when there are at most this many, else this many drawn
#: from the seed, one of each agency first (all agencies in every run while there are at most this many of them)
TREND_SAMPLE = 24
#: most buckets of a drawn trend (the page asks for 30 days or 26 weeks), and of the fixed one (the API's limit)
TREND_MAX_BUCKETS = 30
TREND_LIMIT = 400
BUCKETS = {"day": DAY, "week": WEEK}


def trend_commitments(model: Any, rng: random.Random, limit: int = TREND_SAMPLE) -> tuple[list[tuple[str, str]], bool]:
    """The commitments whose trend is compared, in (agency, commitment) order, and whether they were drawn: every
    published one when there are at most `limit`; else `limit` of them drawn by `rng`, one of each agency first (a
    random `limit` of the agencies when there are more), the rest at random."""
    keys = sorted(key for key, c in model.commitments.items() if c.versions)
    if len(keys) <= limit:
        return keys, False
    by_agency: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        by_agency.setdefault(key[0], []).append(key)
    chosen = {rng.choice(group) for _, group in sorted(by_agency.items())}
    if len(chosen) > limit:
        chosen = set(rng.sample(sorted(chosen), limit))
    rest = [key for key in keys if key not in chosen]
    chosen |= set(rng.sample(rest, limit - len(chosen)))
    return sorted(chosen), True


def trend_query(rng: random.Random, start: int, end: int, now: int) -> dict[str, Any]:
    """A trend request drawn by `rng`: day or week buckets, 1 to :data:`TREND_MAX_BUCKETS` of them, ending at the
    audited block's time, at a minute of the period, or — a quarter of the time — with no ``to``, as the page asks
    by default (the API's "now", `now` being about the moment of the request), starting at any whole minute (the
    page starts at a local midnight, a whole minute in any time zone's; the API takes times to the whole minute)."""
    bucket = rng.choice(("day", "week"))
    length = BUCKETS[bucket]
    span = TIME_STEP * rng.randint(1, rng.randint(1, TREND_MAX_BUCKETS) * length // TIME_STEP)
    if rng.random() < 0.25:
        return {"from": max(0, whole_step(now) - span), "to": None, "bucket": bucket}
    hi = end if rng.random() < 0.5 else rng.randrange(start + TIME_STEP, end + 1, TIME_STEP)
    return {"from": max(0, hi - span), "to": hi, "bucket": bucket}


class _TrendRows:
    """The rebuilt rows a commitment's trend reads: its cases, and its agency's events, ratings and disputes (what
    ``compute_metrics_from_rows`` selects for a commitment's filter anyway), grouped once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cases: dict[tuple[str, str], list[Any]] = {}
        for row in model.case_rows:
            self.cases.setdefault((row.agency_id, row.commitment_id), []).append(row)
        self.by_agency: dict[str, tuple[list[Any], list[Any], list[Any], list[Any]]] = {}
        for index, rows in enumerate((model.event_rows, model.rating_rows, model.dispute_rows, model.filing_rows)):
            for row in rows:
                self.by_agency.setdefault(row.agency_id, ([], [], [], []))[index].append(row)

    def metrics(self, key: tuple[str, str], b0: int, b1: int, as_of: int) -> Metrics:
        events, ratings, disputes, filed = self.by_agency.get(key[0], ([], [], [], []))
        flt = MetricsFilter(agency_id=key[0], commitment_id=key[1], start=b0, end=b1, as_of=as_of)
        return compute_metrics_from_rows(self.cases.get(key, []), events, self.model.commitment_rows, flt,
                                         rating_rows=ratings, dispute_rows=disputes, filing_rows=filed)


def _trends(ctx: AuditContext, h: Horizon, result: CheckResult, start: int, end: int) -> int:
    """The busiest commitment's weekly trend over the whole period, and the trend of every commitment (or of a sample
    drawn from the seed), each over a bucket length and range drawn from the seed (``ctx.rng("trends")``)."""
    model = h.model
    rng = ctx.rng("trends")
    keys, drawn_keys = trend_commitments(model, rng)
    asked: list[tuple[tuple[str, str], dict[str, Any]]] = []
    if model.case_rows:
        busiest = Counter((r.agency_id, r.commitment_id) for r in model.case_rows).most_common(1)[0][0]
        asked.append((busiest, {"from": max(start, end - TREND_LIMIT * WEEK), "to": end, "bucket": "week"}))
    now = int(time.time())
    asked += [(key, trend_query(rng, start, end, now)) for key in keys]
    rows = _TrendRows(model)
    compared = skipped = 0
    for key, query in asked:
        if not h.untouched(key[0]):
            skipped += 1
            continue
        compared += _trend(ctx, result, rows, key, query)
    result.counts["trends_compared"] = len(asked) - skipped
    ctx.stats["trends"] = {"commitments": len([k for k, c in model.commitments.items() if c.versions]),
                           "compared": len(keys), "drawn": drawn_keys}
    result.notes.append(
        f"trends: {len(keys)} commitments' trends compared"
        + (f", drawn at random from the audit's seed (every agency's among them) out of "
           f"{ctx.stats['trends']['commitments']}" if drawn_keys else " (all of them)")
        + ", each over a bucket length and range drawn from the seed; and the busiest commitment's weekly trend over "
        "the whole period"
    )
    return compared


def _trend(ctx: AuditContext, result: CheckResult, rows: _TrendRows, key: tuple[str, str],
           query: dict[str, Any]) -> int:
    agency, commitment = key
    route = f"/commitments/{quote(agency, safe='')}/{quote(commitment, safe='')}/trend"
    path = ctx.api.path_of(f"/commitments/{agency}/{commitment}/trend", query)
    before = int(time.time())
    try:
        answer = ctx.api.get(route, query)
    except ApiError as exc:
        result.add(Finding(NAME, f"the API refused the trend: {exc.message}", subject=path))
        return 0
    after = int(time.time()) + 1
    if not isinstance(answer, dict):
        result.add(Finding(NAME, "trend: the answer is not a JSON object", subject=path, field="(whole)"))
        return 0
    start, end, length = query["from"], query["to"], BUCKETS[query["bucket"]]
    if end is None:  # the API's "now", taken (to the whole minute) while it answered
        end = answer.get("to")
        if not isinstance(end, int) or not whole_step(before) <= end <= after:
            result.add(Finding(NAME, f"trend asked without `to`: the API says it ends at {end!r}, not the moment it "
                               f"answered (between {whole_step(before)} and {after})", subject=path, field="to",
                               expected=f"{whole_step(before)}-{after}", actual=end))
            return 0
    count = -(-(end - start) // length)
    last = rows.metrics(key, max(start, end - length), end, end)
    echo = {"agency_id": agency, "commitment_id": commitment, "bucket": query["bucket"], "from": start, "to": end,
            "target_rate": last.to_dict()["target_rate"]}
    for field, want, served in expected.differences(echo, answer):
        result.add(Finding(NAME, f"trend: {field} is {served!r} in the API, {want!r} on chain", subject=path,
                           field=field, expected=want, actual=served))
    buckets = answer.get("buckets")
    if not isinstance(buckets, list):
        result.add(Finding(NAME, "trend: no list of buckets", subject=path, field="buckets", actual=buckets))
        return 0
    if len(buckets) != count:
        result.add(Finding(NAME, f"trend: {len(buckets)} buckets in the API, {count} expected", subject=path,
                           field="buckets (length)", expected=count, actual=len(buckets)))
    compared = 0
    for i, bucket in enumerate(buckets[:count]):
        b0, b1 = start + i * length, min(start + (i + 1) * length, end)
        label = f"buckets[{i}]"
        if not isinstance(bucket, dict) or (bucket.get("start"), bucket.get("end")) != (b0, b1):
            got = (bucket.get("start"), bucket.get("end")) if isinstance(bucket, dict) else bucket
            result.add(Finding(NAME, f"trend bucket {i}: {got} in the API, [{b0}, {b1}) expected", subject=path,
                               field=f"{label}.start", expected=b0, actual=got))
            continue
        # the API takes a bucket's open and overdue counts at min(its end, the moment it answered): a bucket ending
        # after the request is compared in what is the same whenever during the request that moment was (asked
        # without `to`, no bucket ends after that moment: the last ends at it)
        want = rows.metrics(key, b0, b1, b1).to_dict()
        if b1 > before and query["to"] is not None:
            early, late = rows.metrics(key, b0, b1, before).to_dict(), rows.metrics(key, b0, b1, min(b1, after))
            want = {k: v for k, v in early.items() if late.to_dict()[k] == v}
        diffs = [(f"{label}.metrics.{field}", value, got)
                 for field, value, got in expected.differences(want, bucket.get("metrics"))
                 if not _same_number(value, got)]
        if "on_time_rate" in want:  # repeated for the chart: what the page draws
            diffs += [(f"{label}.{field}", value, got)
                      for field, value, got in expected.differences({"on_time_rate": want["on_time_rate"]}, bucket)
                      if not _same_number(value, got)]
        for field, value, got in diffs:
            result.add(Finding(NAME, f"trend bucket [{b0}, {b1}): {field.rsplit('.', 1)[-1]} is {got!r} in the API, "
                               f"{value!r} recomputed from the chain", subject=path, field=field, expected=value,
                               actual=got))
        compared += 1
    return compared


CHECK = Check(
    NAME,
    "Every published metric reproduced",
    "The API's /metrics (whole period, last week, busiest agency, commitment, district, channel, agency and "
    "district, and selections drawn at random from the audit's secret seed covering every pair of agency, "
    "commitment, district, channel, date range and as_of), /scorecards (every agency, every commitment, per "
    "commitment within one district, and drawn selections; their names, and an agency's withheld batches and "
    "entries) and trends "
    "(the busiest commitment's weekly over the whole period, and every commitment's — a sample drawn from the seed, "
    "every agency's among them, when there are more than 24 — over a bucket length and range drawn from the seed, "
    "the chart's rate and target included) equal the figures ledger/metrics.py computes from case, event and "
    "commitment rows rebuilt from the chain, field by field, with the same from/to/as_of.",
    run,
    needs_api=True,
)
