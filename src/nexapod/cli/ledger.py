"""``nexapod ledger``: read an account's balance and its transfers from a coordinator."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.table import Table

from nexapod.cli._common import CoordinatorOption, console, fail, reporting_errors
from nexapod.cli.ledger_log import register as register_log_commands
from nexapod.ledger.accounts import format_amount, parse_account_id
from nexapod.node.client import CoordinatorClient
from nexapod.protocol.v1 import AccountView, TransferPage

__all__ = ["app"]

app = typer.Typer(help="Read ledger accounts and their transfers.", no_args_is_help=True)
AccountArgument = Annotated[
    str, typer.Argument(help="An account id: user:<name>:<ASSET> or system:<name>:<ASSET>.")
]


def _account_path(account_id: str) -> str:
    if parse_account_id(account_id) is None:
        fail(
            f"{account_id!r} is not an account id: user:<name>:<ASSET> or "
            "system:<name>:<ASSET>, with ASSET one of NXC, USDC, USD"
        )
    return f"/v1/accounts/{quote(account_id, safe=':')}"


@app.command("balance")
def balance(account: AccountArgument, coordinator: CoordinatorOption) -> None:
    """An account's balance, what it may still spend, and its holds."""
    path = _account_path(account)
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        view = AccountView.model_validate_json(client.get_bytes(path))
    asset = view.asset
    table = Table(title=f"{view.account_id} (owner {view.owner})")
    table.add_column("")
    table.add_column(asset, justify="right")
    table.add_column("base units", justify="right")
    for name, text in (
        ("balance", view.balance),
        ("available", view.available),
        ("held (pending debits)", view.debits_pending),
        ("incoming (pending credits)", view.credits_pending),
    ):
        table.add_row(name, format_amount(int(text), asset), text)
    console.print(table)


@app.command("history")
def history(
    account: AccountArgument,
    coordinator: CoordinatorOption,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Transfers per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after this cursor.")] = None,
) -> None:
    """An account's transfers, newest first."""
    path = f"{_account_path(account)}/transfers?limit={limit}"
    if cursor is not None:
        path += f"&cursor={quote(cursor, safe='')}"
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        page = TransferPage.model_validate_json(client.get_bytes(path))
    table = Table(title=f"transfers of {page.account_id}, newest first")
    for column in ("log index", "transfer", "phase", "from", "to", "amount", "code", "status"):
        table.add_column(column, justify="right" if column in ("log index", "amount") else "left")
    for t in page.transfers:
        sign = "-" if t.debit_account_id == page.account_id else "+"
        table.add_row(
            str(t.log_index),
            t.transfer_id[:12],
            t.phase,
            t.debit_account_id,
            t.credit_account_id,
            sign + format_amount(int(t.amount), t.asset),
            t.code,
            t.pending_status or "",
        )
    console.print(table)
    if page.next_cursor is not None:
        console.print(f"more: --cursor {page.next_cursor}", highlight=False)


register_log_commands(app)
