"""Shared OpenAPI fragments: every route documents problem responses."""

from __future__ import annotations

from typing import Any

from nexapod.protocol.v1 import Problem

__all__ = ["ADMISSION_PROBLEM_RESPONSES", "PROBLEM_RESPONSES", "SIGNED_PROBLEM_RESPONSES"]

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "Malformed request"},
    404: {**_PROBLEM, "description": "Not found"},
    409: {**_PROBLEM, "description": "Conflict"},
    413: {**_PROBLEM, "description": "Too large"},
    422: {**_PROBLEM, "description": "Invalid request"},
}

ADMISSION_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    403: {**_PROBLEM, "description": "Not signed by a trusted release key, or not a release"},
}

SIGNED_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    401: {**_PROBLEM, "description": "Missing, invalid or replayed signature"},
    403: {
        **_PROBLEM,
        "description": "Signed by the wrong kind of key or for another node, "
        "or the node's runner is not a signed release",
    },
    410: {**_PROBLEM, "description": "Lease expired"},
}
