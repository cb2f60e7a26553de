"""The figures a city publishes and the rankings on the citizen page, in real headless Chromium against the real app
over the demo city (the API tests' ``indexed_city``): the scorecards show each published figure beside the count it
rests on — the count ``ledger.metrics.RANKED_FIGURES`` names — and say what each means, in English and Chinese; the
rankings view puts agencies and commitments in the API's rank order by the figure chosen, the ones not ranked after
them and marked, and keeps its whole selection in the address; a case shows its response and the rectification of
its bad rating. Screenshots go to pytest's tmp dir and to build/screenshots/."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, select

from api.settings import ApiSettings
from ledger.dev import demo
from ledger.metrics import RANKED_FIGURES, Metrics
from ledger.records import Channel
from ledger.store.schema import cases
from ledger.workdays import local_day, local_day_end
from tests.support.browser import AUDIT, PHONE, screenshot, serve, visit, wait_drawn
from tests.support.city import IndexedCity

# the published figures in the order the scorecards show them, with their English and Chinese names
PUBLISHED = {
    "deadline_rate": ("On-time rate", "按时办结率"),
    "response_rate": ("Response rate", "响应率"),
    "resolution_rate": ("Resolution rate", "解决率"),
    "satisfaction_rate": ("Satisfaction rate", "满意率"),
    "rating_coverage": ("Rating coverage", "评价覆盖率"),
    "rectification_rate": ("Bad-rating rectification rate", "差评整改率"),
}
# a phrase of each published figure's explanation on the page (i18n.js "about.<figure>")
EXPLAINED = {
    "deadline_rate": "cases still open past their due time",
    "response_rate": "responded to within one working day",
    "resolution_rate": "the share fulfilled and not disputed",
    "satisfaction_rate": "the share scoring 4 (satisfied) or 5",
    "rating_coverage": "the share their citizen rated",
    "rectification_rate": "the share rectified in time",
}
AGENCY_NAMES = {agency.agency_id: (agency.name_en, agency.name_zh) for agency in demo.AGENCIES}


@pytest.fixture(scope="module")
def base_url(api_settings: ApiSettings) -> Iterator[str]:
    """The real app, served by uvicorn in a thread on a free loopback port, without the figures' limits per client:
    the browser and the test, one client on loopback, ask for many selections at once, each computed afresh — more
    than one citizen's share, which the page would wait out and the browser log as a failed load."""
    with serve(dataclasses.replace(api_settings, expensive_rate_per_minute=0, computation_share=1.0)) as url:
        yield url


EPOCH = dt.date(1970, 1, 1)


@pytest.fixture(scope="module")
def as_of_day() -> str:
    """Today (local) as the page's counting day, whose end is after every demo case: the figures the page shows and
    the ones the test asks the API for are then the same, whenever each is asked (the default, now, moves)."""
    return (EPOCH + dt.timedelta(days=local_day(int(time.time())))).isoformat()


def as_of_param(day: str) -> int:
    """The API's as_of for the page's counting day: the end of that local day (ui.js filterParams)."""
    return local_day_end((dt.date.fromisoformat(day) - EPOCH).days)


def scorecards(base_url: str, **params: Any) -> dict[str, Any]:
    answer = requests.get(f"{base_url}/api/v1/scorecards", params=params, timeout=60)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def percent(rate: str | None) -> str:
    """A published rate as the page shows it (i18n.js formatRate): a percentage with at most two decimals."""
    if rate is None:
        return "—"
    return f"{(Decimal(rate) * 100).normalize():f}%"


def sample(metrics: dict[str, Any], figure: str) -> int:
    """The count `figure` rests on, by ledger.metrics' own definition (RANKED_FIGURES), of the API's metrics (the
    fields of ledger.metrics.Metrics; the counts are what it reads)."""
    return RANKED_FIGURES[figure](Metrics(**metrics))[1]


