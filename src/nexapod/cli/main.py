"""The ``nexapod`` command."""

from __future__ import annotations

import typer

from nexapod.cli import (
    admin,
    coordinator,
    job,
    ledger,
    node,
    pools,
    release,
    rewards,
    stats,
    treasury,
    user,
)
from nexapod.cli.demo import demo
from nexapod.cli.simulate import simulate_command

__all__ = ["app"]

app = typer.Typer(
    name="nexapod",
    help="NexaPod: a compute economy for science.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(coordinator.app, name="coordinator")
app.add_typer(node.app, name="node")
app.add_typer(job.app, name="job")
app.add_typer(ledger.app, name="ledger")
app.add_typer(admin.app, name="admin")
app.add_typer(rewards.app, name="rewards")
app.add_typer(treasury.app, name="treasury")
app.add_typer(pools.app, name="pools")
app.add_typer(release.app, name="release")
app.add_typer(user.app, name="user")
app.add_typer(stats.app, name="stats")
app.command("leaderboard")(stats.leaderboard)
app.command("demo")(demo)
app.command("simulate")(simulate_command)
