"""Hot-pool rewards of one node for one epoch, exactly as ECONOMICS.md section 3 says.

    C = min(capacity, node_cap) * epoch_s        the most FLOPs that count
    K = knee_flops_per_s * epoch_s               where the logarithm bends
    S(F) = K * ln(1 + min(F, C) / K)             scaled FLOPs: <= F, concave, flat past C
    micro-NXC = floor(S * 10^6 / flops_per_nxc), micro-USDC = floor(S * 10^6 / flops_per_usdc)

S is computed with ``decimal`` at 60 significant digits, never in binary floating point,
so anyone can recompute a payment to the last unit (``nexapod rewards quote``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal

from nexapod.policy._policy import Policy

__all__ = ["DIGITS", "RewardQuote", "quote"]

DIGITS = 60
_CONTEXT = Context(prec=DIGITS)
_MICRO = Decimal(10**6)


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
    s = _CONTEXT.multiply(knee, _CONTEXT.ln(_CONTEXT.add(1, _CONTEXT.divide(counted, knee))))
    assert s <= counted, "never above the linear rate"
    return RewardQuote(
        s_flops=s,
        nxc_micro=_floor(_CONTEXT.divide(_CONTEXT.multiply(s, _MICRO), policy.flops_per_nxc)),
        usdc_micro=_floor(_CONTEXT.divide(_CONTEXT.multiply(s, _MICRO), policy.flops_per_usdc)),
    )


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR, context=_CONTEXT))
