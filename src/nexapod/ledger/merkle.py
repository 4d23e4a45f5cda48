"""RFC 9162 section 2.1 hashing: the Merkle tree every ledger entry is a leaf of.

Leaves and interior nodes hash with different one-byte prefixes so that no leaf can
be passed off as an interior node (the second-preimage defence of RFC 6962/9162).

Proofs are generated over a ``HashReader``: storage hands out the hashes of complete
subtrees ``(level, index)``, i.e. ``MTH(D[index * 2**level : (index + 1) * 2**level])``.
Every range the RFC 9162 recursion needs is split into at most ``log2(n)`` such
subtrees, so a proof reads O(log n) stored hashes in one batch, whatever keeps them
(a list in memory, tiles in a database table).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from nexapod.ledger.log_errors import ProofInvalidError, ProofRequestError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "LEAF_PREFIX",
    "MemoryHashStore",
    "NODE_PREFIX",
    "SubtreeCoord",
    "TREE_SIZE_MAX",
    "TreeBuilder",
    "leaf_hash",
    "node_hash",
    "perfect_tree_hash",
    "prove_consistency",
    "prove_inclusion",
    "root_from_leaf_hashes",
    "subtree_coords",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
TREE_SIZE_MAX = (1 << 64) - 1
"""Tree sizes are uint64 on the wire (RFC 9162 §4.8); anything larger is refused."""

SubtreeCoord = tuple[int, int]
"""``(level, index)``: the complete subtree over leaves ``index << level`` up to
``(index + 1) << level`` (exclusive)."""

_sha256 = hashlib.sha256
_BATCH_LEVEL = 8
_BATCH_LEAVES = 1 << _BATCH_LEVEL


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    assert len(left) == HASH_SIZE and len(right) == HASH_SIZE
    return _sha256(NODE_PREFIX + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() of the empty string: the root of a log with no entries."""


def perfect_tree_hash(hashes: bytes) -> bytes:
    """MTH of a complete subtree from its 2**k child hashes, concatenated.

    Tiles store hashes back to back, and two neighbours are already the 64 bytes a node
    hashes: working on the concatenation saves one object per hash in this hot loop.
    """
    count = len(hashes) // HASH_SIZE
    assert count > 0 and len(hashes) == count * HASH_SIZE
    assert count & (count - 1) == 0, "a complete subtree has a power-of-two width"
    sha, prefix, buf = _sha256, NODE_PREFIX, hashes
    while len(buf) > HASH_SIZE:
        buf = b"".join([sha(prefix + buf[o : o + 64]).digest() for o in range(0, len(buf), 64)])
    return buf


class HashReader(Protocol):
    """Where proofs read stored hashes from; one call per proof so a database does one query."""

    def read_hashes(self, coords: Sequence[SubtreeCoord]) -> Sequence[bytes]:
        """The hash of each complete subtree in ``coords``, in order."""
        ...


def _split(size: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two smaller than ``size`` (> 1)."""
    assert size > 1
    return 1 << ((size - 1).bit_length() - 1)


def subtree_coords(begin: int, end: int) -> list[SubtreeCoord]:
    """The complete subtrees, largest first, whose right fold is MTH(D[begin:end]).

    Holds for every range the RFC recursion produces: ``begin`` is a multiple of the
    smallest power of two that is at least ``end - begin``.
    """
    assert 0 <= begin < end
    coords: list[SubtreeCoord] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        assert begin % (1 << level) == 0, "range is not one the RFC recursion produces"
        coords.append((level, begin >> level))
        begin += 1 << level
    assert len(coords) <= 64
    return coords


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of complete subtree hashes, largest first, into one MTH."""
    assert hashes
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(NODE_PREFIX + left + result).digest()
    return result


def _hash_ranges(ranges: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """MTH of each range, with all stored hashes read in a single batch."""
    plans = [subtree_coords(begin, end) for begin, end in ranges]
    coords = [coord for plan in plans for coord in plan]
    stored = list(reader.read_hashes(coords))
    if len(stored) != len(coords) or any(len(h) != HASH_SIZE for h in stored):
        raise ProofRequestError("the hash reader returned the wrong number or size of hashes")
    result: list[bytes] = []
    at = 0
    for plan in plans:
        result.append(_fold(stored[at : at + len(plan)]))
        at += len(plan)
    assert at == len(stored)
    return result


def _check_size(name: str, size: int) -> None:
    if not 0 <= size <= TREE_SIZE_MAX:
        raise ProofRequestError(f"{name} {size} is outside 0..2**64-1")


def tree_hash(tree_size: int, reader: HashReader) -> bytes:
    """MTH(D[0:tree_size]) (RFC 9162 §2.1.1) from at most log2(n) stored hashes."""
    _check_size("tree_size", tree_size)
    if tree_size == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, tree_size)], reader)[0]


