"""RFC 9162 section 2.1 hashing: the Merkle tree every ledger entry is a leaf of.

Leaves and interior nodes hash with different one-byte prefixes so that no leaf can
be passed off as an interior node (the second-preimage defence of RFC 6962/9162).
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    assert len(left) == HASH_SIZE and len(right) == HASH_SIZE
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() of the empty string: the root of a log with no entries."""
