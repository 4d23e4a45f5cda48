"""``nexapod treasury fund|show``: the USDC that pays hot-pool rewards.

USDC is never minted (ECONOMICS.md section 3): an operator records each external
deposit (a chain transfer to the treasury's address, say) with its reference, and
settlement pays from what the treasury holds, scaling every node alike when it is short.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated

import typer

from nexapod.cli._common import CoordinatorOption, console, reporting_errors
from nexapod.cli.admin import DataDirOption, DbOption, open_store
from nexapod.ledger.accounts import format_amount

__all__ = ["app", "parse_usdc"]

app = typer.Typer(
    help="The reward treasury: record deposits, show its balance.", no_args_is_help=True
)
_USDC = re.compile(r"([0-9]{1,30})(?:\.([0-9]{1,6}))?")
REFERENCE_CHARS_MAX = 200


def parse_usdc(text: str) -> int:
    """``12.5`` -> 12500000 micro-USDC; anything else (negative, zero, 7 decimals) refused."""
    from nexapod.pools import errors

    match = _USDC.fullmatch(text.strip())
    if match is None:
        raise errors.treasury_amount_invalid(text)
    whole, fraction = match.group(1), (match.group(2) or "").ljust(6, "0")
    amount = int(whole) * 10**6 + int(fraction)
    if amount <= 0:
        raise errors.treasury_amount_invalid(text)
    return amount


@app.command("fund")
def fund(
    amount: Annotated[str, typer.Argument(help="USDC deposited, e.g. 250 or 12.5.")],
    reference: Annotated[
        str,
        typer.Option(
            "--reference",
            help="The deposit's own id (a chain transaction hash, say): recorded once.",
        ),
    ],
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Record an external USDC deposit into the treasury (operator; idempotent per reference)."""
    from nexapod.errors import NexaPodError
    from nexapod.pools.settling import fund_treasury, treasury_micro_usdc

    with reporting_errors():
        micro_usdc = parse_usdc(amount)
        if not 1 <= len(reference) <= REFERENCE_CHARS_MAX or not reference.isprintable():
            raise NexaPodError(
                "reference_invalid",
                f"--reference is 1 to {REFERENCE_CHARS_MAX} printable characters",
            )
        with open_store(db, data_dir) as uow_factory:
            transfer_id, created = fund_treasury(
                uow_factory, micro_usdc, reference, time.time_ns() // 1_000_000
            )
            with uow_factory() as uow:
                balance = treasury_micro_usdc(uow)
    what = "recorded" if created else "was already recorded"
    console.print(
        f"deposit {reference!r} of {format_amount(micro_usdc, 'USDC')} {what} "
        f"(transfer {transfer_id}); the treasury holds {format_amount(balance, 'USDC')}",
        highlight=False,
    )


@app.command("show")
def show(coordinator: CoordinatorOption) -> None:
    """The treasury's USDC and how far settlement has paid, as JSON."""
    from nexapod.node.client import CoordinatorClient

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        data = client.get_bytes("/v1/treasury")
    typer.echo(json.dumps(json.loads(data), indent=1))
