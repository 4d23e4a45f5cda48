"""What every command shares: the console, error reporting and common options."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from nexapod.errors import NexaPodError

__all__ = [
    "CoordinatorOption",
    "KeysDirOption",
    "NodeHomeOption",
    "console",
    "err_console",
    "fail",
    "reporting_errors",
]

DEFAULT_COORDINATOR = "http://127.0.0.1:8750"
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

CoordinatorOption = Annotated[
    str,
    typer.Option("--coordinator", envvar="NEXAPOD_COORDINATOR", help="The coordinator's base URL."),
]
NodeHomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="NEXAPOD_NODE_HOME", help="The node's home directory."),
]
KeysDirOption = Annotated[
    Path | None,
    typer.Option("--keys-dir", envvar="NEXAPOD_KEYS_DIR", help="Where user keys are kept."),
]


def fail(message: str, code: str | None = None, exit_code: int = 1) -> NoReturn:
    """Print the message as text (an error's detail may hold brackets, such as
    ``nexapod[sim]``, that Rich would take for markup) and exit."""
    suffix = f" [dim]\\[{code}][/dim]" if code else ""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}{suffix}", highlight=False)
    raise typer.Exit(exit_code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn NexaPod errors into one clear line and a non-zero exit."""
    try:
        yield
    except NexaPodError as exc:
        fail(exc.detail, exc.code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
