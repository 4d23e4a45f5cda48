"""Hot-pool rewards of one node for one epoch, exactly as ECONOMICS.md section 3 says.

    C = min(capacity, node_cap) * epoch_s        the most FLOPs that count
    K = knee_flops_per_s * epoch_s               where the logarithm bends
    S(F) = K * ln(1 + min(F, C) / K)             scaled FLOPs: <= F, concave, flat past C
    micro-NXC = floor(S * 10^6 / flops_per_nxc), micro-USDC = floor(S * 10^6 / flops_per_usdc)

S is computed with ``decimal`` at 60 significant digits, never in binary floating point,
so anyone can recompute a payment to the last unit (``nexapod rewards quote``).

The logarithm is the one costly step (0.1 to 0.4 ms in ``decimal`` at 60 digits, so a
settlement of 100,000 nodes would spend tens of seconds on it). ``decimal``'s ``ln`` is
correctly rounded (half-even), so any other correctly rounded logarithm gives the same
digits: :func:`ln` takes MPFR's ``log1p`` (gmpy2) of ``value - 1`` (exact) at 320 bits
(96 digits, relative even next to 1), rounds its
first 75 digits half-even to 60, and falls back to ``decimal`` itself whenever those
digits lie within reach of a rounding boundary. A property test checks the two agree.

Settlement needs only the two integers, 100,000 times an epoch: :func:`quote_micro`
computes them straight from the formula in MPFR at 128 bits, where every step (a
division, a correctly rounded ``log1p``, three products or quotients) errs by at most
half an ulp, so the computed amounts are within 6 x 2^-128 (relative, 2e-38) of the true
real ones; the 60-digit pipeline's are within about 10^-58 of them. Where the computed
amount lies further than 10^-30 (relative) from an integer, all three have the same
floor, which is returned; otherwise it asks :func:`quote`. A property test holds the
two equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, Inexact

try:
    import gmpy2
except ImportError:  # pragma: no cover - a dependency; decimal alone is exact, only slower
    gmpy2 = None

from nexapod.policy._policy import Policy

__all__ = ["DIGITS", "RewardQuote", "ln", "quote", "quote_micro", "quotes_micro"]

DIGITS = 60
_CONTEXT = Context(prec=DIGITS, rounding=ROUND_HALF_EVEN)
MPFR_BITS = 320
MPFR_DIGITS = 75  # digits read back; the 15 past the 60th decide the rounding
_GUARD = 10  # units of the 75th digit: closer than this to a boundary, ask decimal
_EXACT = Context(prec=2000, traps=[Inexact])  # value - 1 for a 60-digit value, exactly
_TIE = 5 * 10 ** (MPFR_DIGITS - DIGITS - 1)  # the tail of a value halfway between two
_HALF, _TWO = Decimal("0.5"), Decimal(2)
_MPFR = None if gmpy2 is None else gmpy2.context(precision=MPFR_BITS)
_MICRO = Decimal(10**6)
FAST_BITS = 128
_FAST = None if gmpy2 is None else gmpy2.context(precision=FAST_BITS)
# Relative distance from an integer below which quote_micro asks quote (far above both
# the MPFR error, 6 x 2^-128 ~ 2e-38, and the 60-digit pipeline's, ~1e-58).
_FAST_MARGIN = None if gmpy2 is None else gmpy2.mpfr("1e-30", FAST_BITS)


@dataclass(frozen=True)
class RewardQuote:
    s_flops: Decimal  # S(F), exact to 60 digits
    nxc_micro: int
    usdc_micro: int

    def as_json(self) -> dict[str, int | str]:
        return {
            "s_flops": int(self.s_flops.to_integral_value(rounding=ROUND_FLOOR)),
            "s_flops_exact": format(self.s_flops, "f"),
            "nxc_micro": self.nxc_micro,
            "usdc_micro": self.usdc_micro,
        }


def quote(flops: int, capacity_flops_per_s: int, epoch_s: int, policy: Policy) -> RewardQuote:
    """What a node that did ``flops`` validated FLOPs in an epoch earns."""
    assert flops >= 0
    assert capacity_flops_per_s >= 0
    assert epoch_s > 0
    cap = min(capacity_flops_per_s, policy.node_cap_flops_per_s) * epoch_s
    knee = Decimal(policy.knee_flops_per_s * epoch_s)
    counted = Decimal(min(flops, cap))
    s = _CONTEXT.multiply(knee, ln(_CONTEXT.add(1, _CONTEXT.divide(counted, knee))))
    assert s <= counted, "never above the linear rate"
    return RewardQuote(
        s_flops=s,
        nxc_micro=_floor(_CONTEXT.divide(_CONTEXT.multiply(s, _MICRO), policy.flops_per_nxc)),
        usdc_micro=_floor(_CONTEXT.divide(_CONTEXT.multiply(s, _MICRO), policy.flops_per_usdc)),
    )


def quote_micro(
    flops: int, capacity_flops_per_s: int, epoch_s: int, policy: Policy
) -> tuple[int, int]:
    """``(quote(...).nxc_micro, quote(...).usdc_micro)``, the same integers, fast (see the
    module docstring)."""
    return quotes_micro([(flops, capacity_flops_per_s)], epoch_s, policy)[0]


def quotes_micro(
    work: Iterable[tuple[int, int]], epoch_s: int, policy: Policy
) -> list[tuple[int, int]]:
    """:func:`quote_micro` of each ``(flops, capacity_flops_per_s)``, for one epoch and
    policy: what settlement pays each node (the constants are taken once)."""
    assert epoch_s > 0
    if _FAST is None or _FAST_MARGIN is None:
        quotes = (quote(f, c, epoch_s, policy) for f, c in work)
        return [(q.nxc_micro, q.usdc_micro) for q in quotes]
    fast, margin = _FAST, _FAST_MARGIN
    log1p, div, mul, sub, floor = fast.log1p, fast.div, fast.mul, fast.sub, fast.floor
    knee = fast.mul(gmpy2.mpz(policy.knee_flops_per_s * epoch_s), 1)  # exact in 128 bits
    assert knee == policy.knee_flops_per_s * epoch_s
    node_cap = policy.node_cap_flops_per_s
    rates = (policy.flops_per_nxc, policy.flops_per_usdc)
    paid = []
    for flops, capacity in work:
        assert flops >= 0
        assert capacity >= 0
        counted = min(flops, min(capacity, node_cap) * epoch_s)
        if counted == 0:
            paid.append((0, 0))
            continue
        micro_s = mul(mul(knee, log1p(div(counted, knee))), 1_000_000)
        amounts = []
        for rate in rates:
            amount = div(micro_s, rate)
            whole = floor(amount)  # every step in the 128-bit context, this one too
            fraction = sub(amount, whole)
            near = mul(amount, margin)
            if fraction <= near or sub(1, fraction) <= near:  # too near one: ask decimal
                exact = quote(flops, capacity, epoch_s, policy)
                amounts = [exact.nxc_micro, exact.usdc_micro]
                break
            amounts.append(int(whole))
        paid.append((amounts[0], amounts[1]))
    return paid


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR, context=_CONTEXT))


def ln(value: Decimal) -> Decimal:
    """``Context(prec=60).ln(value)``, digit for digit, fast (see the module docstring)."""
    assert value > 0
    if _MPFR is None or value == 1:
        return _CONTEXT.ln(value)
    if _HALF <= value <= _TWO:  # near 1: log1p of the exact excess stays relative
        excess = _EXACT.subtract(value, 1)  # exact (Inexact would be raised)
        result = _MPFR.log1p(gmpy2.mpfr(str(excess), MPFR_BITS))
    else:  # |ln| >= ln 2: the input's rounding to 320 bits is far below 75 digits
        result = _MPFR.log(gmpy2.mpfr(str(value), MPFR_BITS))
    digits, exponent, _ = result.digits(10, MPFR_DIGITS)
    sign = ""
    if digits[0] == "-":
        sign, digits = "-", digits[1:]
    assert len(digits) == MPFR_DIGITS
    tail = int(digits[DIGITS:])
    if abs(tail - _TIE) <= _GUARD or tail <= _GUARD or tail >= 2 * _TIE - _GUARD:
        return _CONTEXT.ln(value)  # near a tie or an exact cut: let decimal decide
    return _CONTEXT.plus(Decimal(f"{sign}0.{digits}E{exponent}"))
