"""One epoch's settlement, as pure arithmetic (ECONOMICS.md section 3).

Each node's pay is :func:`nexapod.policy.quote` of its validated FLOPs. NXC is minted
in full. USDC comes from the funded treasury: when it holds less than the epoch owes,
every node's USDC is scaled by the one common factor ``treasury / owed`` (floored per
node, so the sum never exceeds the treasury) and the shortfall is reported.

Payments are summed per user and asset (a user's nodes share the user's accounts), so
an epoch moves at most two transfers per paid user; the per-node lines are published in
the log in chunks, so anyone can recompute every node's share from the policy and
check it against the transfers (:func:`check_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from nexapod.crypto import sha256_hex
from nexapod.ledger.accounts import mint_account_id, system_account_id
from nexapod.ledger.rules import NewTransfer
from nexapod.policy import Policy, quotes_micro

__all__ = [
    "LINES_PER_ENTRY_MAX",
    "REWARD_CODE",
    "TREASURY_ACCOUNT",
    "NODES_PER_EPOCH_MAX",
    "EpochSettlement",
    "NodeWork",
    "RewardLine",
    "check_lines",
    "check_transfers",
    "epoch_bounds_ms",
    "epoch_of",
    "line_entry_bodies",
    "settle_epoch_lines",
    "settlement_transfer_id",
    "settlement_transfers",
    "user_totals",
]

LINES_PER_ENTRY_MAX = 250  # a line is < 200 bytes; an entry stays under 64 KiB
NODES_PER_EPOCH_MAX = 10_000_000
REWARD_CODE = "reward.hot"
TREASURY_ACCOUNT = system_account_id("treasury", "USDC")


class NodeWork(NamedTuple):
    """What a node did in an epoch: its validated FLOPs (> 0: only nodes that did
    validated work are settled) and its benchmarked capacity. (A tuple: settlement makes
    one per node.)"""

    node_id: str
    username: str
    flops: int
    capacity_flops_per_s: int


class RewardLine(NamedTuple):
    """One node's pay for one epoch (a tuple: settlement makes one per node, 10^5 and
    more at a time, and tuples build fastest)."""

    node_id: str
    username: str
    flops: int
    capacity_flops_per_s: int
    nxc_micro: int
    usdc_owed_micro: int
    usdc_paid_micro: int

    def as_list(self) -> list[str]:
        """The line in a log entry: every number as decimal text (exact past 2^53)."""
        return [
            self.node_id,
            self.username,
            str(self.flops),
            str(self.capacity_flops_per_s),
            str(self.nxc_micro),
            str(self.usdc_owed_micro),
            str(self.usdc_paid_micro),
        ]


@dataclass(frozen=True)
class EpochSettlement:
    epoch_index: int
    epoch_s: int
    lines: tuple[RewardLine, ...]
    treasury_micro_usdc: int
    nxc_micro_total: int
    usdc_owed_micro_total: int
    usdc_paid_micro_total: int

    @property
    def usdc_shortfall_micro(self) -> int:
        return self.usdc_owed_micro_total - self.usdc_paid_micro_total

    @property
    def flops_total(self) -> int:
        return sum(line.flops for line in self.lines)


def epoch_of(at_ms: int, epoch_s: int) -> int:
    assert at_ms >= 0
    assert epoch_s > 0
    return at_ms // (epoch_s * 1000)


def epoch_bounds_ms(epoch_index: int, epoch_s: int) -> tuple[int, int]:
    """``[start, end)`` of an epoch in Unix milliseconds."""
    assert epoch_index >= 0
    return epoch_index * epoch_s * 1000, (epoch_index + 1) * epoch_s * 1000


def settle_epoch_lines(
    epoch_index: int, work: Sequence[NodeWork], policy: Policy, treasury_micro_usdc: int
) -> EpochSettlement:
    """Every node's pay for the epoch, USDC scaled to what the treasury holds."""
    assert treasury_micro_usdc >= 0
    assert len(work) <= NODES_PER_EPOCH_MAX
    assert len({w.node_id for w in work}) == len(work), "one line per node"
    assert all(w.flops > 0 and w.capacity_flops_per_s >= 0 for w in work)
    quotes = quotes_micro([(w.flops, w.capacity_flops_per_s) for w in work], policy.epoch_s, policy)
    owed_total = sum(usdc_micro for _, usdc_micro in quotes)
    covered = owed_total <= treasury_micro_usdc  # else one common factor, floored per node
    # (positional tuples: this builds a line per node, 10^5 and more an epoch)
    lines = tuple(
        RewardLine(
            *w,
            nxc_micro,
            usdc_micro,
            usdc_micro if covered else usdc_micro * treasury_micro_usdc // owed_total,
        )
        for w, (nxc_micro, usdc_micro) in zip(work, quotes, strict=True)
    )
    paid_total = sum(line.usdc_paid_micro for line in lines)
    assert paid_total <= treasury_micro_usdc, "the treasury never goes negative"
    assert paid_total <= owed_total, "nobody is paid more than owed"
    return EpochSettlement(
        epoch_index=epoch_index,
        epoch_s=policy.epoch_s,
        lines=lines,
        treasury_micro_usdc=treasury_micro_usdc,
        nxc_micro_total=sum(line.nxc_micro for line in lines),
        usdc_owed_micro_total=owed_total,
        usdc_paid_micro_total=paid_total,
    )


