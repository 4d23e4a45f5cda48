"""HTTP routes of cold-pool liveness challenges (docs/cold-challenges.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from nexapod.coordinator.auth import SignedRequestDep, authenticate, require_node
from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.maintenance import PASS_MS
from nexapod.coordinator.openapi import SIGNED_PROBLEM_RESPONSES
from nexapod.pools import challenging
from nexapod.protocol.v1 import ChallengeAnswer, ChallengeList, ChallengeOutcome

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["pools"])

ChallengeIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/challenges", responses=SIGNED_PROBLEM_RESPONSES)
def list_challenges(signed: SignedRequestDep, ctx: ContextDep) -> ChallengeList:
    """The signing node's open challenges, and when to ask again.

    Read-only (no write lock, no nonce kept): a replayed request only reads the same list
    again. Any node may ask; only cold nodes are challenged.
    """
    schedule = challenging.challenge_schedule(ctx.settings, PASS_MS)
    with ctx.read_uow() as uow:
        now_ms = ctx.clock_ms()
        node_id = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        return challenging.open_challenges(uow, node_id, now_ms, schedule)


@router.post("/challenges/{challenge_id}", responses=SIGNED_PROBLEM_RESPONSES)
def answer_challenge(
    challenge_id: ChallengeIdPath, body: ChallengeAnswer, signed: SignedRequestDep, ctx: ContextDep
) -> ChallengeOutcome:
    """A node's signed answer: recorded as passed, wrong or late (200); a repeat gets the
    first answer's outcome. A refusal (4xx) changes nothing."""
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        node_id = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        return challenging.answer_challenge(uow, node_id, challenge_id, body, now_ms)
