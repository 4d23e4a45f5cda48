"""``nexapod rewards quote|settle|epoch|replay``: what a node earns for an epoch, exactly
(ECONOMICS.md section 3); settling closed epochs; and recomputing a settled epoch from the
signed log alone, so anyone can check every payment."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nexapod.cli._common import CoordinatorOption, console, fail, reporting_errors
from nexapod.cli.admin import DataDirOption, DbOption, open_store
from nexapod.cli.ledger_log import VkeyOption, log_verifier
from nexapod.ledger.accounts import format_amount

if TYPE_CHECKING:
    from nexapod.ledger.note import NoteVerifier
    from nexapod.node.client import CoordinatorClient

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


@app.command("settle")
def settle_command(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    epoch: Annotated[
        int | None, typer.Option("--epoch", min=0, help="One epoch (default: every closed one).")
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="The coordinator's policy TOML (default: built-in)."),
    ] = None,
) -> None:
    """Settle closed reward epochs on the coordinator's store (idempotent; operator)."""
    from nexapod.policy import load_policy
    from nexapod.pools.settling import settle_due_epochs, settle_epoch

    with reporting_errors(), open_store(db, data_dir) as uow_factory:
        policy = load_policy(policy_file)
        now_ms = time.time_ns() // 1_000_000
        if epoch is None:
            reports = settle_due_epochs(uow_factory, policy, now_ms)
        else:
            reports = [settle_epoch(uow_factory, policy, epoch, now_ms)]
    if not reports:
        console.print("nothing to settle: no closed epoch holds unsettled work")
    for report in reports:
        state = "settled" if report.settled_now else "already settled"
        console.print(
            f"epoch {report.epoch_index} {state}: {report.nodes_paid} nodes, "
            f"{format_amount(report.nxc_micro_total, 'NXC')} minted, "
            f"{format_amount(report.usdc_paid_micro_total, 'USDC')} paid of "
            f"{format_amount(report.usdc_owed_micro_total, 'USDC')} owed"
            + (
                f" (scaled by {report.usdc_scale}; shortfall "
                f"{format_amount(report.usdc_shortfall_micro, 'USDC')}: fund the treasury)"
                if report.usdc_shortfall_micro
                else ""
            ),
            highlight=False,
        )


@app.command("epoch")
def epoch_command(
    epoch: Annotated[int, typer.Argument(min=0, help="The epoch's index.")],
    coordinator: CoordinatorOption,
) -> None:
    """A settled epoch's totals and its first lines, as JSON."""
    from nexapod.node.client import CoordinatorClient

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        data = client.get_bytes(f"/v1/rewards/epochs/{epoch}")
    typer.echo(json.dumps(json.loads(data), indent=1))


@app.command("replay")
def replay_command(
    epoch: Annotated[int, typer.Argument(min=0, help="The epoch's index.")],
    coordinator: CoordinatorOption,
    vkey: VkeyOption,
) -> None:
    """Recompute an epoch from the signed log alone and check every payment.

    Every entry is fetched with its receipt and checked against the log's vkey: the
    policy the epoch names, the per-node lines, the summary and the transfers. Each
    node's pay is recomputed from its FLOPs and capacity, and each transfer from the
    lines. Prints OK, or every difference and exits 1.
    """
    from nexapod.node.client import CoordinatorClient
    from nexapod.policy import policy_from_values
    from nexapod.pools.settle import check_lines, check_transfers

    verifier = log_verifier(vkey)
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        view = json.loads(client.get_bytes(f"/v1/rewards/epochs/{epoch}?limit=1"))
        summary = _entry(client, view["log_index"], verifier, "reward_epoch")
        if summary["epoch"] != epoch:
            fail(f"entry {view['log_index']} is the summary of epoch {summary['epoch']}")
        policy_entry = _entry(client, summary["policy_log_index"], verifier, "policy_activated")
        policy = policy_from_values(policy_entry["policy"])
        first, count = summary["lines_first_index"], summary["lines_entries"]
        lines = [_entry(client, i, verifier, "reward_lines") for i in range(first, first + count)]
        transfers = [
            _entry(client, i, verifier, "transfer")
            for i in range(first - summary["transfers"], first)
        ]
    problems = check_lines(summary, lines, policy) + check_transfers(summary, lines, transfers)
    if problems:
        for problem in problems:
            print(f"FAIL: {problem}")
        raise typer.Exit(1)
    print(
        f"OK: epoch {epoch}: {summary['nodes']} nodes recomputed under policy "
        f"{policy.sha256[:16]}: {summary['nxc_micro_total']} micro-NXC, "
        f"{summary['usdc_paid_micro_total']} of {summary['usdc_owed_micro_total']} micro-USDC, "
        f"{summary['transfers']} transfers, all as logged"
    )


RECEIPT_TRIES_MAX = 60


def _entry(
    client: CoordinatorClient, index: int, verifier: NoteVerifier, kind: str
) -> dict[str, Any]:
    """One log entry, checked by its receipt (waiting for its checkpoint when needed)."""
    from nexapod.ledger.log_errors import LogError
    from nexapod.ledger.receipts import verify_receipt
    from nexapod.node.client import RemoteError
    from nexapod.protocol.v1.ledger_log import Receipt

    for _ in range(RECEIPT_TRIES_MAX):
        try:
            receipt = Receipt.model_validate_json(client.get_bytes(f"/v1/ledger/receipts/{index}"))
            break
        except RemoteError as exc:
            if exc.code != "ledger.not_integrated":
                raise
            time.sleep(0.5)
    else:
        fail(f"entry {index} is not in a signed checkpoint yet: try again shortly")
    try:
        _, entry = verify_receipt(receipt, verifier)
    except LogError as exc:
        fail(f"entry {index}: {exc.detail}", exc.code)
    body: dict[str, Any] = json.loads(entry)
    if body.get("kind") != kind:
        fail(f"entry {index} is a {body.get('kind')!r} entry, not {kind!r}")
    return body
