"""api.http's language rule, `negotiate_language`: the ``lang`` parameter, Accept-Language with its weights, and
bounded work on a hostile header."""

from __future__ import annotations

import time

import pytest

from api.http import ACCEPT_LANGUAGE_LIMIT, negotiate_language

# --- the lang parameter -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("en", "en"), ("zh", "zh"), ("ZH", "zh"), (" zh ", "zh"), ("zh-CN", "zh"), ("zh_TW", "zh"), ("zh-Hant-TW", "zh"),
    ("en-GB", "en"), ("EN_us", "en"),
])
def test_the_lang_parameter_is_read_by_its_primary_subtag(given: str, expected: str) -> None:
    assert negotiate_language(given, None) == expected
    # and it wins over the header
    assert negotiate_language(given, "zh" if expected == "en" else "en") == expected


@pytest.mark.parametrize("given", ["fr", "", " ", "e", "english", "zhx", "-zh", "*", "zh;q=1", "中文"])
def test_another_lang_is_a_value_error_saying_what_is_accepted(given: str) -> None:
    with pytest.raises(ValueError, match="lang must be en or zh, not "):
        negotiate_language(given, "en")


def test_the_error_repeats_at_most_twenty_characters_of_the_value() -> None:
    with pytest.raises(ValueError) as raised:
        negotiate_language("f" * 100_000, None)
    assert str(raised.value) == f"lang must be en or zh, not {'f' * 20!r}"


# --- Accept-Language --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("", "en"), (" ", "en"), (",,,", "en"), ("fr, de;q=0.5", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("en-US,zh;q=0.5", "en"),
    ("fr, en;q=0.5, zh;q=0.3", "en"),
    ("fr, zh;q=0.3, en;q=0.5", "en"),
    ("ZH-cn", "zh"), ("zh_TW", "zh"),
    # the weight decides, not the order (the feeds used to take the first of en and zh)
    ("en;q=0.5, zh", "zh"), ("en;q=0.4, zh;q=0.401", "zh"),
    # ties go to the earlier
    ("zh;q=0.8, en;q=0.8", "zh"), ("en, zh", "en"), ("zh, en", "zh"),
    # whitespace around each piece, and the parameter's name in any case
    ("  zh ; q = 0.7 ,  en ; Q=0.6 ", "zh"), ("\ten;q=0.2,\tzh;q=0.1", "en"),
    # q=0 is "not acceptable": never chosen; with nothing acceptable the default is en
    ("zh;q=0", "en"), ("zh;q=0.000, en;q=0.001", "en"), ("en;q=0, zh;q=0.1", "zh"), ("en;q=0, zh;q=0", "en"),
    # a weight that is not a number in [0, 1] drops its range
    ("zh;q=abc, en;q=0.1", "en"), ("zh;q=2, en;q=0.1", "en"), ("zh;q=-0.5, en;q=0.1", "en"),
    ("zh;q=nan, en;q=0.1", "en"), ("zh;q=inf, en;q=0.1", "en"), ("zh;q=, en;q=0.1", "en"),
    ("zh;q=0.5;q=7, en;q=0.1", "en"),
    # "*" is ignored (RFC 9110 §12.5.4 allows it): the listed language, else the default
    ("*, zh;q=0.1", "zh"), ("*", "en"), ("*;q=0.9, fr", "en"),
    # a parameter other than q does not change the weight
    ("zh;level=1, en;q=0.9", "zh"),
])
def test_accept_language_picks_the_best_weighted_of_en_and_zh(header: str | None, expected: str) -> None:
    assert negotiate_language(None, header) == expected


def test_only_the_first_512_characters_are_read_and_a_range_cut_there_is_not() -> None:
    assert ACCEPT_LANGUAGE_LIMIT == 512
    filler = "fr;q=0.1," * 100  # 900 characters
    assert negotiate_language(None, filler + "zh") == "en"
    assert negotiate_language(None, "zh;q=0.5," + filler + "en") == "zh"
    # "zh-CN" cut to "zh" at the limit is not read; a range ending just before the cut is
    assert negotiate_language(None, "a" * 509 + ",zh-CN") == "en"
    assert negotiate_language(None, "a" * 509 + ",zh,en") == "zh"
    # nor is a weight cut there ("zh;q=10", not acceptable, would be read as "zh;q=1")
    assert negotiate_language(None, "en;q=0.5," + "b" * 496 + ",zh;q=10") == "en"
    assert negotiate_language(None, "en;q=0.5," + "b" * 495 + ",zh;q=1") == "zh"


@pytest.mark.parametrize("header", [
    " " * 10_000_000, "a-" * 5_000_000, "," * 10_000_000, ";q=" * 3_000_000, "zh-" + "a" * 10_000_000,
    "en;q=" + "0" * 10_000_000, ("en;" * 1000 + "q=1,") * 10_000,
])
def test_a_huge_header_is_answered_at_once(header: str) -> None:
    started = time.monotonic()
    negotiate_language(None, header)
    assert time.monotonic() - started < 0.1


def test_a_huge_lang_parameter_is_refused_at_once() -> None:
    started = time.monotonic()
    for value in (" " * 10_000_000, "a-" * 5_000_000, "_" * 10_000_000):
        with pytest.raises(ValueError):
            negotiate_language(value, None)
    assert negotiate_language("zh-" + "a" * 10_000_000, None) == "zh"
    assert time.monotonic() - started < 0.5
