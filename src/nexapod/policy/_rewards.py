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

Settlement needs only the two integers, 100,000 times an epoch: :func:`quotes_micro`
computes them straight from the formula in MPFR at 128 bits, as ``A * log1p(min(F, C) /
K)`` with the epoch's constant ``A = K * 10^6 / flops_per_nxc`` rounded once. Each of the
four roundings (``A``, the quotient, the correctly rounded ``log1p``, which does not
magnify its input's relative error, and the product) errs by at most half an ulp, so
the computed amount is within 2^-126 (relative) of the true real one, under 4 units of
its last bit; the 60-digit pipeline's is within about 10^-58 of it. Where the computed
amount's fraction lies further than 2^28 units of its last bit (about 10^-30, relative)
from an integer, all three have the same floor, which is read exactly from the MPFR
mantissa and returned; otherwise it asks :func:`quote`. When ``flops_per_usdc`` is a
multiple ``m`` of ``flops_per_nxc`` (the default: 20), micro-USDC is micro-NXC // m,
since floor(x / m) = floor(floor(x) / m) for a whole m > 0, and a USDC amount near an
integer makes the NXC one near an integer too; otherwise micro-USDC is computed and
checked the same way with its own constant. About 4 microseconds a distinct min(F, C),
most of it MPFR's ``log1p``; nodes that share one share its pay. A property test holds
the integers equal to :func:`quote`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, Inexact
from typing import Any

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
# Units of the last bit of a 128-bit amount within which of an integer quotes_micro asks
# quote: 2^28 of them are 2^-100 to 2^-99 of the amount (~1e-30), far above both the
# MPFR error (< 4 units) and the 60-digit pipeline's (~1e-58).
_MARGIN_ULPS = 1 << 28


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
    if _FAST is None:
        quotes = (quote(f, c, epoch_s, policy) for f, c in work)
        return [(q.nxc_micro, q.usdc_micro) for q in quotes]
    log1p, div, mul = _FAST.log1p, _FAST.div, _FAST.mul
    knee_flops = policy.knee_flops_per_s * epoch_s
    knee = gmpy2.mpz(knee_flops)
    per_nxc = div(gmpy2.mpz(knee_flops * 10**6), policy.flops_per_nxc)
    usdc_per_nxc, remainder = divmod(policy.flops_per_usdc, policy.flops_per_nxc)
    per_usdc = None if remainder == 0 else div(gmpy2.mpz(knee_flops * 10**6), policy.flops_per_usdc)
    node_cap = policy.node_cap_flops_per_s

    def pay(counted: int, flops: int, capacity: int) -> tuple[int, int]:
        log = log1p(div(counted, knee))
        nxc_micro = _clear_floor(mul(log, per_nxc))
        if nxc_micro is not None:
            if per_usdc is None:
                return nxc_micro, nxc_micro // usdc_per_nxc
            usdc_micro = _clear_floor(mul(log, per_usdc))
            if usdc_micro is not None:
                return nxc_micro, usdc_micro
        exact = quote(flops, capacity, epoch_s, policy)  # too near an integer: ask decimal
        return exact.nxc_micro, exact.usdc_micro

    # The pay depends on min(F, C) alone, and nodes share it often (F is a sum of work
    # units' FLOPs, which are equal across a job's units): each is computed once.
    by_counted: dict[int, tuple[int, int]] = {0: (0, 0)}  # as large as ``work``, at most
    paid: list[tuple[int, int]] = []
    append = paid.append
    for flops, capacity in work:  # (a hot loop: 100,000 nodes and more an epoch)
        assert flops >= 0
        assert capacity >= 0
        counted = min(flops, min(capacity, node_cap) * epoch_s)
        amounts = by_counted.get(counted)
        if amounts is None:
            amounts = by_counted[counted] = pay(counted, flops, capacity)
        append(amounts)
    return paid


def _clear_floor(amount: Any) -> int | None:
    """The floor of a positive 128-bit MPFR amount, or None when its fraction lies within
    ``_MARGIN_ULPS`` units of the last bit of an integer (where it cannot be trusted)."""
    mantissa, exponent = amount.as_mantissa_exp()  # amount == mantissa * 2^exponent
    shift = -int(exponent)
    if shift <= _MARGIN_ULPS.bit_length():  # 2^98 units and more: no room for a margin
        return None
    whole = mantissa >> shift
    fraction = mantissa - (whole << shift)
    if fraction < _MARGIN_ULPS or (1 << shift) - fraction <= _MARGIN_ULPS:
        return None
    return int(whole)


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
