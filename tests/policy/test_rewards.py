"""Reward arithmetic (ECONOMICS.md section 3): the properties, exact, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.policy import RewardQuote, default_policy, quote

POLICY = default_policy()
EPOCH_S = POLICY.epoch_s
CAPACITY = 10**13  # FLOP/s: C = 3.6 x 10^16 per epoch
CAP_FLOPS = CAPACITY * EPOCH_S
flops = st.integers(min_value=0, max_value=10**19)


@settings(max_examples=200, deadline=None)
@given(flops, flops)
def test_monotone_and_never_above_the_linear_rate(a: int, b: int) -> None:
    low, high = sorted((a, b))
    q_low, q_high = quote(low, CAPACITY, EPOCH_S, POLICY), quote(high, CAPACITY, EPOCH_S, POLICY)
    assert q_low.s_flops <= q_high.s_flops
    assert q_low.nxc_micro <= q_high.nxc_micro and q_low.usdc_micro <= q_high.usdc_micro
    assert q_high.s_flops <= high
    assert q_high.nxc_micro <= high * 10**6 // POLICY.flops_per_nxc
    assert q_high.usdc_micro <= high * 10**6 // POLICY.flops_per_usdc


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=CAP_FLOPS // 2),
    st.integers(min_value=1, max_value=CAP_FLOPS // 2),
)
def test_concave(f: int, step: int) -> None:
    s0, s1, s2 = (quote(f + i * step, CAPACITY, EPOCH_S, POLICY).s_flops for i in range(3))
    assert s2 - s1 <= s1 - s0 + Decimal("1e-40")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**20))
def test_constant_beyond_the_cap(extra: int) -> None:
    assert quote(CAP_FLOPS + extra, CAPACITY, EPOCH_S, POLICY) == quote(
        CAP_FLOPS, CAPACITY, EPOCH_S, POLICY
    )


def test_the_node_cap_bounds_a_claimed_capacity() -> None:
    huge = 10**30  # a benchmark claiming more than the cap counts as the cap
    cap = POLICY.node_cap_flops_per_s * EPOCH_S
    assert quote(10**25, huge, EPOCH_S, POLICY) == quote(
        cap, POLICY.node_cap_flops_per_s, EPOCH_S, POLICY
    )


def test_exact_values_agree_with_an_independent_float_estimate() -> None:
    for f in (1, 1000, 10**9, 10**12, 10**15, CAP_FLOPS):
        q = quote(f, CAPACITY, EPOCH_S, POLICY)
        knee = POLICY.knee_flops_per_s * EPOCH_S
        estimate = knee * math.log1p(f / knee)
        assert abs(float(q.s_flops) - estimate) <= 1e-9 * max(estimate, 1)
        assert q.nxc_micro == int(q.s_flops * 10**6 // POLICY.flops_per_nxc)


def test_small_contributions_earn_almost_the_seed_rate() -> None:
    q = quote(10**9, CAPACITY, EPOCH_S, POLICY)  # 10^9 FLOPs = 10^6 NXC at the seed rate
    assert 10**12 - 10**12 // 10**7 <= q.nxc_micro < 10**12  # within 10^-7 of linear


def test_deterministic_and_policy_driven() -> None:
    assert quote(10**14, CAPACITY, EPOCH_S, POLICY) == quote(10**14, CAPACITY, EPOCH_S, POLICY)
    doubled = replace(POLICY, flops_per_nxc=2000)
    assert quote(10**14, CAPACITY, EPOCH_S, doubled).nxc_micro in {
        quote(10**14, CAPACITY, EPOCH_S, POLICY).nxc_micro // 2,
        quote(10**14, CAPACITY, EPOCH_S, POLICY).nxc_micro // 2 - 1,
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexapod", "rewards", "quote", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_prints_exact_integers() -> None:
    out = _cli("--flops", "1000000000000", "--capacity-flops-per-s", str(CAPACITY))
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    expected = quote(10**12, CAPACITY, EPOCH_S, POLICY)
    assert printed["nxc_micro"] == expected.nxc_micro
    assert printed["usdc_micro"] == expected.usdc_micro
    assert printed["s_flops"] == int(expected.s_flops)
    assert printed["policy_sha256"] == POLICY.sha256
    bad = _cli("--flops", "-5", "--capacity-flops-per-s", "1")
    assert bad.returncode != 0
    assert "--flops must be a non-negative integer" in bad.stderr


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**60 - 1),
    st.integers(min_value=-120, max_value=60),
)
def test_the_fast_logarithm_is_decimals_digit_for_digit(coefficient: int, exponent: int) -> None:
    """ln (MPFR, rounded half-even) equals decimal's correctly rounded ln at 60 digits."""
    from decimal import Context

    from nexapod.policy._rewards import ln

    context = Context(prec=60)
    value = context.plus(Decimal(coefficient).scaleb(exponent))
    above_one = context.add(1, value)  # the shape quote() takes the logarithm of
    assert ln(value) == context.ln(value)
    assert ln(above_one) == context.ln(above_one)