def ranking(answer: dict[str, Any], figure: str) -> list[dict[str, Any]]:
    """The scorecards in the order a ranking by `figure` lists them: by rank (equal ranks in the API's order), then
    the ones not ranked, in the API's order."""
    ranked = sorted((c for c in answer["items"] if c["ranks"][figure] is not None), key=lambda c: c["ranks"][figure])
    return ranked + [c for c in answer["items"] if c["ranks"][figure] is None]


def shown_names(page: Page) -> list[str]:
    """The names of a drawn ranking's rows, in order (a commitment's own name, without its agency's)."""
    return page.locator("table.rankings tbody th a").all_inner_texts()


def hash_query(page: Page) -> dict[str, list[str]]:
    hash_ = str(page.evaluate("location.hash"))
    return parse_qs(urlsplit(hash_[1:]).query)


# --- the scorecards ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_scorecards_show_each_published_figure_with_what_it_rests_on_in_english_and_chinese(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    answer = scorecards(base_url, by="agency")
    visit(page, base_url + "/")
    table = page.locator("table.scorecards")
    headers = table.locator("thead th").all_inner_texts()
    assert headers[1:7] == [en for en, _ in PUBLISHED.values()], headers
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(len(answer["items"]))
    checked = 0
    for index, card in enumerate(answer["items"]):
        row = rows.nth(index)
        expect(row.locator("th")).to_have_text(AGENCY_NAMES[card["agency_id"]][0])
        metrics = card["metrics"]
        for column, figure in enumerate(PUBLISHED):
            cell = row.locator("td").nth(column)
            if metrics[figure] is None:
                expect(cell).to_have_text("—")
                continue
            # the rate and the count it rests on, which is ledger.metrics' own sample of the figure
            expect(cell).to_contain_text(f"{percent(metrics[figure])} of {sample(metrics, figure)}")
            checked += 1
        if metrics["on_time_rate"] is not None:
            # the older on-time rate, of fulfilled cases only, under the one the city publishes
            expect(row.locator("td").first.locator(".fulfilled-only")).to_have_text(
                f"fulfilled cases only: {percent(metrics['on_time_rate'])} of {metrics['on_time_eligible']}"
            )
    assert checked >= len(answer["items"]) * 3, "the demo city should give most published figures a rate"

    # what each figure means, as ledger/metrics.py defines it
    notes = page.locator("details.figure-notes").first
    notes.locator("summary").click()
    terms = notes.locator("dt").all_inner_texts()
    assert [en for en, _ in PUBLISHED.values()] == terms[:6], terms
    on_time = notes.locator("dd").first
    for words in ("rejected or recorded withdrawn after their due time", "still open past their due time",
                  "time on hold"):
        expect(on_time).to_contain_text(words)
    expect(notes).to_contain_text("within 15 working days")
    expect(notes).to_contain_text(f"fewer than {answer['min_ranked_sample']} cases is not ranked")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-published-figures.png", tmp_path)

    page.get_by_role("button", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    headers = table.locator("thead th").all_inner_texts()
    assert headers[1:7] == [zh for _, zh in PUBLISHED.values()], headers
    roads = next(i for i, c in enumerate(answer["items"]) if c["agency_id"] == "DEMO-ROADS")
    metrics = answer["items"][roads]["metrics"]
    row = rows.nth(roads)
    expect(row.locator("th")).to_have_text(AGENCY_NAMES["DEMO-ROADS"][1])
    expect(row.locator("td").first).to_contain_text(
        f"{percent(metrics['deadline_rate'])} （基数 {metrics['deadline_cases']}）"
    )
    expect(row.locator("td").nth(1)).to_contain_text(f"（基数 {metrics['responses_due']}）")
    notes = page.locator("details.figure-notes").first
    expect(notes.locator("summary")).to_have_text("各项指标的含义")
    notes.locator("summary").click()
    expect(notes.locator("dt").first).to_have_text("按时办结率")
    expect(notes).to_contain_text("超过时限后驳回或记为撤回")
    expect(notes).to_contain_text("15 个工作日")
    expect(notes).to_contain_text(f"基数不足 {answer['min_ranked_sample']} 件的不参与排名")
    assert page.evaluate(AUDIT) == []


# --- the rankings -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_ranking_follows_the_api_ranks_lists_the_unranked_after_and_reorders_by_the_figure_chosen(
    page: Page, base_url: str, as_of_day: str, tmp_path: Path
) -> None:
    selection = {"as_of": as_of_param(as_of_day)}
    by_agency = scorecards(base_url, by="agency", **selection)
    minimum = by_agency["min_ranked_sample"]
    on_time = ranking(by_agency, "deadline_rate")
    unranked = [c for c in on_time if c["ranks"]["deadline_rate"] is None]
    assert unranked and len(unranked) < len(on_time), "the demo city should have agencies ranked and not ranked"

    visit(page, f"{base_url}/#/rankings?as_of={as_of_day}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Rankings")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Rankings")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_label("Rank by")).to_have_value("deadline_rate")  # the city's on-time rate by default
    expect(page.locator("table.rankings caption")).to_contain_text("Agencies ranked by On-time rate")
    assert shown_names(page) == [AGENCY_NAMES[c["agency_id"]][0] for c in on_time]
    rows = page.locator("table.rankings tbody tr")
    for index, card in enumerate(on_time):
        row, rank = rows.nth(index), card["ranks"]["deadline_rate"]
        if rank is None:
            # marked, with the response's own minimum sample
            expect(row).to_have_class("unranked")
            expect(row.locator("td.rank")).to_have_text(f"not ranked: fewer than {minimum} cases")
        else:
            expect(row.locator("td.rank")).to_have_text(str(rank))
        rate = card["metrics"]["deadline_rate"]
        expect(row.locator("td").nth(1)).to_have_text(
            f"{percent(rate)} of {sample(card['metrics'], 'deadline_rate')}" if rate is not None else "—"
        )
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-rankings.png", tmp_path)

    # another figure: another order, from the same selection, and the address says which. Which published figure
    # orders the demo's agencies differently from the on-time rate depends on the day the tests run (the city ends
    # just before it, and working-day deadlines fall across weekends), so the test takes the first that does.
    others = {figure: ranking(by_agency, figure) for figure in PUBLISHED if figure != "deadline_rate"}
    order = [c["agency_id"] for c in on_time]
    figure, other = next(
        ((f, cards) for f, cards in others.items() if [c["agency_id"] for c in cards] != order), (None, None)
    )
    assert figure is not None and other is not None, f"every published figure orders the demo's agencies as {order}"
    name = PUBLISHED[figure][0]
    page.get_by_label("Rank by").select_option(label=name)
    wait_drawn(page)
    assert hash_query(page) == {"by": ["agency"], "figure": [figure], "as_of": [as_of_day]}
    expect(page.get_by_label("Rank by")).to_be_focused()  # the reader stays on the control they used
    expect(page.locator("table.rankings caption")).to_contain_text(f"Agencies ranked by {name}")
    assert shown_names(page) == [AGENCY_NAMES[c["agency_id"]][0] for c in other]
    expect(page.locator("main")).to_contain_text(EXPLAINED[figure])  # the figure, explained

    # commitments, by the same figure
    by_commitment = scorecards(base_url, by="commitment", **selection)
    page.get_by_role("radio", name="Commitments").check()
    wait_drawn(page)
    assert hash_query(page)["by"] == ["commitment"]
    expect(page.get_by_role("radio", name="Commitments")).to_be_focused()
    expected = ranking(by_commitment, figure)
    assert shown_names(page) == [c["commitment_name_en"] for c in expected]
    expect(page.locator("table.rankings tbody tr.unranked")).to_have_count(
        sum(1 for c in expected if c["ranks"][figure] is None)
    )
    assert page.evaluate(AUDIT) == []


