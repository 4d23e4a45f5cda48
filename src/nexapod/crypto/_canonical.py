"""Canonical JSON (RFC 8785, JCS) and the hashes we take of it.

Every signed NexaPod document is signed over its canonical form, so the coordinator,
the node agent and an outside verifier all hash the same bytes for the same value.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

__all__ = ["canonical_json", "sha256_hex", "canonical_sha256_hex"]


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 serialisation of ``value`` (UTF-8 bytes).

    Floats are refused: NexaPod documents carry integers and strings only, so that
    no two implementations can disagree on a number's text.
    """
    if _is_plain(value, depth=0):
        # For ASCII text and integers within 2^53, RFC 8785 is exactly Python's sorted,
        # compact JSON: the same escapes (\b \t \n \f \r, else \u00xx in lower case),
        # the same key order (UTF-16 and code-point order agree on ASCII), the same
        # integers. A property test holds this against the rfc8785 package.
        return json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")
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
_PLAIN_INT_MAX = 2**53 - 1


def _is_plain(value: Any, depth: int) -> bool:
    """True for the common case the fast path serves: ASCII text, small ints, no floats.

    Written as loops over exact types first (ledger entries and signed documents are
    flat objects of strings and integers, checked by the million), with isinstance for
    subclasses such as enums.
    """
    if depth > _DEPTH_MAX:
        return False
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii():
                    return False
            elif item_kind is int:
                if not -_PLAIN_INT_MAX <= item <= _PLAIN_INT_MAX:
                    return False
            elif not _is_plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:  # the same loop: settlement lines come by the 10^5
        for item in value:
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii():
                    return False
            elif item_kind is int:
                if not -_PLAIN_INT_MAX <= item <= _PLAIN_INT_MAX:
                    return False
            elif not _is_plain(item, depth + 1):
                return False
        return True
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_PLAIN_INT_MAX <= value <= _PLAIN_INT_MAX
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _is_plain(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_is_plain(item, depth + 1) for item in value)
    return False


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
