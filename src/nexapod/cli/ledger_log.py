"""``nexapod ledger vkey|verify|export|receipt``: the log, checked without trusting anyone.

Registered on the ``ledger`` command group by :func:`register`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from nexapod.cli._common import CoordinatorOption, console, err_console, fail, reporting_errors

if TYPE_CHECKING:
    from nexapod.ledger.note import NoteVerifier

__all__ = ["VkeyOption", "log_verifier", "register"]

receipt_app = typer.Typer(help="Fetch and check receipts of ledger entries.", no_args_is_help=True)

VkeyOption = Annotated[
    str,
    typer.Option(
        "--vkey",
        envvar="NEXAPOD_LEDGER_VKEY",
        help="The log's verifier key (<name>+<keyid>+<key>), or a file holding it.",
    ),
]


def log_verifier(vkey: str) -> NoteVerifier:
    from nexapod.ledger.log_errors import LogError
    from nexapod.ledger.note import parse_vkey

    text = vkey.strip()
    if "+" not in text and Path(text).is_file():
        text = Path(text).read_text().strip()
    try:
        return parse_vkey(text)
    except LogError as exc:
        fail(f"--vkey: {exc.detail}; pass the text `nexapod ledger vkey` prints", exc.code)


def vkey(
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", help="Ask this coordinator instead of the local key file."),
    ] = None,
) -> None:
    """Print the log's verifier key: the local coordinator's, or a remote one's."""
    with reporting_errors():
        if coordinator is not None:
            from nexapod.node.client import CoordinatorClient

            with CoordinatorClient(coordinator) as client:
                print(client.get_bytes("/v1/ledger/log/vkey").decode().strip())
            return
        from nexapod.ledger.log_key import ensure_log_key, load_log_identity
        from nexapod.settings import Settings

        settings = Settings()
        path = settings.resolved_ledger_log_key_file()
        if not path.exists():
            fail(f"no log key at {path}: start the coordinator once, or pass --coordinator URL")
        ensure_log_key(path)
        print(load_log_identity(path, settings.ledger_log_origin).signer.vkey)


def verify(
    vkey: VkeyOption,
    url: Annotated[str | None, typer.Option("--url", help="A coordinator's base URL.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="A directory from `nexapod ledger export`.")
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option(help="The last checkpoint this verifier accepted; updated on success."),
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="The log's origin line (default: the vkey's name).")
    ] = None,
) -> None:
    """Check the whole log: signature, every entry and tile, every balance, the witness."""
    from nexapod.ledger.verifier import (
        DirSource,
        HttpSource,
        LogSource,
        LogVerificationError,
        verify_log,
    )

    if (url is None) == (directory is None):
        fail("pass exactly one of --url URL and --dir DIR")
    verifier = log_verifier(vkey)
    source: LogSource
    if url is not None:
        source = HttpSource(url)
    else:
        assert directory is not None
        source = DirSource(directory)
    with _progress() as progress:
        task = progress.add_task("entries", total=None)
        try:
            report = verify_log(
                source,
                verifier,
                origin=origin,
                witness_file=witness,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except LogVerificationError as exc:
            progress.stop()
            print(f"FAIL: {exc}")
            raise typer.Exit(1) from exc
    print(report.line())


def export(
    directory: Annotated[Path, typer.Argument(help="Where to write the tiles.")],
    coordinator: CoordinatorOption,
) -> None:
    """Write the log's tiles, checkpoint, vkey, balances and sample proofs to DIR."""
    from nexapod.ledger.export import export_log
    from nexapod.ledger.verifier import HttpSource, LogVerificationError

    source = HttpSource(coordinator)
    with reporting_errors(), _progress() as progress:
        task = progress.add_task("entries", total=None)
        try:
            report = export_log(
                source,
                directory,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except LogVerificationError as exc:
            fail(str(exc))
    balances = (
        f"{report.accounts} balances"
        if report.accounts is not None
        else "no balances (the log moved while exporting: export again when it is quiet)"
    )
    console.print(
        f"exported {report.tree_size} entries to {directory}: {report.files} files, {balances}"
    )


@receipt_app.command("get")
def receipt_get(
    leaf_index: Annotated[int, typer.Argument(min=0, help="The entry's index in the log.")],
    coordinator: CoordinatorOption,
    out: Annotated[Path | None, typer.Option(help="Write it here instead of stdout.")] = None,
) -> None:
    """Fetch the receipt of one entry (entry, inclusion proof, signed checkpoint)."""
    from nexapod.node.client import CoordinatorClient

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        data = client.get_bytes(f"/v1/ledger/receipts/{leaf_index}")
    text = json.dumps(json.loads(data), indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


@receipt_app.command("verify")
def receipt_verify(
    file: Annotated[Path, typer.Argument(help="A receipt (JSON) from `ledger receipt get`.")],
    vkey: VkeyOption,
) -> None:
    """Check a receipt offline: the checkpoint's signature and the entry's inclusion."""
    from pydantic import ValidationError

    from nexapod.ledger.log_errors import LogError
    from nexapod.ledger.receipts import verify_receipt
    from nexapod.protocol.v1.ledger_log import Receipt

    verifier = log_verifier(vkey)
    try:
        receipt = Receipt.model_validate_json(file.read_bytes())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except ValidationError as exc:
        fail(f"{file} is not a receipt: {exc.errors()[0]['msg']}")
    try:
        checkpoint, entry = verify_receipt(receipt, verifier)
    except LogError as exc:
        print(f"FAIL: {exc.detail} [{exc.code}]")
        raise typer.Exit(1) from exc
    print(
        f"OK: entry {receipt.inclusion.leaf_index} is in the log {checkpoint.origin} of "
        f"{checkpoint.tree_size} entries: {entry.decode(errors='replace')}"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )


def register(app: typer.Typer) -> None:
    """Add the log's commands to the ``ledger`` group."""
    app.command("vkey")(vkey)
    app.command("verify")(verify)
    app.command("export")(export)
    app.add_typer(receipt_app, name="receipt")
