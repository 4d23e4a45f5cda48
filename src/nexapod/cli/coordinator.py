"""``nexapod coordinator``: run the coordinator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nexapod.cli._common import console, err_console, fail, reporting_errors

if TYPE_CHECKING:
    from nexapod.protocol.v1 import ReleaseView

__all__ = ["app"]

app = typer.Typer(help="Run the coordinator.", no_args_is_help=True)


@app.command("serve")
def serve(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="NEXAPOD_DATABASE_URL",
            help="Database URL (default: SQLite in the data directory).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8750,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Directory of the embedded store.")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes (one per core is a good start).", min=1, max=64)
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    release_key: Annotated[
        list[str] | None,
        typer.Option(
            "--release-key",
            help="A release public key to trust, added to release_public_keys (repeatable).",
        ),
    ] = None,
    release_manifest: Annotated[
        list[Path] | None,
        typer.Option(
            "--release-manifest",
            help="A signed release manifest to publish at start-up (repeatable).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the /v1 API until interrupted."""
    from nexapod.coordinator.server import publish_releases
    from nexapod.coordinator.server import serve as serve_forever
    from nexapod.logs import configure_logging
    from nexapod.settings import Settings

    if workers > 1 and port == 0:
        fail("--workers needs a fixed --port: the workers share it")
    with reporting_errors():
        overrides: dict[str, object] = {}
        if db is not None:
            overrides["database_url"] = db
        if data_dir is not None:
            overrides["data_dir"] = data_dir
        settings = Settings(**overrides)  # type: ignore[arg-type]
        if release_key:
            keys = list(dict.fromkeys([*settings.release_public_keys, *release_key]))
            settings = settings.with_overrides(release_public_keys=keys)
        manifests = [_read_manifest(path) for path in release_manifest or []]
        configure_logging()
        published = publish_releases(settings, manifests) if manifests else []
        _report_releases(settings.release_public_keys, published)
        url = settings.resolved_database_url().split("@")[-1]
        console.print(
            f"coordinator on http://{host}:{port} (store: {url}, {workers} worker(s))",
            highlight=False,
        )
        serve_forever(settings, host=host, port=port, workers=workers, log_level=log_level)


def _read_manifest(path: Path) -> dict[str, Any]:
    from nexapod.crypto import MANIFEST_BYTES_MAX, parse_manifest_json

    with path.open("rb") as file:
        data = file.read(MANIFEST_BYTES_MAX + 1)
    try:
        return parse_manifest_json(data).to_json()
    except ValueError as exc:
        fail(f"{path}: {exc}", "registry.release_manifest_invalid")


def _report_releases(keys: list[str], published: list[tuple[ReleaseView, bool]]) -> None:
    if keys:
        console.print(
            f"release enforcement on: only runners of releases signed by {len(keys)} "
            "release key(s) are admitted",
            highlight=False,
        )
    else:
        err_console.print(
            "[bold yellow]warning:[/bold yellow] no release keys configured: any runner tree "
            "is admitted (set release_public_keys or pass --release-key; see docs/releases.md)"
        )
    for view, created in published:
        state = "published" if created else "already published:"
        console.print(
            f"{state} release {view.version} (runner tree {view.tree_hash[:16]}…)",
            highlight=False,
        )


@app.command("openapi")
def openapi(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """Print the API's OpenAPI document (the contract, checked in as docs/openapi.json)."""
    import json
    import tempfile

    from nexapod.coordinator.app import create_app
    from nexapod.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        document = create_app(Settings(data_dir=Path(scratch)), run_maintenance=False).openapi()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command("worker", hidden=True)
def worker(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8750,
    log_level: Annotated[str, typer.Option()] = "warning",
) -> None:
    """One worker of `serve --workers N` (settings come from NEXAPOD_* variables)."""
    from nexapod.coordinator.server import run_worker
    from nexapod.logs import configure_logging
    from nexapod.settings import Settings

    with reporting_errors():
        configure_logging()
        run_worker(Settings(), host=host, port=port, log_level=log_level)
