"""The simulator's exact figures: Gini, percentiles, the Lorenz curve."""

from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from nexapod.sim.stats import gini, gini_pairwise, lorenz, percentile


def test_gini_of_known_distributions() -> None:
    assert gini([]) == 0
    assert gini([0, 0, 0]) == 0
    assert gini([7, 7, 7, 7]) == 0
    assert gini([0, 0, 0, 1]) == Fraction(3, 4)  # one holds all: (n - 1) / n
    # sum |xi - xj| over ordered pairs = 40; 2 n^2 mean = 2 * 25 * 3 = 150
    assert gini([1, 2, 3, 4, 5]) == Fraction(4, 15)
    assert gini([5, 1, 4, 2, 3]) == Fraction(4, 15), "order does not matter"
    assert gini([1, 3]) == Fraction(1, 4)


@given(st.lists(st.integers(0, 10**30), max_size=40))
def test_gini_equals_its_definition(amounts: list[int]) -> None:
    value = gini(amounts)
    assert value == gini_pairwise(amounts)
    assert 0 <= value < 1


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=40), st.integers(1, 10**6))
def test_gini_is_scale_invariant(amounts: list[int], factor: int) -> None:
    assert gini([a * factor for a in amounts]) == gini(amounts)


def test_percentile_is_nearest_rank() -> None:
    ordered = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert percentile(ordered, 0) == 10
    assert percentile(ordered, 10) == 10
    assert percentile(ordered, 11) == 20
    assert percentile(ordered, 50) == 50
    assert percentile(ordered, 100) == 100
    assert percentile([3], 99) == 3


def test_lorenz_runs_from_zero_to_one() -> None:
    curve = lorenz([0, 0, 1, 3], points=4)
    assert curve[0] == (0.0, 0.0)
    assert curve[-1] == (1.0, 1.0)
    assert curve[2] == (0.5, 0.0), "the poorer half holds nothing"
    assert all(y1 <= y2 for (_, y1), (_, y2) in itertools.pairwise(curve))
    assert lorenz([]) == [(0.0, 0.0), (1.0, 1.0)]
