"""Inequality and distribution figures of the simulator's report, exact (pure).

The Gini coefficient of amounts x_1..x_n (not all zero) is the mean absolute difference
over twice the mean:

    G = sum_i sum_j |x_i - x_j| / (2 n^2 mean)

which, with the amounts sorted ascending and ranked i = 1..n, equals

    G = 2 sum_i i x_(i) / (n sum_i x_i) - (n + 1) / n

(the second form is O(n log n) and is what :func:`gini` computes, as an exact
``Fraction``; the tests check it against the first on small inputs). G is 0 when all are
equal and (n - 1) / n when one holds everything; zeros count (a node that earned nothing
is part of the distribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

__all__ = ["PERCENTILES", "gini", "gini_pairwise", "lorenz", "percentile"]

PERCENTILES = (0, 10, 25, 50, 75, 90, 99, 100)
LORENZ_POINTS_MAX = 1000


def gini(amounts: Sequence[int]) -> Fraction:
    """G of ``amounts`` (non-negative integers), exactly; 0 for an empty or all-zero list."""
    assert all(a >= 0 for a in amounts), "amounts are non-negative"
    n = len(amounts)
    total = sum(amounts)
    if n == 0 or total == 0:
        return Fraction(0)
    ranked = sum(rank * amount for rank, amount in enumerate(sorted(amounts), start=1))
    value = Fraction(2 * ranked, n * total) - Fraction(n + 1, n)
    assert 0 <= value <= Fraction(n - 1, n)
    return value


def gini_pairwise(amounts: Sequence[int]) -> Fraction:
    """G by its definition (O(n^2)): the tests' reference for :func:`gini`."""
    n = len(amounts)
    total = sum(amounts)
    if n == 0 or total == 0:
        return Fraction(0)
    differences = sum(abs(a - b) for a in amounts for b in amounts)
    return Fraction(differences, 2 * n * total)


def percentile(sorted_amounts: Sequence[int], p: int) -> int:
    """The nearest-rank percentile (an amount of the list, never an interpolation)."""
    assert 0 <= p <= 100
    assert sorted_amounts, "a percentile of nothing"
    if p == 0:
        return sorted_amounts[0]
    rank = -(-p * len(sorted_amounts) // 100)  # ceil(p n / 100), 1-based
    return sorted_amounts[rank - 1]


def lorenz(amounts: Sequence[int], points: int = 200) -> list[tuple[float, float]]:
    """(share of nodes, share of amounts) at ``points`` + 1 evenly spaced ranks, for charts."""
    assert 1 <= points <= LORENZ_POINTS_MAX
    ordered = sorted(amounts)
    n, total = len(ordered), sum(ordered)
    if n == 0 or total == 0:
        return [(0.0, 0.0), (1.0, 1.0)]
    prefix = [0]
    for amount in ordered:
        prefix.append(prefix[-1] + amount)
    curve = []
    for k in range(points + 1):
        rank = k * n // points
        curve.append((rank / n, prefix[rank] / total))
    return curve
