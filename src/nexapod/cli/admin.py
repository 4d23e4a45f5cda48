"""``nexapod admin``: operator commands that act on the coordinator's own store.

They open the database the coordinator serves (``--db``, ``NEXAPOD_DATABASE_URL`` or
the embedded store in ``--data-dir``): whoever can run them can already read and write
that database, so they need no request signature. Every change they make is an entry
in the ledger's public log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nexapod.cli._common import console, reporting_errors

if TYPE_CHECKING:
    from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["DataDirOption", "DbOption", "app", "open_store"]

app = typer.Typer(help="Operator commands on the coordinator's store.", no_args_is_help=True)
blacklist_app = typer.Typer(
    help="Nodes, machines and users caught tampering: list, show, lift.", no_args_is_help=True
)
app.add_typer(blacklist_app, name="blacklist")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="NEXAPOD_DATABASE_URL",
        help="Database URL (default: SQLite in the data directory).",
    ),
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory of the embedded store.")
]


@contextmanager
def open_store(db: str | None, data_dir: Path | None) -> Iterator[UnitOfWorkFactory]:
    from nexapod.settings import Settings
    from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory

    overrides: dict[str, object] = {}
    if db is not None:
        overrides["database_url"] = db
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate_to_head(engine)
        yield unit_of_work_factory(engine)
    finally:
        engine.dispose()


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " UTC"


@blacklist_app.command("list")
def list_entries(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Include lifted entries.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries shown.")] = 100,
) -> None:
    """Blacklist entries, newest first."""
    from nexapod.registry import blacklist

    with reporting_errors(), open_store(db, data_dir) as uow_factory, uow_factory() as uow:
        entries = blacklist.list_entries(uow, include_lifted=all_entries, limit=limit)
    # one line per entry, so that it greps and never wraps
    for entry in entries:
        lifted = "" if entry.active else f" lifted {_when(entry.lifted_at_ms)}"
        console.print(
            f"{entry.entry_id:>6}  {entry.reason_code:<26} node {(entry.node_id or '-')[:16]}  "
            f"user {entry.username or '-'}  listed {_when(entry.listed_at_ms)}{lifted}",
            highlight=False,
            soft_wrap=True,
        )
    if not entries:
        console.print("no entries")


@blacklist_app.command("show")
def show(
    entry_id: Annotated[int, typer.Argument(min=1, help="The entry's number.")],
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One entry with its evidence, as JSON."""
    from nexapod.registry import blacklist

    with reporting_errors(), open_store(db, data_dir) as uow_factory, uow_factory() as uow:
        entry = blacklist.get_entry(uow, entry_id)
    document = {
        "entry_id": entry.entry_id,
        "active": entry.active,
        "node_id": entry.node_id,
        "fingerprint": entry.fingerprint,
        "username": entry.username,
        "reason_code": entry.reason_code,
        "evidence": entry.evidence,
        "listed_at_ms": entry.listed_at_ms,
        "listed_log_index": entry.listed_log_index,
        "lifted_at_ms": entry.lifted_at_ms,
        "lift_reason": entry.lift_reason,
        "lifted_log_index": entry.lifted_log_index,
    }
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


@blacklist_app.command("lift")
def lift(
    entry_id: Annotated[int, typer.Argument(min=1, help="The entry's number.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is lifted (logged publicly).")],
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Lift an entry: the node, machine and user may work again. Logged in the ledger."""
    from nexapod.registry import blacklist

    with reporting_errors(), open_store(db, data_dir) as uow_factory, uow_factory() as uow:
        entry = blacklist.lift_entry(uow, entry_id, reason, time.time_ns() // 1_000_000)
    console.print(
        f"lifted entry {entry.entry_id} (log index {entry.lifted_log_index}): {entry.lift_reason}",
        highlight=False,
    )


institution_app = typer.Typer(
    help="Verified institutions: their nodes join the institutional pool.", no_args_is_help=True
)
app.add_typer(institution_app, name="institution")


@institution_app.command("verify")
def verify_institution(
    username: Annotated[str, typer.Argument(help="The institution's user.")],
    name: Annotated[str, typer.Option("--name", help="The institution's name.")],
    db: DbOption = None,
    data_dir: DataDirOption = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="The coordinator's policy TOML.")
    ] = None,
) -> None:
    """Verify a user as an institution: institutional pool, Atlas++ entitlements (logged)."""
    from nexapod.policy import load_policy
    from nexapod.pools import service

    with reporting_errors(), open_store(db, data_dir) as uow_factory, uow_factory() as uow:
        moves = service.verify_institution(
            uow, username, name, load_policy(policy_file), time.time_ns() // 1_000_000
        )
    console.print(
        f"{username} is a verified institution ({name}); {len(moves)} node(s) moved to the "
        "institutional pool; entitlements: unlimited, early_access",
        highlight=False,
    )
