"""``nexapod leaderboard`` and ``nexapod stats export``: the leaderboard of a coordinator,
as a table or as the full hourly export (stats.json and stats.csv of one snapshot)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from nexapod.cli._common import CoordinatorOption, console, fail, reporting_errors
from nexapod.node.client import CoordinatorClient, RemoteError
from nexapod.protocol.v1 import LeaderboardEntry, LeaderboardPage, StatsSnapshotView

__all__ = ["app", "format_flops", "format_ms", "leaderboard"]

app = typer.Typer(help="The leaderboard's hourly export.", no_args_is_help=True)
TIMEOUT_S = 60.0
DOWNLOAD_CHUNK_BYTES = 1 << 16
LEADERBOARD_ROWS_MAX = 10_000
_PREFIXES = (
    (10**24, "Y"),
    (10**21, "Z"),
    (10**18, "E"),
    (10**15, "P"),
    (10**12, "T"),
    (10**9, "G"),
    (10**6, "M"),
    (10**3, "k"),
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the coordinator's JSON.")]


def format_flops(flops: int, unit: str = "FLOP") -> str:
    """A FLOP count for people: three significant figures and an SI prefix (exact below
    1000); the exact figure is in ``--json``."""
    assert flops >= 0
    for scale, prefix in _PREFIXES:
        if flops >= scale:
            scaled = flops / scale
            text = f"{scaled:.3g}"
            return f"{scaled:,.0f} {prefix}{unit}" if "e" in text else f"{text} {prefix}{unit}"
    return f"{flops} {unit}"


def format_ms(ms: int) -> str:
    """A Unix time in milliseconds as UTC ISO 8601 to the second."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def leaderboard(
    coordinator: CoordinatorOption,
    limit: Annotated[
        int, typer.Option(min=1, max=LEADERBOARD_ROWS_MAX, help="Contributors to show.")
    ] = 20,
    json_output: JsonOption = False,
) -> None:
    """Contributors ranked by cumulative verified FLOPs, with their recent average."""
    entries: list[LeaderboardEntry] = []
    snapshot: StatsSnapshotView | None = None
    path = f"/v1/leaderboard?limit={limit}"
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        while len(entries) < limit:  # each page takes at least one entry, or ends
            page = LeaderboardPage.model_validate_json(client.get_bytes(path))
            snapshot = snapshot or page.snapshot
            entries.extend(page.entries[: limit - len(entries)])
            if page.next_cursor is None or not page.entries:
                break
            path = f"/v1/leaderboard?limit={limit - len(entries)}&cursor={page.next_cursor}"
    assert snapshot is not None
    if json_output:
        shown = LeaderboardPage(snapshot=snapshot, entries=entries, next_cursor=None)
        typer.echo(shown.model_dump_json(indent=2))
        return
    console.print(_leaderboard_table(snapshot, entries))


def _leaderboard_table(snapshot: StatsSnapshotView, entries: list[LeaderboardEntry]) -> Table:
    half_life_days = snapshot.recent_half_life_s / 86_400
    table = Table(
        title=f"leaderboard: {snapshot.users_total} contributors, "
        f"{format_flops(int(snapshot.verified_flops_total))} verified",
        caption=f"snapshot {snapshot.snapshot_id} of {format_ms(snapshot.generated_at_ms)}; "
        f"next refresh due {format_ms(snapshot.next_refresh_at_ms)}; recent average: "
        f"half-life {half_life_days:g} days",
    )
    table.add_column("rank", justify="right")
    table.add_column("user")
    table.add_column("verified", justify="right")
    table.add_column("recent average", justify="right")
    table.add_column("nodes", justify="right")
    for entry in entries:
        table.add_row(
            str(entry.rank),
            entry.username,
            format_flops(int(entry.verified_flops)),
            format_flops(int(entry.recent_avg_flops_per_day), "FLOP/day"),
            str(entry.nodes),
        )
    return table


@app.command("export")
def export(
    coordinator: CoordinatorOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for stats.json and stats.csv.")],
) -> None:
    """Download the full table of one snapshot as stats.json and stats.csv."""
    out.mkdir(parents=True, exist_ok=True)
    with reporting_errors(), httpx.Client(base_url=coordinator, timeout=TIMEOUT_S) as http:
        headers = _download(http, "/v1/stats/export", out / "stats.json")
        snapshot_id = headers["NexaPod-Stats-Snapshot-Id"]
        rows = int(headers["NexaPod-Stats-Rows"])
        csv_headers = _download(
            http, f"/v1/stats/export.csv?snapshot_id={snapshot_id}", out / "stats.csv"
        )
    assert csv_headers["NexaPod-Stats-Snapshot-Id"] == snapshot_id
    with (out / "stats.csv").open("rb") as csv_file:
        lines = sum(1 for _ in csv_file)
    if lines != rows + 1:
        fail(f"stats.csv has {lines - 1} contributors, the snapshot {rows}: download again")
    console.print(
        f"snapshot {snapshot_id} of {format_ms(int(headers['NexaPod-Stats-Generated-At-Ms']))} "
        f"(next refresh due {format_ms(int(headers['NexaPod-Stats-Next-Refresh-At-Ms']))}): "
        f"{rows} contributors -> {out / 'stats.json'}, {out / 'stats.csv'}",
        highlight=False,
    )


def _download(http: httpx.Client, path: str, destination: Path) -> httpx.Headers:
    """Stream ``path`` into ``destination`` (written whole or not at all)."""
    partial = destination.with_name(destination.name + ".part")
    try:
        with http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise _refused(response)
            with partial.open("wb") as file:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                    file.write(chunk)
            headers = response.headers
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        fail(f"downloading {path} from {http.base_url} failed: {exc}")
    partial.replace(destination)
    return headers


def _refused(response: httpx.Response) -> RemoteError:
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code", f"http_{response.status_code}"))
    detail = str(body.get("detail", response.text[:200]))
    return RemoteError(response.status_code, code, detail, body)
