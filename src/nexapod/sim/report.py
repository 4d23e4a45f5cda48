"""The simulator's summary: every figure of a run as one JSON document (pure).

Amounts (micro-NXC, micro-USDC) and capacities (FLOP/s) are decimal text, exact past
2^53 as everywhere in NexaPod; shares and Gini coefficients are computed exactly
(``Fraction``) and written both as a float rounded to 6 places and, for the figures
that a test or a reader may want to check, as exact ``"num/den"`` text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from fractions import Fraction
from typing import Any

from nexapod.policy import Policy
from nexapod.sim.engine import SimConfig
from nexapod.sim.population import DOMINANT, INSTITUTION
from nexapod.sim.record import SimResult
from nexapod.sim.stats import PERCENTILES, gini, percentile

__all__ = ["NODE_COLUMNS", "SUMMARY_VERSION", "build_summary", "node_rows", "rewards_by_node"]

SUMMARY_VERSION = 1
NODE_COLUMNS = (
    "node_id",
    "username",
    "capacity_flops_per_s",
    "hot_nxc_micro",
    "hot_usdc_micro",
    "stipend_nxc_micro",
    "stipend_usdc_micro",
)


def _f(value: Fraction) -> float:
    return round(float(value), 6)


def _exact(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def rewards_by_node(result: SimResult, include_stipends: bool) -> dict[str, int]:
    """NXC (micro) per node over the run, every node but the institution's (zero included)."""
    totals = {
        node_id: 0 for node_id, (username, _) in result.nodes.items() if username != INSTITUTION
    }
    sources: Iterable[Mapping[str, tuple[int, int]]] = (
        (result.reward_by_node, result.stipend_by_node)
        if include_stipends
        else (result.reward_by_node,)
    )
    for source in sources:
        for node_id, (nxc, _) in source.items():
            totals[node_id] = totals.get(node_id, 0) + nxc
    return totals


def node_rows(result: SimResult) -> list[tuple[str, ...]]:
    """Every node registered in the run and what it was paid (nodes.csv), by node id."""
    rows = []
    for node_id, (username, capacity) in sorted(result.nodes.items()):
        hot = result.reward_by_node.get(node_id, (0, 0))
        stipend = result.stipend_by_node.get(node_id, (0, 0))
        rows.append((node_id, username, str(capacity), *map(str, hot), *map(str, stipend)))
    assert all(len(row) == len(NODE_COLUMNS) for row in rows)
    return rows


