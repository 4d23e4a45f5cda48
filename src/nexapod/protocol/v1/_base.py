"""The base of every wire message: strict, immutable, no extra fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HEX64", "KEY_B64", "SIGNATURE_B64", "WireModel"]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


HEX64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
KEY_B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
SIGNATURE_B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]
