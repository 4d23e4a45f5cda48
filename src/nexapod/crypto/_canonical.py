"""Canonical JSON (RFC 8785, JCS) and the hashes we take of it.

Every signed NexaPod document is signed over its canonical form, so the coordinator,
the node agent and an outside verifier all hash the same bytes for the same value.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

__all__ = ["canonical_json", "sha256_hex", "canonical_sha256_hex"]


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 serialisation of ``value`` (UTF-8 bytes).

    Floats are refused: NexaPod documents carry integers and strings only, so that
    no two implementations can disagree on a number's text.
    """
    _refuse_floats(value, depth=0)
    try:
        result: bytes = rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as exc:
        raise ValueError(
            f"{exc}: integers past 2^53 travel in signed documents as decimal strings"
        ) from exc
    return result


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_sha256_hex(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))


_DEPTH_MAX = 32


def _refuse_floats(value: Any, depth: int) -> None:
    if depth > _DEPTH_MAX:
        raise ValueError(f"document nested deeper than {_DEPTH_MAX} levels")
    if isinstance(value, float):
        raise ValueError("signed documents carry no floats; use integers or strings")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item, depth + 1)