@pytest.mark.slow
def test_a_ranking_keeps_its_whole_selection_in_the_address(page: Page, base_url: str, as_of_day: str) -> None:
    hotline = str(int(Channel.HOTLINE))
    # the scorecards' filters go with the reader to the rankings
    visit(page, f"{base_url}/#/?channel={hotline}")
    page.get_by_role("link", name="Rank agencies and commitments by each figure").click()
    wait_drawn(page)
    assert hash_query(page) == {"channel": [hotline]}
    expect(page.get_by_label("Channel")).to_have_value(hotline)

    page.get_by_label("Rank by").select_option("response_rate")
    wait_drawn(page)
    page.get_by_label("Counted at the end of", exact=True).fill(as_of_day)
    page.get_by_role("button", name="Apply").click()
    wait_drawn(page)
    chosen = {"by": ["agency"], "figure": ["response_rate"], "channel": [hotline], "as_of": [as_of_day]}
    assert hash_query(page) == chosen
    answer = scorecards(base_url, by="agency", channel=hotline, as_of=as_of_param(as_of_day))
    expected = [AGENCY_NAMES[c["agency_id"]][0] for c in ranking(answer, "response_rate")]
    assert shown_names(page) == expected
    expect(page.locator("table.rankings caption")).to_contain_text("Hotline")

    # the address alone gives the same ranking: shared, in a browser that has seen nothing before
    shared = page.url
    other = page.context.new_page()
    try:
        visit(other, shared)
        expect(other.get_by_label("Rank by")).to_have_value("response_rate")
        expect(other.get_by_role("radio", name="Agencies")).to_be_checked()
        expect(other.get_by_label("Channel")).to_have_value(hotline)
        expect(other.get_by_label("Counted at the end of", exact=True)).to_have_value(as_of_day)
        assert shown_names(other) == expected
    finally:
        other.close()

    # a reset drops the filters, not the ranking chosen
    page.get_by_role("button", name="Reset").click()
    wait_drawn(page)
    assert hash_query(page) == {"by": ["agency"], "figure": ["response_rate"]}
    expect(page.locator("table.rankings tbody tr")).to_have_count(len(demo.AGENCIES))


