"""Pure rules of identity: ids derived from keys, signer names, clock skew."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nexapod.crypto import b64decode, sha256_hex

__all__ = ["NODE_ID_HEX_CHARS", "Principal", "node_id_for_key", "parse_signer", "skew_s"]

NODE_ID_HEX_CHARS = 32


@dataclass(frozen=True)
class Principal:
    """Who signed a request: a user (by name) or a node (by id)."""

    kind: Literal["user", "node"]
    name: str

    @property
    def key_id(self) -> str:
        return f"{self.kind}:{self.name}"


def node_id_for_key(public_key_b64: str) -> str:
    """A node's id: the first 128 bits of the SHA-256 of its public key, in hex."""
    node_id = sha256_hex(b64decode(public_key_b64))[:NODE_ID_HEX_CHARS]
    assert len(node_id) == NODE_ID_HEX_CHARS
    return node_id


def parse_signer(key_id: str) -> Principal | None:
    """``user:NAME`` or ``node:ID``; ``None`` when it is neither."""
    kind, sep, name = key_id.partition(":")
    if not sep or not name or len(key_id) > 48:
        return None
    if kind == "user":
        return Principal("user", name)
    if kind == "node":
        return Principal("node", name)
    return None


def skew_s(timestamp_s: int, now_ms: int) -> int:
    """How far, in whole seconds, a request's timestamp is from the coordinator's clock."""
    assert now_ms >= 0
    return abs(timestamp_s - now_ms // 1000)
