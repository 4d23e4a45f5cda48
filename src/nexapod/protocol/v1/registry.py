"""Registration of contributors (users) and their nodes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nexapod.protocol.v1._base import HEX64, KEY_B64, SIGNATURE_B64, WireModel

__all__ = [
    "USERNAME_PATTERN",
    "GpuInfo",
    "HardwareProfile",
    "NodeDocument",
    "NodeView",
    "RegisterNodeRequest",
    "RegisterUserRequest",
    "UserDocument",
    "UserView",
]

USERNAME_PATTERN = r"^[a-z][a-z0-9_-]{2,31}$"
Username = Annotated[str, Field(pattern=USERNAME_PATTERN)]
ShortText = Annotated[str, Field(max_length=256)]
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]  # RFC 8785 numbers stay exact to 2^53
# Counts that can pass 2^53 travel in signed documents as decimal text.
DecimalCount = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,29})$")]


class UserDocument(WireModel):
    """What a contributor signs with their own key to register."""

    username: Username
    public_key: KEY_B64
    created_at_s: Annotated[int, Field(ge=0, le=10**11)]


class RegisterUserRequest(WireModel):
    document: UserDocument
    signature: SIGNATURE_B64


class UserView(WireModel):
    username: str
    public_key: str
    registration_sha256: str
    registered_at_ms: int
    node_ids: list[str]


class GpuInfo(WireModel):
    name: ShortText
    memory_bytes: Count
    uuid: ShortText


class HardwareProfile(WireModel):
    """A node's hardware, as the node reports and signs it (integers and text only)."""

    cpu_model: ShortText
    cpu_cores: Annotated[int, Field(ge=1, le=1_000_000)]
    memory_bytes: Count
    gpus: Annotated[list[GpuInfo], Field(max_length=64)]
    os: ShortText
    machine: ShortText
    python: ShortText


class NodeDocument(WireModel):
    """Signed by the node key, and countersigned by its owner's user key."""

    node_public_key: KEY_B64
    username: Username
    profile: HardwareProfile
    fingerprint: HEX64
    capacity_flops_per_s: DecimalCount
    runner_tree_hash: HEX64
    created_at_s: Annotated[int, Field(ge=0, le=10**11)]


class RegisterNodeRequest(WireModel):
    document: NodeDocument
    node_signature: SIGNATURE_B64
    user_signature: SIGNATURE_B64


class NodeView(WireModel):
    node_id: str
    username: str
    fingerprint: str
    capacity_flops_per_s: int
    runner_tree_hash: str
    profile: HardwareProfile
    registered_at_ms: int
    last_seen_at_ms: int
    verified_flops: int
    units_done: int