@settings(max_examples=500, deadline=None)
@given(
    flops=st.one_of(st.integers(0, 10**25), st.integers(0, 10**6)),
    capacity=st.one_of(st.integers(0, 10**19), st.integers(0, 1000)),
    epoch_s=st.sampled_from([60, 3600, 86_400]),
    knee=st.sampled_from([10**13, 10**15, 10**18]),
    rates=st.sampled_from([(1000, 20000), (1000, 30001), (7, 3), (1, 1)]),
)
def test_the_fast_integer_quote_is_the_60_digit_quote(
    flops: int, capacity: int, epoch_s: int, knee: int, rates: tuple[int, int]
) -> None:
    """Settlement's quote_micro (MPFR at 128 bits, decimal near an integer) pays exactly
    what the 60-digit quote pays, over the whole range of inputs: with USDC's rate a
    multiple of NXC's (micro-USDC from micro-NXC) and not (each computed)."""
    from nexapod.policy._rewards import quote_micro

    flops_per_nxc, flops_per_usdc = rates
    policy = replace(
        POLICY,
        knee_flops_per_s=knee,
        flops_per_nxc=flops_per_nxc,
        flops_per_usdc=flops_per_usdc,
    )
    exact = quote(flops, capacity, epoch_s, policy)
    assert quote_micro(flops, capacity, epoch_s, policy) == (exact.nxc_micro, exact.usdc_micro)


def test_the_fast_integer_quote_asks_decimal_near_an_integer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the fast amount is too near an integer to trust its floor, the 60-digit quote
    decides (the margin widened here so that every amount counts as near)."""
    from nexapod.policy import _rewards

    asked: list[int] = []
    real_quote = _rewards.quote

    def counting_quote(flops: int, *rest: object) -> RewardQuote:
        asked.append(flops)
        return real_quote(flops, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_rewards, "_MARGIN_ULPS", 1 << 127)
    monkeypatch.setattr(_rewards, "quote", counting_quote)
    pays = [_rewards.quote_micro(f, CAPACITY, EPOCH_S, POLICY) for f in (1, 10**12, 10**17)]

    assert asked == [1, 10**12, 10**17]
    assert pays == [
        (q.nxc_micro, q.usdc_micro)
        for q in (real_quote(f, CAPACITY, EPOCH_S, POLICY) for f in (1, 10**12, 10**17))
    ]


@settings(max_examples=100, deadline=None)
@given(
    work=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 10**12, 3 * 10**15, 7 * 10**17, 10**25]),
            st.sampled_from([0, 1, 10**9, 10**12, 10**15, 10**19]),
        ),
        max_size=30,
    )
)
def test_nodes_sharing_min_f_c_share_a_pay_and_each_gets_its_own_quote(
    work: list[tuple[int, int]],
) -> None:
    """quotes_micro computes each distinct min(F, C) once; every node still gets exactly
    its own quote, in order, whichever of F or C is the smaller."""
    from nexapod.policy._rewards import quotes_micro

    expected = [quote(f, c, EPOCH_S, POLICY) for f, c in work]
    assert quotes_micro(work, EPOCH_S, POLICY) == [(q.nxc_micro, q.usdc_micro) for q in expected]