def prove_inclusion(leaf_index: int, tree_size: int, reader: HashReader) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, deepest sibling first."""
    _check_size("tree_size", tree_size)
    if not 0 <= leaf_index < tree_size:
        raise ProofRequestError(f"leaf_index {leaf_index} is not in a tree of {tree_size}")
    ranges: list[tuple[int, int]] = []
    begin, end = 0, tree_size
    while end - begin > 1:
        k = _split(end - begin)
        if leaf_index < begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
    assert begin == leaf_index and end == leaf_index + 1
    ranges.reverse()
    return _hash_ranges(ranges, reader)


def prove_consistency(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1.

    Empty for ``old_size`` 0 or equal to ``new_size``: every tree extends the empty one.
    """
    _check_size("new_size", new_size)
    if not 0 <= old_size <= new_size:
        raise ProofRequestError(f"old_size {old_size} is not in 0..new_size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    begin, end, whole = 0, new_size, True
    while old_size != end:
        k = _split(end - begin)
        if old_size <= begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
            whole = False
    if not whole:
        ranges.append((begin, end))
    ranges.reverse()
    return _hash_ranges(ranges, reader)


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    while fn & 1 == 0 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf_hash: bytes, leaf_index: int, tree_size: int, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofInvalidError unless the proof puts the leaf under the root."""
    _check_proof_hashes(proof, leaf_hash, root_hash)
    if not 0 <= leaf_index < tree_size <= TREE_SIZE_MAX:
        raise ProofInvalidError(f"leaf_index {leaf_index} is not in a tree of {tree_size}")
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofInvalidError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            if fn & 1 == 0:
                fn, sn = _shift_while_even(fn, sn)
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalidError("the inclusion proof is shorter than the tree is deep")
    if r != root_hash:
        raise ProofInvalidError("the inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofInvalidError unless the new tree extends the old one.

    The RFC covers 0 < old_size < new_size; equal sizes need equal roots and the empty
    tree is a prefix of every tree, both with an empty proof.
    """
    _check_proof_hashes(proof, old_root, new_root)
    if not 0 <= old_size <= new_size <= TREE_SIZE_MAX:
        raise ProofInvalidError(f"old_size {old_size} and new_size {new_size} are not ordered")
    if old_size in (0, new_size):
        if proof:
            raise ProofInvalidError("a consistency proof from an empty or equal tree must be empty")
        if old_size == new_size and old_root != new_root:
            raise ProofInvalidError("two trees of the same size have different roots")
        return
    path = list(proof)
    if not path:
        raise ProofInvalidError("the consistency proof is empty")
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofInvalidError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            if fn & 1 == 0:
                fn, sn = _shift_while_even(fn, sn)
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalidError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofInvalidError("the consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofInvalidError("the consistency proof does not lead to the new root hash")


def _check_proof_hashes(proof: Sequence[bytes], *hashes: bytes) -> None:
    if len(proof) > 2 * 64:
        raise ProofInvalidError(
            f"a proof of {len(proof)} hashes is longer than any uint64 tree needs"
        )
    for h in (*hashes, *proof):
        if len(h) != HASH_SIZE:
            raise ProofInvalidError(f"a proof hash has {len(h)} bytes, not {HASH_SIZE}")


class TreeBuilder:
    """A compact range from leaf 0: the root at any size from O(log n) state.

    The state is the list of complete subtree hashes, largest first, one per set bit of
    the size; appending a leaf merges equal-sized neighbours like a binary counter, so
    each leaf costs one node hash on average. ``TreeBuilder(size, hashes)`` resumes.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if not 0 <= size <= TREE_SIZE_MAX:
            raise ValueError(f"tree size {size} is outside 0..2**64-1")
        if len(hashes) != size.bit_count() or any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} subtree hashes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The state to persist: complete subtree hashes, largest first."""
        return tuple(self._hashes)

    def coords(self) -> list[SubtreeCoord]:
        """Where each hash of ``hashes`` sits in the tree."""
        return subtree_coords(0, self._size) if self._size else []

    def append(self, leaf_hash: bytes) -> None:
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes (not entries: hash those with ``leaf_hash`` first).

        Aligned runs of 256 leaves are hashed as one complete subtree, level by level
        over their concatenation, which is about twice as fast as leaf by leaf.
        """
        batch: list[bytes] = []
        try:
            for leaf in leaf_hashes:
                if len(leaf) != HASH_SIZE:
                    raise ValueError(f"a leaf hash has {len(leaf)} bytes, not {HASH_SIZE}")
                if batch or self._size % _BATCH_LEAVES == 0:
                    batch.append(leaf)
                    if len(batch) == _BATCH_LEAVES:
                        self._push(perfect_tree_hash(b"".join(batch)), _BATCH_LEVEL)
                        batch.clear()
                else:
                    self._push(leaf, 0)
        finally:
            for leaf in batch:  # the leaves before a bad one stay appended
                self._push(leaf, 0)
        assert len(self._hashes) == self._size.bit_count()

    def _push(self, subtree_hash: bytes, level: int) -> None:
        """Add the complete subtree of 2**level leaves that starts at the current size."""
        size, stack = self._size, self._hashes
        assert size % (1 << level) == 0
        if size + (1 << level) > TREE_SIZE_MAX:
            raise ValueError("the tree outgrew uint64")
        h, bits = subtree_hash, size >> level
        while bits & 1:
            h = _sha256(NODE_PREFIX + stack.pop() + h).digest()
            bits >>= 1
        stack.append(h)
        self._size = size + (1 << level)

    def root(self) -> bytes:
        """MTH(D[0:size]); EMPTY_ROOT for no leaves."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes, streaming with O(log n) memory."""
    builder = TreeBuilder()
    builder.extend(leaf_hashes)
    return builder.root()


class MemoryHashStore:
    """Every complete subtree hash in lists per level: a HashReader for tests and small logs.

    Stores about 2n hashes; the ledger keeps tiles instead (``tiles.TileHashReader``).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        levels, sha, prefix = self._levels, _sha256, NODE_PREFIX
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"a leaf hash has {len(h)} bytes, not {HASH_SIZE}")
            levels[0].append(h)
            level = 0
            while len(levels[level]) % 2 == 0:
                row = levels[level]
                if level + 1 == len(levels):
                    levels.append([])
                levels[level + 1].append(sha(prefix + row[-2] + row[-1]).digest())
                level += 1

    def read_hashes(self, coords: Sequence[SubtreeCoord]) -> list[bytes]:
        result = []
        for level, index in coords:
            if not 0 <= level < len(self._levels) or not 0 <= index < len(self._levels[level]):
                raise ProofRequestError(f"no complete subtree ({level}, {index}) is stored")
            result.append(self._levels[level][index])
        return result

    def root(self) -> bytes:
        return tree_hash(self.size, self)
