"""HTTP routes of runner releases (thin: parse, call one service, return a model)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import ADMISSION_PROBLEM_RESPONSES, PROBLEM_RESPONSES
from nexapod.protocol.v1 import ReleaseList, ReleaseManifestFile, ReleaseView
from nexapod.registry import releases

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["releases"])

TreeHashPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


ALREADY_PUBLISHED: dict[int | str, dict[str, Any]] = {
    200: {"model": ReleaseView, "description": "Already published: nothing changed"}
}


@router.post(
    "/releases", status_code=201, responses={**ADMISSION_PROBLEM_RESPONSES, **ALREADY_PUBLISHED}
)
def publish_release(body: ReleaseManifestFile, response: Response, ctx: ContextDep) -> ReleaseView:
    """Publish a release manifest signed by a configured release key.

    The release signature is the authority, so the request itself is not signed. The same
    manifest again answers 200 and changes nothing.
    """
    with ctx.uow() as uow:
        view, created = releases.publish_release(
            uow, body.model_dump(), ctx.releases, ctx.clock_ms()
        )
    if not created:
        response.status_code = 200
    return view


@router.get("/releases", responses=PROBLEM_RESPONSES)
def list_releases(
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> ReleaseList:
    """Published releases, newest first, whether admission enforces them, and the keys."""
    with ctx.read_uow() as uow:
        return releases.list_releases(
            uow, ctx.releases, cursor, min(limit, ctx.settings.page_size_max)
        )


@router.get(
    "/releases/{tree_hash}", responses=PROBLEM_RESPONSES, response_model=ReleaseManifestFile
)
def get_release(tree_hash: TreeHashPath, ctx: ContextDep) -> Response:
    """The manifest file of a published release, as signed: nodes check their tree with it."""
    with ctx.read_uow() as uow:
        manifest = releases.get_release(uow, tree_hash)
    return Response(manifest.model_dump_json(), media_type="application/json")