@pytest.mark.slow
def test_rankings_at_phone_width_in_chinese(phone: Page, base_url: str, tmp_path: Path) -> None:
    answer = scorecards(base_url, by="commitment")
    visit(phone, f"{base_url}/#/rankings?by=commitment")
    expect(phone.locator("html")).to_have_attribute("lang", "zh")
    expect(phone.get_by_role("heading", level=1)).to_have_text("排名")
    expect(phone.locator("table.rankings caption")).to_contain_text("各项承诺按时办结率排名")
    unranked = phone.locator("table.rankings tbody tr.unranked")
    expect(unranked.first.locator("td.rank")).to_have_text(f"样本不足{answer['min_ranked_sample']}件，不参与排名")
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-rankings.png", tmp_path)


@pytest.mark.slow
def test_a_commitment_shows_its_published_figures_for_the_selection_and_leads_to_its_ranking(
    page: Page, base_url: str, as_of_day: str
) -> None:
    roads = next(a for a in demo.AGENCIES if a.agency_id == "DEMO-ROADS")
    streetlight = roads.services[0]
    answer = scorecards(base_url, by="commitment", as_of=as_of_param(as_of_day))
    key = (roads.agency_id, streetlight.code)
    card = next(c for c in answer["items"] if (c["agency_id"], c["commitment_id"]) == key)
    visit(page, f"{base_url}/#/commitment/{roads.agency_id}/{streetlight.code}?bucket=week")
    # the filter form is the commitment's own: applying it keeps the view and its period
    page.get_by_label("Counted at the end of", exact=True).fill(as_of_day)
    page.get_by_role("button", name="Apply").click()
    wait_drawn(page)
    assert str(page.evaluate("location.hash")).startswith(f"#/commitment/{roads.agency_id}/{streetlight.code}?")
    assert hash_query(page) == {"as_of": [as_of_day], "bucket": ["week"]}

    published = page.locator("dl.facts").nth(1)
    expect(published.locator("dt")).to_have_text([en for en, _ in PUBLISHED.values()])
    not_ranked = f"not ranked: fewer than {answer['min_ranked_sample']} cases"
    for index, figure in enumerate(PUBLISHED):
        value = published.locator("dd").nth(index)
        metrics = card["metrics"]
        if metrics[figure] is None:
            expect(value).to_contain_text("—")
        else:
            expect(value).to_contain_text(f"{percent(metrics[figure])} of {sample(metrics, figure)}")
        if card["ranks"][figure] is None:
            expect(value.locator(".rank-note")).to_have_text(not_ranked)
        else:
            ranked = sum(1 for c in answer["items"] if c["ranks"][figure] is not None)
            expect(value.locator(".rank-note")).to_have_text(f"rank {card['ranks'][figure]} of {ranked}")

    # its rank leads to the ranking of commitments by that figure, over the same selection
    figure = "deadline_rate"
    assert card["ranks"][figure] is not None, "the demo's streetlight commitment should rest on enough cases"
    published.locator("dd").first.locator(".rank-note a").click()
    wait_drawn(page)
    assert hash_query(page) == {"by": ["commitment"], "figure": [figure], "as_of": [as_of_day]}
    mine = page.locator("table.rankings tbody tr").filter(has_text=streetlight.name_en)
    expect(mine.locator("td.rank")).to_have_text(str(card["ranks"][figure]))
    assert page.evaluate(AUDIT) == []


