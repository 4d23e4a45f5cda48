"""``nexapod pools show|node``: the pools as the coordinator sees them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from nexapod.cli._common import CoordinatorOption, console, reporting_errors

__all__ = ["app"]

app = typer.Typer(help="Hot, warm, cold and institutional pools.", no_args_is_help=True)


@app.command("show")
def show(
    coordinator: CoordinatorOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Nodes and capacity per pool, the cold band and the share cap."""
    from nexapod.node.client import CoordinatorClient
    from nexapod.protocol.v1 import PoolSummary

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        summary = PoolSummary.model_validate_json(client.get_bytes("/v1/pools"))
    if as_json:
        typer.echo(summary.model_dump_json(indent=1))
        return
    table = Table(title="pools")
    table.add_column("pool")
    table.add_column("nodes", justify="right")
    table.add_column("capacity (TFLOP/s)", justify="right")
    for count in summary.pools:
        table.add_row(
            count.pool, str(count.nodes), f"{int(count.capacity_flops_per_s) / 1e12:,.3f}"
        )
    console.print(table)
    low, target, high = (int(v) / 1e12 for v in summary.cold_band_flops_per_s)
    console.print(
        f"cold band: {low:,.3f} to {high:,.3f} TFLOP/s (target {target:,.3f}); share cap "
        f"{summary.max_user_share} {'binds' if summary.share_cap_binds else 'does not bind yet'}"
        + ("; DISRUPTED: cold nodes promoted" if summary.disrupted else ""),
        highlight=False,
    )
    need, owed = int(summary.capacity_need_flops_per_s), int(summary.stand_ins_owed_flops_per_s)
    if need or owed:
        console.print(
            f"running jobs need {need / 1e12:,.3f} TFLOP/s of hot; stand-ins owed "
            f"{owed / 1e12:,.3f} TFLOP/s",
            highlight=False,
        )
    for share in summary.top_users:
        console.print(f"  {share.username}: {share.share} of hot", highlight=False)


@app.command("node")
def node(
    node_id: Annotated[str, typer.Argument(help="The node's id.")],
    coordinator: CoordinatorOption,
) -> None:
    """A node's pool, preferences and latest transitions, as JSON."""
    from nexapod.node.client import CoordinatorClient

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        data = client.get_bytes(f"/v1/nodes/{node_id}/pool")
    typer.echo(json.dumps(json.loads(data), indent=1))
