"""The demo's economy: a policy with one-minute epochs, a funded treasury, the settled
epoch, the contributors' NXC and USDC, and the pools.

The demo runs the production policy except for ``epoch_s``, set to 60 s (the least the
policy allows) so that the job's epoch closes, and the coordinator settles it, within a
minute of the job's end instead of an hour.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

from rich.table import Table

from nexapod.cli._common import console, fail
from nexapod.ledger.accounts import format_amount
from nexapod.node.client import CoordinatorClient
from nexapod.protocol.v1 import (
    AccountView,
    JobView,
    LeaderboardPage,
    PoolSummary,
    RewardEpochList,
    RewardEpochView,
)

__all__ = [
    "DEMO_COORDINATOR_ENV",
    "DEMO_EPOCH_S",
    "DEMO_TREASURY_MICRO_USDC",
    "await_settlement",
    "demo_policy",
    "fund_demo_treasury",
    "report_leaderboard",
    "report_rewards",
]

DEMO_EPOCH_S = 60
DEMO_TREASURY_MICRO_USDC = 1_000 * 10**6  # far less than the seed's rates owe: shows scaling
SETTLE_SLACK_S = 30.0
DEMO_STATS_REFRESH_S = 60  # the least allowed: the published leaderboard catches up fast
DEMO_COORDINATOR_ENV = {"NEXAPOD_STATS_REFRESH_S": str(DEMO_STATS_REFRESH_S)}
LEADERBOARD_SHOWN = 10


def demo_policy(root: Path) -> Path:
    """The built-in policy with 60-second epochs, written (and checked) in the demo's dir."""
    from nexapod.policy import load_policy

    text = resources.files("nexapod.policy").joinpath("default.toml").read_text("utf-8")
    text, count = re.subn(r"(?m)^epoch_s = \d+", f"epoch_s = {DEMO_EPOCH_S}", text)
    assert count == 1, "the default policy has one epoch_s"
    path = root / "policy.toml"
    path.write_text(text)
    load_policy(path)
    return path


def fund_demo_treasury(root: Path) -> None:
    """Record a demo deposit into the reward treasury, on the coordinator's store."""
    from nexapod.cli.admin import open_store
    from nexapod.pools.settling import fund_treasury

    with open_store(None, root / "coordinator") as uow_factory:
        fund_treasury(
            uow_factory,
            DEMO_TREASURY_MICRO_USDC,
            f"demo-deposit-{root.name}",
            time.time_ns() // 10**6,
        )
    console.print(
        f"treasury funded with {format_amount(DEMO_TREASURY_MICRO_USDC, 'USDC')} "
        "(`nexapod treasury fund`)",
        highlight=False,
    )


def await_settlement(url: str, job: JobView) -> list[RewardEpochView]:
    """Wait for the coordinator to settle the epoch the job ended in (epochs settle in
    order, and one without validated work gets no row until a later one settles)."""
    assert job.started_at_ms is not None and job.finished_at_ms is not None
    epoch_ms = DEMO_EPOCH_S * 1000
    first, last = job.started_at_ms // epoch_ms, job.finished_at_ms // epoch_ms
    closes_at_s = (last + 1) * DEMO_EPOCH_S
    deadline = closes_at_s + SETTLE_SLACK_S
    with CoordinatorClient(url) as client, console.status("") as status:
        while True:
            listed = RewardEpochList.model_validate_json(client.get_bytes("/v1/rewards/epochs"))
            settled = {e.epoch: e for e in listed.epochs}
            if last in settled:
                return [settled[e] for e in range(first, last + 1) if e in settled]
            now_s = time.time()
            if now_s > deadline:
                fail("the job's epochs were not settled in time; see the coordinator's log")
            status.update(
                f"rewards settle per epoch (60 s in the demo): epoch {last} closes in "
                f"{max(0.0, closes_at_s - now_s):.0f} s, then the coordinator settles it…"
            )
            time.sleep(0.5)


def report_rewards(url: str, epochs: list[RewardEpochView], users: tuple[str, ...]) -> None:
    for epoch in epochs:
        scaled = (
            f"; USDC scaled by {epoch.usdc_scale} (treasury short by "
            f"{format_amount(int(epoch.usdc_shortfall_micro), 'USDC')})"
            if epoch.usdc_shortfall_micro != "0"
            else ""
        )
        console.print(
            f"[bold]epoch {epoch.epoch} settled[/bold]: {epoch.nodes_paid} nodes, "
            f"{format_amount(int(epoch.nxc_micro_total), 'NXC')} minted, "
            f"{format_amount(int(epoch.usdc_paid_micro_total), 'USDC')} paid of "
            f"{format_amount(int(epoch.usdc_owed_micro_total), 'USDC')} owed{scaled}; "
            f"check it: nexapod rewards replay {epoch.epoch} --coordinator {url} --vkey …",
            highlight=False,
        )
    table = Table(title="contributors")
    for column in ("user", "NXC", "USDC"):
        table.add_column(column, justify="left" if column == "user" else "right")
    with CoordinatorClient(url) as client:
        for user in users:
            balances = [
                AccountView.model_validate_json(
                    client.get_bytes(f"/v1/accounts/user:{user}:{asset}")
                ).balance
                for asset in ("NXC", "USDC")
            ]
            table.add_row(
                user,
                format_amount(int(balances[0]), "NXC"),
                format_amount(int(balances[1]), "USDC"),
            )
        pools = PoolSummary.model_validate_json(client.get_bytes("/v1/pools"))
    console.print(table)
    held = ", ".join(f"{p.pool} {p.nodes}" for p in pools.pools if p.nodes)
    console.print(
        f"[bold]pools[/bold]: {held or 'empty'}; share cap {pools.max_user_share} "
        f"{'binds' if pools.share_cap_binds else 'not binding'} "
        f"({', '.join(f'{s.username} {s.share}' for s in pools.top_users)}); "
        "nodes go back from hot when idle (docs/pools.md)",
        highlight=False,
    )


def report_leaderboard(url: str, job: JobView) -> None:
    """The published leaderboard, once a snapshot taken after the job is out."""
    assert job.finished_at_ms is not None
    deadline = time.monotonic() + DEMO_STATS_REFRESH_S + SETTLE_SLACK_S
    path = f"/v1/leaderboard?limit={LEADERBOARD_SHOWN}"
    with CoordinatorClient(url) as client, console.status("") as status:
        while True:
            page = LeaderboardPage.model_validate_json(client.get_bytes(path))
            if page.snapshot.generated_at_ms >= job.finished_at_ms:
                break
            if time.monotonic() > deadline:
                fail("no leaderboard snapshot after the job; see the coordinator's log")
            wait_s = max(0.0, page.snapshot.next_refresh_at_ms / 1000 - time.time())
            status.update(
                f"the leaderboard is republished every minute in the demo: {wait_s:.0f} s…"
            )
            time.sleep(0.5)
    table = Table(title="leaderboard (cumulative verified FLOPs; recent average, 7-day half-life)")
    for column in ("rank", "user", "verified FLOPs", "recent FLOPs/day", "nodes"):
        table.add_column(column, justify="left" if column == "user" else "right")
    for entry in page.entries:
        table.add_row(
            str(entry.rank),
            entry.username,
            f"{int(entry.verified_flops):,}",
            f"{int(entry.recent_avg_flops_per_day):,}",
            str(entry.nodes),
        )
    console.print(table)