def _distribution(amounts: list[int]) -> dict[str, Any]:
    ordered = sorted(amounts)
    value = gini(ordered)
    return {
        "count": len(ordered),
        "gini": _f(value),
        "gini_exact": _exact(value),
        "percentiles_micro": {f"p{p}": str(percentile(ordered, p)) for p in PERCENTILES}
        if ordered
        else {},
        "mean_micro": str(sum(ordered) // len(ordered)) if ordered else "0",
    }


def _rewards(result: SimResult) -> dict[str, Any]:
    per_node = rewards_by_node(result, include_stipends=True)
    per_user: Counter[str] = Counter()
    for node_id, amount in per_node.items():
        per_user[result.nodes[node_id][0]] += amount
    total = sum(per_node.values())
    hot_nxc = sum(nxc for nxc, _ in result.reward_by_node.values())
    hot_usdc = sum(usdc for _, usdc in result.reward_by_node.values())
    dominant = per_user.get(DOMINANT, 0)
    return {
        "what": "NXC per node over the run: hot rewards (settlement lines) plus stipends",
        "nxc_micro_total": str(total),
        "hot_nxc_micro": str(hot_nxc),
        "hot_usdc_paid_micro": str(hot_usdc),
        "stipend_nxc_micro": str(sum(n for n, _ in result.stipend_by_node.values())),
        "stipend_usdc_paid_micro": str(sum(u for _, u in result.stipend_by_node.values())),
        "per_node": _distribution(list(per_node.values())),
        "per_earning_node": _distribution([a for a in per_node.values() if a > 0]),
        "per_user": _distribution(list(per_user.values())),
        "dominant_user_share": _f(Fraction(dominant, total)) if total else 0.0,
        "institution_nxc_micro": str(
            sum(
                n
                for node, (n, _) in result.reward_by_node.items()
                if _user(result, node) == INSTITUTION
            )
        ),
    }


def _user(result: SimResult, node_id: str) -> str:
    return result.nodes[node_id][0]


def _share_cap(result: SimResult, policy: Policy) -> dict[str, Any]:
    binding = [r for r in result.records if r.share_cap_binds]
    shares = [r.dominant_share for r in binding]
    worst = max(shares, default=Fraction(0))
    return {
        "max_user_share": str(policy.max_user_share),
        "binds_from_epoch": binding[0].epoch if binding else None,
        "epochs_binding": len(binding),
        "dominant_share_max": _f(worst),
        "dominant_share_max_exact": _exact(worst),
        "epochs_above_cap": sum(1 for s in shares if s > policy.max_user_share),
        "dominant_share_final": _f(result.records[-1].dominant_share),
        "dominant_share_with_promoted_max": _f(
            max((r.dominant_share_with_promoted for r in result.records), default=Fraction(0))
        ),
        "dominant_parked_final": result.records[-1].dominant_parked,
    }


def _cold(result: SimResult, policy: Policy) -> dict[str, Any]:
    below = sum(1 for r in result.records if r.cold_flops_per_s < r.cold_band_flops_per_s[0])
    above = sum(1 for r in result.records if r.cold_flops_per_s > r.cold_band_flops_per_s[2])
    last = result.records[-1]
    return {
        "cold_fraction": str(policy.cold_fraction),
        "epochs_in_band": len(result.records) - below - above,
        "epochs_below": below,
        "epochs_above": above,
        "final_cold_of_hot": _f(Fraction(last.cold_flops_per_s, last.hot_capacity_flops_per_s))
        if last.hot_capacity_flops_per_s
        else 0.0,
        "promoted_final": last.promoted_nodes,
        "promoted_max": max(r.promoted_nodes for r in result.records),
    }


def _treasury(result: SimResult) -> dict[str, Any]:
    owed = sum(r.usdc_owed_micro_total for r in result.settlements)
    paid = sum(r.usdc_paid_micro_total for r in result.settlements)
    scaled = [r for r in result.settlements if r.usdc_shortfall_micro > 0]
    assert result.ledger is not None
    return {
        "funded_micro_usdc": str(sum(amount for _, amount in result.funded)),
        "deposits": [{"day": day, "micro_usdc": str(amount)} for day, amount in result.funded],
        "final_micro_usdc": str(result.ledger.treasury_micro_usdc),
        "hot_usdc_owed_micro": str(owed),
        "hot_usdc_paid_micro": str(paid),
        "hot_usdc_shortfall_micro": str(owed - paid),
        "epochs_scaled": len(scaled),
        "lowest_scale": _f(
            min(
                (Fraction(r.usdc_paid_micro_total, r.usdc_owed_micro_total) for r in scaled),
                default=Fraction(1),
            )
        ),
        "stipend_usdc_shortfall_micro": str(sum(s.usdc_shortfall_micro for s in result.stipends)),
    }


def _supply(result: SimResult) -> dict[str, Any]:
    assert result.ledger is not None
    settled = sum(r.nxc_micro_total for r in result.settlements)
    stipends = sum(s.nxc_micro_total for s in result.stipends)
    balanced = {
        asset: debits == credits
        for asset, (debits, credits) in sorted(result.ledger.posted_by_asset.items())
    }
    institution = {
        account: str(balance)
        for account, balance in sorted(result.ledger.balances.items())
        if account.startswith(f"user:{INSTITUTION}:")
    }
    return {
        "nxc_supply_micro": str(result.ledger.nxc_supply_micro),
        "minted_by_settlement_micro": str(settled),
        "minted_by_stipends_micro": str(stipends),
        "supply_equals_minted": result.ledger.nxc_supply_micro == settled + stipends,
        "ledger_balanced_by_asset": balanced,
        "institution_balances_micro": institution,
    }


def _series(result: SimResult) -> dict[str, Any]:
    records = result.records
    return {
        "epoch": [r.epoch for r in records],
        "dominant_share": [_f(r.dominant_share) for r in records],
        "dominant_share_with_promoted": [_f(r.dominant_share_with_promoted) for r in records],
        "share_cap_binds": [r.share_cap_binds for r in records],
        "hot_flops_per_s": [str(r.hot_capacity_flops_per_s) for r in records],
        "cold_flops_per_s": [str(r.cold_flops_per_s) for r in records],
        "cold_band_flops_per_s": [[str(v) for v in r.cold_band_flops_per_s] for r in records],
        "treasury_micro_usdc": [str(r.treasury_micro_usdc) for r in records],
        "nxc_supply_micro": [str(r.nxc_supply_micro) for r in records],
        "pool_nodes": {
            pool: [r.pool_nodes[pool] for r in records] for pool in records[0].pool_nodes
        },
        "promoted_nodes": [r.promoted_nodes for r in records],
        "settled_usdc_scale": [
            _f(Fraction(s.usdc_paid_micro_total, s.usdc_owed_micro_total))
            if s.usdc_owed_micro_total
            else 1.0
            for s in result.settlements
        ],
    }


def _config(config: SimConfig) -> dict[str, Any]:
    """The run's knobs beyond nodes, days and seed (their defaults unless changed)."""
    return {
        "population": asdict(config.population),
        "world": asdict(config.world),
        "funding": [str(ratio) for ratio in config.funding],
        "idle_s": config.idle_s,
        "lost_s": config.lost_s,
        "write_off_s": config.write_off_s,
        "start_week": config.start_week,
        "prune_work": config.prune_work,
    }


def build_summary(
    config: SimConfig, policy: Policy, result: SimResult, *, include_runtime: bool = True
) -> dict[str, Any]:
    """The whole report as plain JSON values (the runtime left out when asked, so two
    runs of one seed can be compared byte for byte)."""
    assert result.records, "a run has at least one epoch"
    moves: Counter[str] = Counter()
    for record in result.records:
        moves.update(record.moves)
    users = {username for username, _ in result.nodes.values()}
    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "seed": config.seed,
        "nodes": config.population.nodes,
        "days": config.days,
        "epochs": result.epochs,
        "epoch_s": result.epoch_s,
        "start_ms": result.start_ms,
        "policy_sha256": policy.sha256,
        "policy": policy.as_dict(),
        "config": _config(config),
        "population": {
            "nodes_registered": len(result.nodes),
            "users_registered": len(users),
            "dominant_nodes": sum(1 for u, _ in result.nodes.values() if u == DOMINANT),
            "institution_nodes": sum(1 for u, _ in result.nodes.values() if u == INSTITUTION),
        },
        "rewards": _rewards(result),
        "share_cap": _share_cap(result, policy),
        "cold_band": _cold(result, policy),
        "treasury": _treasury(result),
        "supply": _supply(result),
        "moves": dict(sorted(moves.items())),
        "series": _series(result),
    }
    if include_runtime:
        walls = result.epoch_wall_s
        summary["runtime"] = {
            "total_s": round(result.runtime_s, 3),
            "phases_s": {k: round(v, 3) for k, v in sorted(result.phase_s.items())},
            "epoch_wall_s": {
                "first": round(walls[0], 3) if walls else 0.0,
                "median": round(sorted(walls)[len(walls) // 2], 3) if walls else 0.0,
                "last_day_mean": round(sum(walls[-24:]) / len(walls[-24:]), 3) if walls else 0.0,
                "each": [round(w, 3) for w in walls],
            },
        }
    return summary
