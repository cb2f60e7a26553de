"""How many views to sample: the chance that a sample of n views, drawn at random without replacement from N, holds at
least one of k views the operator lied in, and the least n that gives a wanted chance.

Rule (the hypergeometric distribution): a sample of n of N views misses all k lies with probability
``C(N - k, n) / C(N, n)``, so it catches at least one with ``1 - C(N - k, n) / C(N, n)``. The samples are drawn from
the audit's secret seed (``AuditContext.rng``), so the operator cannot know which n views will be looked at; the
formula holds whatever k views it chose. Computed exactly in integers (no floating point until the end).
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

from ledger.errors import LedgerError


class InvalidSampling(LedgerError, ValueError):
    """A sample size, population, number of lies or confidence that cannot be used."""


def _check(population: int, lies: int) -> None:
    if population < 0:
        raise InvalidSampling(f"the number of views must not be negative, got {population}")
    if lies < 1:
        raise InvalidSampling(f"the assumed number of lied-about views must be at least 1, got {lies}")


def miss_chance(population: int, lies: int, n: int) -> Fraction:
    """``C(N - k, n) / C(N, n)``: the chance that n views drawn from `population` (N) miss every one of `lies` (k)."""
    _check(population, lies)
    if n < 0:
        raise InvalidSampling(f"a sample size must not be negative, got {n}")
    lies, n = min(lies, population), min(n, population)
    if lies == 0:
        return Fraction(1)  # nothing to catch among no views
    return Fraction(comb(population - lies, n), comb(population, n))


def catch_chance(population: int, lies: int, n: int) -> float:
    """``1 - C(N - k, n) / C(N, n)``: the chance that n random views of N include at least one of k lies."""
    return float(1 - miss_chance(population, lies, n))


def sample_size(population: int, lies: int, confidence: float) -> int:
    """The least n with ``1 - C(N - k, n) / C(N, n) >= confidence`` (all N when even that falls short, which only
    happens for N = 0). The miss chance only falls as n grows, so a bisection finds it in ``log2 N`` steps."""
    _check(population, lies)
    if not 0 < confidence < 1:
        raise InvalidSampling(f"a confidence is a probability strictly between 0 and 1, got {confidence}")
    want = 1 - Fraction(str(confidence))  # the largest miss chance allowed (0.9 as written, not its binary float)
    low, high = 0, population
    while low < high:
        mid = (low + high) // 2
        if miss_chance(population, lies, mid) <= want:
            high = mid
        else:
            low = mid + 1
    return low
