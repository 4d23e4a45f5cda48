"""HTTP routes of the registry (thin: parse, call one service, return a model)."""

from __future__ import annotations

from fastapi import APIRouter

from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import ADMISSION_PROBLEM_RESPONSES, PROBLEM_RESPONSES
from nexapod.protocol.v1 import NodeView, RegisterNodeRequest, RegisterUserRequest, UserView
from nexapod.registry import service

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["registry"], responses=PROBLEM_RESPONSES)


@router.post("/users", status_code=201)
def register_user(body: RegisterUserRequest, ctx: ContextDep) -> UserView:
    """Register a contributor from a document signed with their own key (idempotent)."""
    with ctx.uow() as uow:
        return service.register_user(uow, body, ctx.clock_ms())


@router.get("/users/{username}")
def get_user(username: str, ctx: ContextDep) -> UserView:
    with ctx.read_uow() as uow:
        return service.get_user(uow, username)


@router.post("/nodes", status_code=201, responses=ADMISSION_PROBLEM_RESPONSES)
def register_node(body: RegisterNodeRequest, ctx: ContextDep) -> NodeView:
    """Register a node: its signed profile, countersigned by its owner (idempotent).

    Where release keys are configured, its runner tree must be a published release.
    """
    with ctx.uow() as uow:
        return service.register_node(uow, body, ctx.clock_ms(), ctx.releases)


@router.get("/nodes/{node_id}")
def get_node(node_id: str, ctx: ContextDep) -> NodeView:
    with ctx.read_uow() as uow:
        return service.get_node(uow, node_id)
