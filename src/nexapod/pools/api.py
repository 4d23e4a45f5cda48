"""HTTP routes of the pools area (thin: parse, call one service, return a model)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from nexapod.coordinator.auth import SignedRequestDep, authenticate, require_node
from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import PROBLEM_RESPONSES, SIGNED_PROBLEM_RESPONSES
from nexapod.pools import errors, service
from nexapod.protocol.v1 import (
    PoolMemberView,
    PoolPreferences,
    PoolSummary,
    RewardEpochList,
    RewardEpochView,
    TreasuryView,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["pools"], responses=PROBLEM_RESPONSES)


@router.get("/pools")
def get_pools(ctx: ContextDep) -> PoolSummary:
    """Nodes and capacity per pool, the cold band, the share cap and the top users."""
    with ctx.read_uow() as uow:
        return service.pool_summary(uow, ctx.policy)


@router.get("/nodes/{node_id}/pool")
def get_node_pool(node_id: str, ctx: ContextDep) -> PoolMemberView:
    """A node's pool, its preferences and its latest transitions (each a log entry)."""
    with ctx.read_uow() as uow:
        return service.member_view(uow, node_id)


@router.post("/nodes/{node_id}/pool", responses=SIGNED_PROBLEM_RESPONSES)
def set_node_pool_preferences(
    node_id: str, body: PoolPreferences, signed: SignedRequestDep, ctx: ContextDep
) -> PoolMemberView:
    """Opt the signing node in or out of warm (resale) and cold (standby)."""
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        signer = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        if signer != node_id:
            raise errors.not_your_node(node_id, signer)
        return service.set_preferences(uow, node_id, body, now_ms)


@router.get("/rewards/epochs")
def list_reward_epochs(ctx: ContextDep) -> RewardEpochList:
    """The latest settled epochs, newest first (without their lines)."""
    with ctx.read_uow() as uow:
        return service.epoch_list(uow)


@router.get("/rewards/epochs/{epoch}")
def get_reward_epoch(
    epoch: int,
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> RewardEpochView:
    """A settled epoch: totals, the USDC factor and shortfall, and a page of node lines
    (``limit`` is capped by the page size; follow ``next_cursor`` with ``cursor``)."""
    page = min(limit, ctx.settings.page_size_max)
    with ctx.read_uow() as uow:
        return service.epoch_view(uow, epoch, cursor, page)


@router.get("/treasury")
def get_treasury(ctx: ContextDep) -> TreasuryView:
    """The reward treasury's USDC, and how far settlement has paid."""
    with ctx.read_uow() as uow:
        return service.treasury_view(uow)
