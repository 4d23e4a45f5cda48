"""RFC 9457 problem details, with NexaPod's machine-readable ``code``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Problem"]


class Problem(BaseModel):
    """An error response body (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    extensions: dict[str, Any] | None = None
