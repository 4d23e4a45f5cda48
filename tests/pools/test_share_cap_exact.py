"""The share cap's comparison is exact at any magnitude (integers, not 28-digit Decimal)."""

from __future__ import annotations

from decimal import Decimal

from nexapod.policy import default_policy
from nexapod.pools import rules

POLICY = default_policy()


def test_a_share_just_under_the_cap_is_not_over_whatever_the_digits() -> None:
    assert POLICY.max_user_share == Decimal("0.35")
    total = 10**30 + 7
    # 0.35 * total = 350000000000000000000000000002.45: a holder of ...002 is under it,
    # though Decimal's default 28 digits round 0.35 * total to 3.5E+29 (and say "over")
    under = 350_000_000_000_000_000_000_000_000_002
    rest = total - under
    by_user = {"a": under, "b": rest // 2, "c": rest - rest // 2}
    assert sum(by_user.values()) == total
    assert rules._over_share(by_user, POLICY) == []
    by_user["a"] += 1  # ...003 > ...002.45
    by_user["b"] -= 1
    assert rules._over_share(by_user, POLICY) == ["a"]


def test_the_rebalance_skips_work_when_nobody_is_over() -> None:
    members = [rules.Member(f"n{i}", f"u{i % 5}", "hot", 10**12, since_ms=i) for i in range(50)]
    assert rules.rebalance(members, POLICY) == []
