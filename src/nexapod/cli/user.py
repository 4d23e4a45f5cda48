"""``nexapod user status NAME``: a contributor's status page from a coordinator."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.table import Table

from nexapod.cli._common import CoordinatorOption, console, reporting_errors
from nexapod.cli.stats import JsonOption, format_flops, format_ms
from nexapod.ledger.accounts import format_amount
from nexapod.node.client import CoordinatorClient
from nexapod.protocol.v1 import UserStatus

__all__ = ["app"]

app = typer.Typer(help="Contributors and their status.", no_args_is_help=True)
GIB = 1 << 30


@app.command("status")
def status(
    username: Annotated[str, typer.Argument(help="The contributor's username.")],
    coordinator: CoordinatorOption,
    json_output: JsonOption = False,
) -> None:
    """Nodes and their profiles, pools, verified FLOPs, balances, warm opt-in and rank."""
    path = f"/v1/users/{quote(username, safe='')}/status"
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        raw = client.get_bytes(path)
    view = UserStatus.model_validate_json(raw)
    if json_output:
        typer.echo(view.model_dump_json(indent=2))
        return
    console.print(_summary(view), highlight=False)
    console.print(_nodes_table(view))
    console.print(_balances_table(view))


def _summary(view: UserStatus) -> str:
    lines = [
        f"[bold]{view.username}[/bold], registered {format_ms(view.registered_at_ms)}",
        f"verified: {format_flops(int(view.verified_flops))} "
        f"({view.verified_flops} FLOP, {view.results_valid} valid results)",
        f"pools: {', '.join(view.pools) or 'no nodes'}; "
        f"warm opt-in: {'yes' if view.warm_opt_in else 'no'}",
    ]
    ranking = view.ranking
    if ranking is None:
        lines.append("rank: not yet on the leaderboard (it is refreshed every hour)")
    else:
        lines.append(
            f"rank {ranking.rank} of {ranking.users_total}; recent average "
            f"{format_flops(int(ranking.recent_avg_flops_per_day), 'FLOP/day')} "
            f"(leaderboard of {format_ms(ranking.generated_at_ms)}, "
            f"next refresh due {format_ms(ranking.next_refresh_at_ms)})"
        )
    return "\n".join(lines)


def _nodes_table(view: UserStatus) -> Table:
    shown = len(view.nodes)
    title = f"nodes ({shown} of {view.nodes_total})" if shown < view.nodes_total else "nodes"
    table = Table(title=title)
    for column in ("node", "pool", "warm", "capacity", "cpu", "memory", "gpus", "verified"):
        numeric = column in ("capacity", "verified")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric)
    for node in view.nodes:
        profile = node.profile
        gpus = ", ".join(gpu.name for gpu in profile.gpus) or "-"
        table.add_row(
            node.node_id[:12],
            node.pool,
            "yes" if node.warm_opt_in else "no",
            format_flops(int(node.capacity_flops_per_s), "FLOP/s"),
            f"{profile.cpu_model} ({profile.cpu_cores} cores)",
            f"{profile.memory_bytes / GIB:.1f} GiB",
            gpus,
            format_flops(int(node.verified_flops)),
        )
    return table


def _balances_table(view: UserStatus) -> Table:
    table = Table(title=f"balances of user:{view.username}")
    table.add_column("asset")
    table.add_column("balance", justify="right", no_wrap=True)
    table.add_column("available", justify="right", no_wrap=True)
    for account in view.balances:
        table.add_row(
            account.asset,
            format_amount(int(account.balance), account.asset),
            format_amount(int(account.available), account.asset),
        )
    return table
