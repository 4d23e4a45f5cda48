"""``nexapod simulate``: the economy over a synthetic population, on a throwaway store.

The real pool, settlement and ledger code decides and pays (``nexapod.sim``); this
command parses the options, shows a progress bar with live figures, and writes the
report (summary.json and the PNG charts) into ``--out``.
"""

from __future__ import annotations

import csv
import json
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine, func, select

from nexapod.cli._common import console, reporting_errors
from nexapod.policy import Policy, load_policy
from nexapod.registry.store import NodeRow
from nexapod.sim import DAYS_MAX, NODES_MAX, PopulationConfig, SimConfig, simulate
from nexapod.sim.errors import store_not_empty
from nexapod.sim.record import EpochRecord, SimResult
from nexapod.sim.report import NODE_COLUMNS, build_summary, node_rows
from nexapod.sim.steps import throwaway_store
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory

__all__ = ["simulate_command"]

SUMMARY_FILE = "summary.json"
NODES_FILE = "nodes.csv"
DEFAULT_FUNDING = "1.25,0.5,1,0.25"
FUNDING_WEEKS_MAX = 52


def _funding(text: str) -> tuple[Fraction, ...]:
    """ "1.25,0.5" -> (5/4, 1/2): exact fractions, non-negative, at most a year of weeks."""
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= FUNDING_WEEKS_MAX:
        raise typer.BadParameter(f"give 1 to {FUNDING_WEEKS_MAX} fractions", param_hint="--funding")
    try:
        ratios = tuple(Fraction(part) for part in parts)
    except (ValueError, ZeroDivisionError) as exc:
        raise typer.BadParameter(
            f"{text!r} is not a list of fractions", param_hint="--funding"
        ) from exc
    if any(ratio < 0 or ratio > 1000 for ratio in ratios):
        raise typer.BadParameter("each fraction in [0, 1000]", param_hint="--funding")
    return ratios


def simulate_command(
    nodes: Annotated[
        int, typer.Option(help="Nodes registered at the start.", min=1, max=NODES_MAX)
    ] = 10_000,
    days: Annotated[
        int, typer.Option(help="Simulated days (epochs of the policy).", min=1, max=DAYS_MAX)
    ] = 28,
    seed: Annotated[int, typer.Option(help="The seed: one seed, one run.", min=0)] = 1,
    out: Annotated[Path, typer.Option(help="Directory for summary.json and the charts.")] = Path(
        "nexapod-simulation"
    ),
    db: Annotated[
        str | None,
        typer.Option(
            help="A fresh database URL to keep (default: SQLite in a temporary directory)."
        ),
    ] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="A policy file (default: the built-in one).")
    ] = None,
    funding: Annotated[
        str,
        typer.Option(
            help="The treasury's daily deposit as a fraction of what the last day owed, one "
            "fraction per week in turn (some weeks short, so USDC is scaled).",
        ),
    ] = DEFAULT_FUNDING,
    charts: Annotated[bool, typer.Option(help="Draw the PNG charts (needs matplotlib).")] = True,
) -> None:
    """Simulate the economy: pools, share cap, cold band, rewards, treasury and supply."""
    with reporting_errors():
        if charts:
            from nexapod.sim.charts import require_matplotlib

            require_matplotlib()  # before a long run, not after it
        policy = load_policy(policy_file)
        config = SimConfig(
            days=days,
            seed=seed,
            population=PopulationConfig(nodes=nodes),
            funding=_funding(funding),
        )
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="nexapod-sim-") as scratch:
            engine = make_engine(db) if db else throwaway_store(Path(scratch))
            try:
                result = _run(config, policy, engine)
            finally:
                engine.dispose()
        summary = build_summary(config, policy, result)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
        with (out / NODES_FILE).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(NODE_COLUMNS)
            writer.writerows(node_rows(result))
        written = [out / SUMMARY_FILE, out / NODES_FILE]
        if charts:
            from nexapod.sim.charts import draw_charts

            written.extend(draw_charts(result, policy, out))
        _print_summary(summary, written)


def _run(config: SimConfig, policy: Policy, engine: Engine) -> SimResult:
    migrate_to_head(engine)
    uow_factory = unit_of_work_factory(engine)
    with uow_factory() as uow:
        if uow.session.scalar(select(func.count()).select_from(NodeRow)):
            raise store_not_empty(engine.url.render_as_string(hide_password=True))
    epochs = config.days * 86_400 // policy.epoch_s
    columns = (
        TextColumn("[bold]epochs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[figures]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulate", total=epochs, figures="setting up the population")

        def on_epoch(record: EpochRecord) -> None:
            progress.update(task, advance=1, figures=_figures(record, policy))

        return simulate(config, policy, uow_factory, on_epoch)


def _figures(record: EpochRecord, policy: Policy) -> str:
    hot = record.hot_capacity_flops_per_s
    cold = f"{record.cold_flops_per_s / hot:.1%}" if hot else "-"
    return (
        f"dominant {float(record.dominant_share):.1%} (cap {float(policy.max_user_share):.0%})"
        f"  cold {cold} of hot  hot {record.pool_nodes['hot']} nodes"
        f"  treasury {record.treasury_micro_usdc / 10**6:.3g} USDC"
        f"  supply {record.nxc_supply_micro / 10**6:.3g} NXC"
    )


def _print_summary(summary: dict[str, object], written: list[Path]) -> None:
    rewards = summary["rewards"]
    cap = summary["share_cap"]
    cold = summary["cold_band"]
    treasury = summary["treasury"]
    supply = summary["supply"]
    runtime = summary["runtime"]
    assert isinstance(rewards, dict) and isinstance(cap, dict) and isinstance(cold, dict)
    assert isinstance(treasury, dict) and isinstance(supply, dict) and isinstance(runtime, dict)
    lines = [
        f"[bold]simulated[/bold] {summary['days']} days, {summary['epochs']} epochs, seed "
        f"{summary['seed']}, in {runtime['total_s']:.0f} s",
        f"rewards: Gini per node {rewards['per_node']['gini']:.3f} "
        f"(earning nodes {rewards['per_earning_node']['gini']:.3f}, users "
        f"{rewards['per_user']['gini']:.3f}); the dominant user earned "
        f"{rewards['dominant_user_share']:.1%} of NXC",
        f"share cap {cap['max_user_share']}: the dominant user's hot share peaked at "
        f"{cap['dominant_share_max']:.4f} while the cap bound ({cap['epochs_above_cap']} epochs "
        f"above it)",
        f"cold band: {cold['epochs_in_band']} of {summary['epochs']} epochs inside, "
        f"{cold['epochs_below']} below, {cold['epochs_above']} above",
        f"treasury: {int(treasury['final_micro_usdc']) / 10**6:.6g} USDC left, "
        f"{treasury['epochs_scaled']} epochs scaled (lowest factor {treasury['lowest_scale']:.3g})",
        f"NXC supply {int(supply['nxc_supply_micro']) / 10**6:.6g} "
        f"(equals minted: {supply['supply_equals_minted']})",
    ]
    for line in lines:
        console.print(line, highlight=False)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
