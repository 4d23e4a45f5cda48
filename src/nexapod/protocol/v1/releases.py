"""Signed runner releases: the manifest an operator publishes, and the coordinator's views.

The manifest's format and rules are ``nexapod.crypto``'s (``parse_manifest`` is the
authority; these models describe it in the OpenAPI contract and bound it on the way in).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nexapod.crypto import RELEASE_FILES_MAX, RELEASE_VERSION_PATTERN
from nexapod.protocol.v1._base import HEX64, KEY_B64, SIGNATURE_B64, WireModel

__all__ = ["ReleaseDocument", "ReleaseList", "ReleaseManifestFile", "ReleaseView"]

ReleasePath = Annotated[str, Field(min_length=1, max_length=4096)]


class ReleaseDocument(WireModel):
    """What the release key signs (purpose ``nexapod.release.v1``): every file's SHA-256."""

    v: Literal[1]
    version: Annotated[str, Field(pattern=RELEASE_VERSION_PATTERN)]
    tree_hash: HEX64
    files: Annotated[dict[ReleasePath, HEX64], Field(min_length=1, max_length=RELEASE_FILES_MAX)]
    signed_at_s: Annotated[int, Field(ge=0, le=10**11)]


class ReleaseManifestFile(WireModel):
    """A release manifest file, as ``nexapod release sign`` writes it and nodes fetch it."""

    document: ReleaseDocument
    signature: SIGNATURE_B64
    release_public_key: KEY_B64


class ReleaseView(WireModel):
    """A published release; ``trusted`` when its key is one the coordinator is configured with."""

    tree_hash: str
    version: str
    release_public_key: str
    trusted: bool
    published_at_ms: int


class ReleaseList(WireModel):
    """Releases, newest first; ``enforced`` says whether admission needs one of them."""

    enforced: bool
    release_public_keys: list[str]
    releases: list[ReleaseView]
    next_cursor: str | None
