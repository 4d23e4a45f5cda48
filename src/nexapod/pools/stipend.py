"""The weekly cold stipend, as pure arithmetic (ECONOMICS.md section 4).

    availability = challenges answered in time / challenges issued in the week
    stipend      = (5 NXC, 5 + 5 x availability USDC) x (seconds in cold / seconds in the week)

nothing below ``min_availability``, and nothing for a week with no challenge (there is
no evidence the node was there). Fractions are exact (``Fraction``) and each amount is
floored to its base unit once, at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from nexapod.policy import Policy

__all__ = ["Stipend", "cold_seconds", "stipend"]


@dataclass(frozen=True, slots=True)
class Stipend:
    nxc_micro: int
    usdc_micro: int
    note: str  # why it is what it is ("" when paid in full measure)


def stipend(cold_s: int, issued: int, answered: int, policy: Policy) -> Stipend:
    period_s = policy.stipend_period_s
    assert 0 <= cold_s <= period_s
    assert 0 <= answered <= issued
    if cold_s == 0:
        return Stipend(0, 0, "not in cold this period")
    if issued == 0:
        return Stipend(0, 0, "no liveness challenge was issued: availability unknown")
    availability = Fraction(answered, issued)
    if availability < Fraction(policy.min_availability):
        return Stipend(0, 0, f"availability {answered}/{issued} below {policy.min_availability}")
    share = Fraction(cold_s, period_s)
    nxc = Fraction(policy.stipend_micro_nxc) * share
    usdc = (
        policy.stipend_base_micro_usdc + policy.stipend_availability_micro_usdc * availability
    ) * share
    assert nxc <= policy.stipend_micro_nxc
    return Stipend(int(nxc), int(usdc), "" if cold_s == period_s else "prorated")


def cold_seconds(
    pool_at_start: str, changes: Sequence[tuple[int, str]], start_ms: int, end_ms: int
) -> int:
    """Whole seconds spent in cold in ``[start_ms, end_ms)``.

    ``changes`` are (at_ms, to_pool) in time order, all inside the period; promoted time
    is hot, so it is not cold time (it earns the hot rate instead).
    """
    assert start_ms <= end_ms
    cold_ms = 0
    pool, since = pool_at_start, start_ms
    for at_ms, to_pool in changes:
        assert start_ms <= at_ms < end_ms, "a change inside the period"
        assert at_ms >= since, "changes in time order"
        if pool == "cold":
            cold_ms += at_ms - since
        pool, since = to_pool, at_ms
    if pool == "cold":
        cold_ms += end_ms - since
    return cold_ms // 1000