def user_totals(lines: Iterable[RewardLine]) -> dict[tuple[str, str], int]:
    """(username, asset) -> the sum the user's accounts receive; zero sums left out."""
    nxc: dict[str, int] = {}
    usdc: dict[str, int] = {}
    for line in lines:
        username = line.username
        nxc[username] = nxc.get(username, 0) + line.nxc_micro
        usdc[username] = usdc.get(username, 0) + line.usdc_paid_micro
    totals = {(username, "NXC"): amount for username, amount in nxc.items() if amount}
    totals.update(((username, "USDC"), amount) for username, amount in usdc.items() if amount)
    return totals


def settlement_transfer_id(kind: str, period_index: int, username: str, asset: str) -> str:
    """A transfer id fixed by what it pays: running a settlement again pays nothing twice."""
    return sha256_hex(f"nexapod/{kind}/{period_index}/{username}/{asset}".encode())[:32]


def settlement_transfers(settlement: EpochSettlement) -> list[NewTransfer]:
    """NXC minted from the issuer, USDC from the treasury: one transfer per user and asset,
    in (username, asset) order. (Account ids are written directly: the ledger's batch
    checks parse every one.)"""
    sources = {"NXC": mint_account_id("NXC"), "USDC": TREASURY_ACCOUNT}
    epoch = settlement.epoch_index
    return [
        NewTransfer(
            settlement_transfer_id("reward", epoch, username, asset),
            sources[asset],
            f"user:{username}:{asset}",
            amount,
            code=REWARD_CODE,
        )
        for (username, asset), amount in sorted(user_totals(settlement.lines).items())
    ]


def line_entry_bodies(settlement: EpochSettlement, policy_sha256: str) -> list[dict[str, Any]]:
    """The per-node lines as log entry bodies, at most LINES_PER_ENTRY_MAX each."""
    lines = sorted(settlement.lines, key=lambda line: line.node_id)
    return [
        {
            "epoch": settlement.epoch_index,
            "epoch_s": settlement.epoch_s,
            "policy_sha256": policy_sha256,
            "chunk": start // LINES_PER_ENTRY_MAX,
            "lines": [line.as_list() for line in lines[start : start + LINES_PER_ENTRY_MAX]],
        }
        for start in range(0, len(lines), LINES_PER_ENTRY_MAX)
    ]


def check_lines(
    summary: Mapping[str, Any], line_bodies: Sequence[Mapping[str, Any]], policy: Policy
) -> list[str]:
    """Recompute an epoch from its published lines; the differences, or [] when exact.

    ``summary`` is the epoch's ``reward_epoch`` entry body; ``policy`` the one whose hash
    it names. Used by ``nexapod rewards replay`` and by the tests (batch == replay).
    """
    problems: list[str] = []
    if policy.sha256 != summary["policy_sha256"]:
        return [f"the epoch names policy {summary['policy_sha256']}, not {policy.sha256}"]
    work = []
    published: list[list[str]] = []
    for body in line_bodies:
        for raw in body["lines"]:
            published.append(raw)
            work.append(NodeWork(raw[0], raw[1], int(raw[2]), int(raw[3])))
    again = settle_epoch_lines(
        int(summary["epoch"]), work, policy, int(summary["treasury_micro_usdc"])
    )
    by_node = {line.node_id: line for line in again.lines}
    for raw in published:
        line = by_node[raw[0]]
        if line.as_list() != raw:
            problems.append(f"node {raw[0]}: published {raw[4:]}, recomputed {line.as_list()[4:]}")
    for key in ("nxc_micro_total", "usdc_owed_micro_total", "usdc_paid_micro_total"):
        if str(getattr(again, key)) != summary[key]:
            problems.append(f"{key}: published {summary[key]}, recomputed {getattr(again, key)}")
    return problems


def check_transfers(
    summary: Mapping[str, Any],
    line_bodies: Sequence[Mapping[str, Any]],
    transfer_bodies: Sequence[Mapping[str, Any]],
) -> list[str]:
    """The epoch's transfers in the log against its published lines; [] when they agree.

    Each user and asset must receive exactly the sum of the user's lines, by the
    transfer whose id the epoch, the user and the asset fix, from the issuer (NXC) or
    the treasury (USDC), and nothing else may be paid under the epoch's ids.
    """
    lines = [
        RewardLine(raw[0], raw[1], int(raw[2]), int(raw[3]), int(raw[4]), int(raw[5]), int(raw[6]))
        for body in line_bodies
        for raw in body["lines"]
    ]
    epoch = int(summary["epoch"])
    expected = {
        t.transfer_id: t
        for t in settlement_transfers(
            EpochSettlement(epoch, int(summary["epoch_s"]), tuple(lines), 0, 0, 0, 0)
        )
    }
    problems = []
    seen = set()
    for body in transfer_bodies:
        want = expected.get(str(body.get("transfer_id")))
        if want is None:
            problems.append(f"transfer {body.get('transfer_id')} is not one of epoch {epoch}'s")
            continue
        seen.add(want.transfer_id)
        got = (body["debit_account_id"], body["credit_account_id"], body["amount"], body["code"])
        if got != (want.debit_account_id, want.credit_account_id, str(want.amount), want.code):
            problems.append(f"transfer {want.transfer_id}: logged {got}, lines say {want}")
    for missing in sorted(expected.keys() - seen):
        problems.append(f"transfer {missing} ({expected[missing].credit_account_id}) is missing")
    return problems
