"""``nexapod rewards quote``: what a node earns for an epoch, exactly, so anyone can check
a payment against the policy (ECONOMICS.md section 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nexapod.cli._common import fail, reporting_errors

__all__ = ["app"]

app = typer.Typer(help="Reward arithmetic, exact and checkable.", no_args_is_help=True)


def _count(text: str, name: str) -> int:
    """A non-negative integer of any size, written in decimal digits."""
    if not text.isdigit() or len(text) > 80:
        fail(f"{name} must be a non-negative integer in decimal digits, got {text!r}")
    return int(text)


@app.command("quote")
def quote_command(
    flops: Annotated[str, typer.Option("--flops", help="Validated FLOPs in the epoch.")],
    capacity_flops_per_s: Annotated[
        str, typer.Option("--capacity-flops-per-s", help="The node's benchmarked FLOP/s.")
    ],
    epoch_s: Annotated[
        int | None, typer.Option("--epoch-s", help="Epoch length (default: the policy's).", min=1)
    ] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="A policy TOML (default: the built-in one).")
    ] = None,
) -> None:
    """Print the node's scaled FLOPs and its micro-NXC and micro-USDC, as JSON."""
    from nexapod.policy import load_policy, quote

    with reporting_errors():
        policy = load_policy(policy_file)
        result = quote(
            _count(flops, "--flops"),
            _count(capacity_flops_per_s, "--capacity-flops-per-s"),
            epoch_s if epoch_s is not None else policy.epoch_s,
            policy,
        )
    typer.echo(json.dumps({**result.as_json(), "policy_sha256": policy.sha256}, sort_keys=True))
