"""The simulator's charts (PNG, matplotlib): optional, installed with ``nexapod[sim]``.

matplotlib is imported only here and only when charts are drawn, so the simulator (and
everything else) runs without it; :func:`require_matplotlib` says how to install it
before a long run starts rather than after.

    rewards.png         NXC per node: histogram (log scale) and Lorenz curve with Gini
    dominant_share.png  the dominant user's share of hot capacity against the cap
    cold_band.png       cold capacity against its band (10 %, target, 20 % of hot)
    treasury_supply.png the treasury's USDC and the NXC supply
    pools.png           nodes per pool
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nexapod.policy import Policy
from nexapod.sim.errors import matplotlib_missing
from nexapod.sim.record import SimResult
from nexapod.sim.report import rewards_by_node
from nexapod.sim.stats import gini, lorenz

__all__ = ["CHART_FILES", "draw_charts", "require_matplotlib"]

CHART_FILES = (
    "rewards.png",
    "dominant_share.png",
    "cold_band.png",
    "treasury_supply.png",
    "pools.png",
)
_DPI = 110


def require_matplotlib() -> Any:
    """The pyplot module on the non-interactive backend, or a clear error."""
    try:
        import matplotlib
    except ImportError as exc:
        raise matplotlib_missing() from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_charts(result: SimResult, policy: Policy, out: Path) -> list[Path]:
    """Every chart of the run into ``out``; returns the files written."""
    plt = require_matplotlib()
    days = [r.epoch * result.epoch_s / 86_400 for r in result.records]
    written = [
        _rewards(plt, result, out / CHART_FILES[0]),
        _dominant(plt, result, policy, days, out / CHART_FILES[1]),
        _cold(plt, result, days, out / CHART_FILES[2]),
        _money(plt, result, days, out / CHART_FILES[3]),
        _pools(plt, result, days, out / CHART_FILES[4]),
    ]
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _rewards(plt: Any, result: SimResult, path: Path) -> Path:
    amounts = list(rewards_by_node(result, include_stipends=True).values())
    earning = sorted(a / 10**6 for a in amounts if a > 0)
    fig, (hist, curve) = plt.subplots(1, 2, figsize=(11, 4.2))
    below = 0
    if earning:
        # from the 1st percentile up: a node paid only a stipend (a few NXC) would stretch
        # the axis over ten decades of empty bins
        low = earning[len(earning) // 100]
        below = sum(1 for a in earning if a < low)
        shown = [a for a in earning if a >= low]
        lo, hi = math.log10(shown[0]), math.log10(shown[-1])
        bins = [10 ** (lo + (hi - lo) * i / 40) for i in range(41)] if hi > lo else 10
        hist.hist(shown, bins=bins, color="#3b6ea8")
        hist.set_xscale("log")
    hist.set_xlabel("NXC earned over the run (log scale)")
    hist.set_ylabel("nodes")
    zero = len(amounts) - len(earning)
    hist.set_title(
        f"NXC per node: {len(earning) - below} shown, {below} below, {zero} earned nothing",
        fontsize=10,
    )
    points = lorenz(amounts)
    curve.plot([x for x, _ in points], [y for _, y in points], color="#3b6ea8", label="nodes")
    curve.plot([0, 1], [0, 1], color="grey", linestyle=":", label="equality")
    curve.set_xlabel("share of nodes (poorest first)")
    curve.set_ylabel("share of NXC")
    curve.set_title(f"Lorenz curve, Gini {float(gini(amounts)):.3f}")
    curve.legend(loc="upper left")
    return _save(plt, fig, path)


def _dominant(plt: Any, result: SimResult, policy: Policy, days: list[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(
        days,
        [float(r.dominant_share) for r in result.records],
        label="hot share (as the cap counts, stand-ins included)",
    )
    ax.plot(
        days,
        [float(r.dominant_share_with_promoted) for r in result.records],
        linestyle="--",
        label="share of all serving hot nodes (promoted cold included)",
    )
    ax.axhline(float(policy.max_user_share), color="red", label=f"cap {policy.max_user_share}")
    for start, end in _unbound_spans(result, days):
        ax.axvspan(start, end, color="grey", alpha=0.15, linewidth=0)
    ax.set_ylim(0, max(0.6, float(policy.max_user_share) + 0.1))
    ax.set_xlabel("day")
    ax.set_ylabel("share of hot capacity")
    ax.set_title("The dominant user against the share cap (grey: cap not binding)")
    ax.legend(loc="lower right")
    return _save(plt, fig, path)


def _unbound_spans(result: SimResult, days: list[float]) -> list[tuple[float, float]]:
    """Runs of epochs in which the cap did not bind, as (start day, end day)."""
    width = result.epoch_s / 86_400
    spans: list[tuple[float, float]] = []
    for day, record in zip(days, result.records, strict=True):
        if record.share_cap_binds:
            continue
        if spans and abs(spans[-1][1] - day) < width / 2:
            spans[-1] = (spans[-1][0], day + width)
        else:
            spans.append((day, day + width))
    return spans


def _cold(plt: Any, result: SimResult, days: list[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4))
    scale = 1e15
    low = [r.cold_band_flops_per_s[0] / scale for r in result.records]
    target = [r.cold_band_flops_per_s[1] / scale for r in result.records]
    high = [r.cold_band_flops_per_s[2] / scale for r in result.records]
    ax.fill_between(days, low, high, color="#9fd39f", alpha=0.5, label="band (10 % to 20 % of hot)")
    ax.plot(days, target, color="green", linestyle=":", label="target (cold_fraction)")
    ax.plot(
        days, [r.cold_flops_per_s / scale for r in result.records], color="#1f4e79", label="cold"
    )
    ax.set_xlabel("day")
    ax.set_ylabel("PFLOP/s")
    ax.set_title("Cold capacity against its band")
    ax.legend(loc="upper right")
    return _save(plt, fig, path)


def _money(plt: Any, result: SimResult, days: list[float], path: Path) -> Path:
    fig, (treasury, supply) = plt.subplots(1, 2, figsize=(11, 4))
    treasury.plot(days, [r.treasury_micro_usdc / 10**6 for r in result.records], color="#b8860b")
    treasury.set_title("Reward treasury (USDC)")
    treasury.set_xlabel("day")
    supply.plot(days, [r.nxc_supply_micro / 10**6 for r in result.records], color="#5b2c83")
    supply.set_title("NXC supply (minted by rewards and stipends)")
    supply.set_xlabel("day")
    return _save(plt, fig, path)


def _pools(plt: Any, result: SimResult, days: list[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4))
    for pool in result.records[0].pool_nodes:
        ax.plot(days, [r.pool_nodes[pool] for r in result.records], label=pool)
    ax.plot(
        days, [r.promoted_nodes for r in result.records], linestyle="--", label="promoted (hot)"
    )
    ax.set_xlabel("day")
    ax.set_ylabel("nodes")
    ax.set_title("Nodes per pool")
    ax.legend(loc="center right")
    return _save(plt, fig, path)