# --- a case: its response, and the rectification of its bad rating ---------------------------------------------------


@pytest.fixture(scope="module")
def rectified_case(indexed_city: IndexedCity) -> tuple[str, str, bool]:
    """A case of the demo city whose bad rating the agency rectified: (agency, case id, whether in time)."""
    engine = create_engine(indexed_city.store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(cases.c.agency_id, cases.c.case_id, cases.c.rectified_at, cases.c.rectification_due)
                .where(cases.c.rectified_at.is_not(None))
                .order_by(cases.c.agency_id, cases.c.case_id)
                .limit(1)
            ).one_or_none()
            # ledger/dev/demo.py guarantees one in any city with a late case (the city is drawn around now)
            assert row is not None, "the demo city has no rectified bad rating"
    finally:
        engine.dispose()
    return row.agency_id, "0x" + bytes(row.case_id).hex(), row.rectified_at <= row.rectification_due


@pytest.mark.slow
def test_a_case_shows_its_response_and_the_rectification_of_its_bad_rating(
    page: Page, base_url: str, rectified_case: tuple[str, str, bool]
) -> None:
    agency_id, case_id, in_time = rectified_case
    visit(page, f"{base_url}/#/case/{agency_id}/{case_id}")
    result = page.locator(".case-result")
    facts = {
        dt_.inner_text(): dd.inner_text()
        for dt_, dd in zip(result.locator("dl dt").all(), result.locator("dl dd").all(), strict=True)
    }
    assert "Response due by (1 working day)" in facts
    assert facts["First response by the agency"].endswith(("in time", "late")), facts
    assert "Rectification of the bad rating due by (15 working days)" in facts
    assert facts["Bad rating rectified on"].endswith("in time" if in_time else "late"), facts
    expect(result.locator("table.events tbody th").get_by_text("Bad rating rectified", exact=True)).to_have_count(1)

    page.get_by_role("button", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    expect(result.locator("dl")).to_contain_text("差评整改期限（15 个工作日）")
    expect(result.locator("dl")).to_contain_text("部门首次响应时间")
    expect(result.locator("table.events tbody th").get_by_text("差评整改", exact=True)).to_have_count(1)
    assert page.evaluate(AUDIT) == []
