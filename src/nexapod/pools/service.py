"""Use cases of the pools area: a node's preferences, the views, institutions, epochs.

Each function runs in the caller's unit of work; those that change something commit
once, with every change an entry in the ledger's log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select

from nexapod.ledger import log_store
from nexapod.policy import Policy
from nexapod.pools import disrupting, disruption, errors, rules
from nexapod.pools.membership import apply_moves, grant_entitlements, load_members
from nexapod.pools.rules import Move
from nexapod.pools.settle import LINES_PER_ENTRY_MAX, TREASURY_ACCOUNT, epoch_bounds_ms
from nexapod.pools.settling import epoch_report, paid_until_ms, treasury_micro_usdc
from nexapod.pools.store import (
    InstitutionRow,
    PoolMemberRow,
    PoolTransitionRow,
    RewardEpochRow,
)
from nexapod.protocol.v1 import (
    PoolCount,
    PoolMemberView,
    PoolPreferences,
    PoolSummary,
    PoolTransitionView,
    RewardEpochList,
    RewardEpochView,
    RewardLineView,
    TreasuryView,
    UserShare,
)
from nexapod.registry import blacklist
from nexapod.registry import errors as registry_errors
from nexapod.registry.store import NodeRow, UserRow
from nexapod.storage.uow import UnitOfWork

__all__ = [
    "INSTITUTION_NAME_CHARS_MAX",
    "TRANSITIONS_SHOWN_MAX",
    "epoch_list",
    "epoch_view",
    "member_view",
    "pool_summary",
    "set_preferences",
    "treasury_view",
    "verify_institution",
]

TRANSITIONS_SHOWN_MAX = 50
TOP_USERS_SHOWN = 10
EPOCHS_SHOWN_MAX = 100
INSTITUTION_NAME_CHARS_MAX = 200


def member_view(uow: UnitOfWork, node_id: str) -> PoolMemberView:
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    row = session.get(PoolMemberRow, node_id)
    transitions = session.scalars(
        select(PoolTransitionRow)
        .where(PoolTransitionRow.node_id == node_id)
        .order_by(PoolTransitionRow.transition_id.desc())
        .limit(TRANSITIONS_SHOWN_MAX)
    ).all()
    return PoolMemberView(
        node_id=node_id,
        username=node.username,
        pool=row.pool if row is not None else "none",  # type: ignore[arg-type]
        reason=row.reason if row is not None else "registered",
        since_ms=row.since_ms if row is not None else None,
        warm_opt_in=bool(row and row.warm_opt_in),
        cold_opt_in=bool(row and row.cold_opt_in),
        promoted=bool(row and row.promoted),
        transitions=[
            PoolTransitionView(
                from_pool=t.from_pool,  # type: ignore[arg-type]
                to_pool=t.to_pool,  # type: ignore[arg-type]
                reason=t.reason,
                at_ms=t.at_ms,
                log_index=t.log_index,
            )
            for t in transitions
        ],
    )


def set_preferences(
    uow: UnitOfWork, node_id: str, preferences: PoolPreferences, now_ms: int
) -> PoolMemberView:
    """Opt a node in or out of warm (resale) and cold (standby); logged, then committed.

    An idle node that opts in to warm moves to warm; a warm or cold node that opts out
    of that pool leaves it (a cold one for warm when it stays opted in there). A cold
    volunteer waits for the pool manager, which admits volunteers as the band needs.
    """
    if preferences.warm_opt_in is None and preferences.cold_opt_in is None:
        raise errors.preference_empty()
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    if blacklist.active_entry(session, node_id=node_id, username=node.username) is not None:
        raise errors.blacklisted(node_id)
    log_store.lock_log(session)
    row = session.get(PoolMemberRow, node_id)
    pool = row.pool if row is not None else "none"
    warm = (
        preferences.warm_opt_in
        if preferences.warm_opt_in is not None
        else bool(row and row.warm_opt_in)
    )
    cold = (
        preferences.cold_opt_in
        if preferences.cold_opt_in is not None
        else bool(row and row.cold_opt_in)
    )
    move: Move | None = None
    if pool == "none" and warm:
        move = Move(node_id, "none", "warm", "opt_in")
    elif pool == "warm" and not warm and (row is None or row.reason != "share_cap"):
        move = Move(node_id, "warm", "none", "opt_out")
    elif pool == "cold" and not cold:
        move = Move(node_id, "cold", "warm" if warm else "none", "opt_out")
    log_index = log_store.append_entries(
        session,
        "pool_preference",
        [{"node_id": node_id, "warm_opt_in": warm, "cold_opt_in": cold, "at_ms": now_ms}],
    )
    if row is None:
        row = PoolMemberRow(
            node_id=node_id,
            username=node.username,
            pool="none",
            reason="opt_in",
            since_ms=now_ms,
            warm_opt_in=warm,
            cold_opt_in=cold,
            promoted=False,
            log_index=log_index,
        )
        session.add(row)
    row.warm_opt_in = warm
    row.cold_opt_in = cold
    session.flush()
    if move is not None:
        apply_moves(session, [move], {node_id: node.username}, now_ms)
    view = member_view(uow, node_id)
    uow.commit()
    return view


def pool_summary(uow: UnitOfWork, policy: Policy) -> PoolSummary:
    session = uow.session
    members = load_members(session)
    counts = {pool: [0, 0] for pool in rules.POOLS}
    for member in members:
        counts[member.pool][0] += 1
        counts[member.pool][1] += rules.counted_capacity(member, policy)
    by_user = rules.hot_capacity_by_user(members, policy)
    total = sum(by_user.values())
    low, target, high = rules.cold_band(members, policy)
    top = sorted(by_user.items(), key=lambda item: (-item[1], item[0]))[:TOP_USERS_SHOWN]
    need = disrupting.running_need_flops_per_s(session)
    away = {node.node_id for node in disrupting.lost_away(session)}
    now = disrupting.disruption_now(members, away, need, policy)
    owed = disruption.stand_ins_owed_flops_per_s(members, now, policy)
    return PoolSummary(
        pools=[
            PoolCount(pool=pool, nodes=n, capacity_flops_per_s=str(cap))
            for pool, (n, cap) in counts.items()
        ],
        cold_band_flops_per_s=(_floor(low), _floor(target), _floor(high)),
        share_cap_binds=rules.share_cap_binds(by_user, policy),
        max_user_share=str(policy.max_user_share),
        top_users=[
            UserShare(
                username=user,
                hot_capacity_flops_per_s=str(cap),
                share=f"{Decimal(cap) / Decimal(total):.6f}" if total else "0.000000",
            )
            for user, cap in top
        ],
        disrupted=owed > 0,
        capacity_need_flops_per_s=str(now.need_flops_per_s),
        stand_ins_owed_flops_per_s=str(owed),
    )


def _floor(value: Decimal) -> str:
    return str(int(value.to_integral_value(rounding=ROUND_FLOOR)))


def verify_institution(
    uow: UnitOfWork, username: str, name: str, policy: Policy, now_ms: int
) -> list[Move]:
    """An operator verifies ``username`` as an institution (idempotent); commits.

    The institution's pooled nodes move to the institutional pool and its Atlas++
    entitlements are granted; nodes it registers later join that pool when they ask
    for work.
    """
    name = name.strip()
    if not 1 <= len(name) <= INSTITUTION_NAME_CHARS_MAX or not name.isprintable():
        raise errors.institution_name_invalid(INSTITUTION_NAME_CHARS_MAX)
    session = uow.session
    if session.get(UserRow, username) is None:
        raise registry_errors.user_unknown(username)
    log_store.lock_log(session)
    if session.get(InstitutionRow, username) is not None:
        return []
    log_index = log_store.append_entries(
        session, "institution_verified", [{"username": username, "name": name, "at_ms": now_ms}]
    )
    session.add(
        InstitutionRow(username=username, name=name, verified_at_ms=now_ms, log_index=log_index)
    )
    members = [m for m in load_members(session) if m.username == username]
    moves = [
        Move(m.node_id, m.pool, "institutional", "institution")
        for m in members
        if m.pool not in ("institutional", "none")
    ]
    apply_moves(session, moves, {m.node_id: username for m in members}, now_ms)
    grant_entitlements(session, {username: "institution"}, now_ms)
    uow.commit()
    return moves


def _epoch_view(
    row: RewardEpochRow, lines: Sequence[list[str]], cursor: str | None
) -> RewardEpochView:
    start_ms, end_ms = epoch_bounds_ms(row.epoch_index, row.epoch_s)
    shortfall = row.usdc_shortfall_micro
    return RewardEpochView(
        epoch=row.epoch_index,
        epoch_s=row.epoch_s,
        start_ms=start_ms,
        end_ms=end_ms,
        policy_sha256=row.policy_sha256,
        settled_at_ms=row.settled_at_ms,
        nodes_paid=row.nodes_paid,
        flops_total=str(row.flops_total),
        nxc_micro_total=str(row.nxc_micro_total),
        usdc_owed_micro_total=str(row.usdc_owed_micro_total),
        usdc_paid_micro_total=str(row.usdc_paid_micro_total),
        usdc_shortfall_micro=str(shortfall),
        usdc_scale="1"
        if shortfall == 0
        else f"{row.treasury_micro_usdc}/{row.usdc_owed_micro_total}",
        treasury_micro_usdc=str(row.treasury_micro_usdc),
        log_index=row.log_index,
        lines=[
            RewardLineView(
                node_id=line[0],
                username=line[1],
                flops=line[2],
                capacity_flops_per_s=line[3],
                nxc_micro=line[4],
                usdc_owed_micro=line[5],
                usdc_paid_micro=line[6],
            )
            for line in lines
        ],
        next_cursor=cursor,
    )


def epoch_view(
    uow: UnitOfWork, epoch_index: int, cursor: str | None, limit: int
) -> RewardEpochView:
    """A settled epoch and a page of its lines, read from its ``reward_lines`` log entries
    (by node id; ``cursor`` is the position of the page's first line)."""
    assert limit > 0
    epoch_report(uow, epoch_index)  # raises pools.epoch_unknown
    row = uow.session.get(RewardEpochRow, epoch_index)
    assert row is not None
    summary = _entry(uow, row.log_index)
    assert summary["kind"] == "reward_epoch" and summary["epoch"] == epoch_index
    start = int(cursor) if cursor is not None else 0
    total = int(summary["nodes"])
    stop = min(start + limit, total)
    lines: list[list[str]] = []
    if start < stop:
        first_entry = summary["lines_first_index"] + start // LINES_PER_ENTRY_MAX
        last_entry = summary["lines_first_index"] + (stop - 1) // LINES_PER_ENTRY_MAX
        skip = start % LINES_PER_ENTRY_MAX
        for _, raw, _ in log_store.read_entries(uow.session, first_entry, last_entry + 1):
            lines.extend(json.loads(raw)["lines"])
        lines = lines[skip : skip + stop - start]
    return _epoch_view(row, lines, str(stop) if stop < total else None)


def _entry(uow: UnitOfWork, index: int) -> dict[str, Any]:
    ((_, raw, _),) = log_store.read_entries(uow.session, index, index + 1)
    body: dict[str, Any] = json.loads(raw)
    return body


def epoch_list(uow: UnitOfWork) -> RewardEpochList:
    rows = uow.session.scalars(
        select(RewardEpochRow).order_by(RewardEpochRow.epoch_index.desc()).limit(EPOCHS_SHOWN_MAX)
    ).all()
    return RewardEpochList(epochs=[_epoch_view(row, [], None) for row in rows])


def treasury_view(uow: UnitOfWork) -> TreasuryView:
    return TreasuryView(
        account_id=TREASURY_ACCOUNT,
        available_micro_usdc=str(treasury_micro_usdc(uow)),
        paid_until_ms=paid_until_ms(uow.session),
    )
