"""C2SP tlog-tiles: the Merkle tree and its entries as immutable, cacheable files.

A tile at level L, index N holds up to 256 consecutive hashes of tree level 8L, so the
tiles of one level are the leaves of the level above: a full tile's MTH is one hash of
the tile above it. Only full tiles (256 hashes) feed the level above; the right edge of
every level is a partial tile of ``floor(size / 256**L) mod 256`` hashes (none if 0).

The sequencer keeps those right-edge partial tiles and nothing else to append: the new
leaves, hashed upward through them, give every tile to write and the new root
(``integrate``). Readers rebuild any subtree hash from at most one tile per tile level
(``TileHashReader``), which is what proofs need.

Paths (tlog-tiles "Merkle Tree" and "Log entries"): ``tile/<L>/<N>[.p/<W>]`` and
``tile/entries/<N>[.p/<W>]``, with N in zero-padded 3-digit elements, all but the last
prefixed with ``x`` (1234067 -> ``x001/x234/067``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from nexapod.ledger.log_errors import (
    EntryBundleError,
    EntryTooLargeError,
    ProofRequestError,
    TileDataError,
    TilePathError,
)
from nexapod.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    NODE_PREFIX,
    TREE_SIZE_MAX,
    SubtreeCoord,
    node_hash,
    perfect_tree_hash,
)

__all__ = [
    "ENTRIES_LEVEL",
    "ENTRY_BYTES_MAX",
    "Integration",
    "TILE_BYTES_MAX",
    "TILE_HEIGHT",
    "TILE_LEVEL_MAX",
    "TILE_PATH_CHARS_MAX",
    "TILE_WIDTH",
    "TileHashReader",
    "TileId",
    "TileSource",
    "append_entry_bundles",
    "decode_entry_bundle",
    "edge_tiles",
    "encode_entry_bundle",
    "format_tile_index",
    "format_tile_path",
    "integrate",
    "parse_tile_path",
    "root_from_edge",
    "tile_inner_nodes",
    "inner_node",
    "tile_width",
    "tiles_for_size",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TILE_BYTES_MAX = TILE_WIDTH * HASH_SIZE
TILE_LEVEL_MAX = 63
ENTRIES_LEVEL = -1
"""The level of an entry bundle in a TileId (as the level below leaf hashes)."""
ENTRY_BYTES_MAX = 0xFFFF
"""Entries are prefixed by a big-endian uint16 length."""
TILE_PATH_CHARS_MAX = 128
_INDEX_ELEMENTS_MAX = 8
"""8 elements of 3 digits reach 10**24, past any tile index of a uint64 tree."""

assert TILE_WIDTH == 256
assert TILE_BYTES_MAX == 8192
assert TILE_HEIGHT * (TILE_LEVEL_MAX + 1) >= 64

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_INNER_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST_ELEMENT = re.compile(r"[0-9]{3}")


@dataclass(frozen=True, slots=True)
class TileId:
    """One tile (``level`` >= 0) or entry bundle (``level`` == ENTRIES_LEVEL)."""

    level: int
    index: int
    width: int

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        return self.level == ENTRIES_LEVEL

    @property
    def path(self) -> str:
        return format_tile_path(self)


def format_tile_index(index: int) -> str:
    """N as 3-digit path elements, all but the last prefixed with ``x``."""
    assert index >= 0
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def format_tile_path(tile: TileId) -> str:
    """``tile/<L>/<N>[.p/<W>]``, or ``tile/entries/<N>[.p/<W>]`` for an entry bundle."""
    assert ENTRIES_LEVEL <= tile.level <= TILE_LEVEL_MAX
    assert tile.index >= 0
    assert 1 <= tile.width <= TILE_WIDTH
    level = "entries" if tile.level == ENTRIES_LEVEL else str(tile.level)
    suffix = f".p/{tile.width}" if tile.width < TILE_WIDTH else ""
    return f"tile/{level}/{format_tile_index(tile.index)}{suffix}"


def parse_tile_path(path: str) -> TileId:
    """The inverse of ``format_tile_path``; refuses every non-canonical spelling."""
    if len(path) > TILE_PATH_CHARS_MAX or not path.isascii():
        raise TilePathError(f"tile path {path[:TILE_PATH_CHARS_MAX]!r} is malformed")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TilePathError(f"tile path {path!r} does not start with tile/<L>/")
    if parts[1] == "entries":
        level = ENTRIES_LEVEL
    elif _LEVEL.fullmatch(parts[1]) and int(parts[1]) <= TILE_LEVEL_MAX:
        level = int(parts[1])
    else:
        raise TilePathError(f"tile path {path!r} has level {parts[1]!r}, not 0..63")
    elements, width = parts[2:], TILE_WIDTH
    if len(elements) >= 2 and elements[-2].endswith(".p"):
        width_text = elements[-1]
        if not _WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise TilePathError(f"tile path {path!r} has width {width_text!r}, not 1..255")
        width = int(width_text)
        elements = [*elements[:-2], elements[-2][:-2]]
    return TileId(level, _parse_index(path, elements), width)


def _parse_index(path: str, elements: Sequence[str]) -> int:
    if not 1 <= len(elements) <= _INDEX_ELEMENTS_MAX:
        raise TilePathError(f"tile path {path!r} has no valid index")
    if not all(_INNER_ELEMENT.fullmatch(e) for e in elements[:-1]):
        raise TilePathError(f"tile path {path!r} has an index element not like x123")
    if not _LAST_ELEMENT.fullmatch(elements[-1]):
        raise TilePathError(f"tile path {path!r} does not end its index with 3 digits")
    if len(elements) > 1 and elements[0] == "x000":
        raise TilePathError(f"tile path {path!r} pads its index with x000")
    index = 0
    for element in elements:
        index = index * 1000 + int(element[-3:])
    return index


def tile_width(tree_size: int, level: int, index: int) -> int:
    """How many hashes (or entries) tile ``(level, index)`` holds in a tree of ``tree_size``."""
    assert tree_size >= 0
    assert ENTRIES_LEVEL <= level <= TILE_LEVEL_MAX
    count = tree_size >> (TILE_HEIGHT * max(level, 0))
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def tile_inner_nodes(data: bytes) -> bytes:
    """Every complete subtree hash inside a tile, above its own level: heights 1 to 7.

    A tile of width W holds W hashes at height 0; height j has ``W >> j`` complete
    subtrees, stored one height after the other. With these next to the tile, any
    subtree hash a proof needs is a slice, not 2**j - 1 hashes computed on each request.
    """
    width = len(data) // HASH_SIZE
    assert 0 < width <= TILE_WIDTH and len(data) == width * HASH_SIZE
    levels: list[bytes] = []
    below = data
    sha, prefix = hashlib.sha256, NODE_PREFIX  # (locals: this loop hashes every tile)
    for _ in range(1, TILE_HEIGHT):
        pairs = len(below) // (2 * HASH_SIZE)
        if pairs == 0:
            break
        below = b"".join(
            [sha(prefix + below[o : o + 64]).digest() for o in range(0, pairs * 64, 64)]
        )
        levels.append(below)
    return b"".join(levels)


def inner_node(data: bytes, nodes: bytes, height: int, offset: int) -> bytes:
    """The hash of the complete subtree of 2**height tile hashes starting at ``offset``.

    ``nodes`` is :func:`tile_inner_nodes` of ``data``; height 0 is the tile itself.
    """
    assert 0 <= height < TILE_HEIGHT and offset % (1 << height) == 0
    width = len(data) // HASH_SIZE
    if height == 0:
        return data[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
    start = sum(width >> j for j in range(1, height)) + (offset >> height)
    assert (offset >> height) < width >> height, "the subtree is not complete in this tile"
    return nodes[start * HASH_SIZE : (start + 1) * HASH_SIZE]


def _node(pair: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + pair).digest()


def edge_tiles(tree_size: int) -> list[TileId]:
    """The partial hash tiles of a tree, lowest level first: all a sequencer keeps to append."""
    assert 0 <= tree_size <= TREE_SIZE_MAX
    result = []
    level, count = 0, tree_size
    while count:
        if count % TILE_WIDTH:
            result.append(TileId(level, count // TILE_WIDTH, count % TILE_WIDTH))
        level, count = level + 1, count // TILE_WIDTH
    return result


def tiles_for_size(tree_size: int, *, entries: bool = False) -> Iterator[TileId]:
    """Every tile a tree of ``tree_size`` serves (hash tiles, or entry bundles if ``entries``)."""
    assert 0 <= tree_size <= TREE_SIZE_MAX
    levels = [ENTRIES_LEVEL] if entries else range(TILE_LEVEL_MAX + 1)
    for level in levels:
        count = tree_size >> (TILE_HEIGHT * max(level, 0))
        if count == 0:
            return
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            yield TileId(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH))


def _check_edge(tree_size: int, edge: Mapping[int, bytes]) -> None:
    expected = {tile.level: tile.width for tile in edge_tiles(tree_size)}
    for level, data in edge.items():
        width = expected.get(level, 0)
        if width == 0 and data:
            raise TileDataError(f"a tree of {tree_size} has no partial tile at level {level}")
        if len(data) != width * HASH_SIZE:
            raise TileDataError(
                f"the level {level} edge tile has {len(data)} bytes, not {width * HASH_SIZE}"
            )
    missing = [level for level in expected if level not in edge]
    if missing:
        raise TileDataError(f"the edge tiles of a tree of {tree_size} lack levels {missing}")


def root_from_edge(tree_size: int, edge: Mapping[int, bytes]) -> bytes:
    """The root hash from the partial tiles alone.

    Each set bit j of a level's width is a complete subtree of 2**j of its hashes; walked
    from the top level down they are the tree's complete subtrees, largest first.
    """
    _check_edge(tree_size, edge)
    subtrees: list[bytes] = []
    for tile in reversed(edge_tiles(tree_size)):
        data, at = edge[tile.level], 0
        for bit in reversed(range(TILE_HEIGHT)):
            if tile.width >> bit & 1:
                end = at + (1 << bit) * HASH_SIZE
                subtrees.append(perfect_tree_hash(data[at:end]))
                at = end
        assert at == len(data)
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        root = node_hash(left, root)
    return root


@dataclass(frozen=True, slots=True)
class Integration:
    """What appending leaves produced: the tiles to store and the new tree head."""

    tree_size: int
    root_hash: bytes
    tiles: tuple[tuple[TileId, bytes], ...]
    """Every tile created or widened, lowest level first; full tiles never change again."""
    edge: Mapping[int, bytes]
    """The partial tiles of the new tree, by level: the input of the next ``integrate``."""
    inner_nodes: Mapping[tuple[int, int], bytes]
    """``tile_inner_nodes`` of every tile completed, by (level, index): hashed on the way
    up anyway, so a store need not hash those tiles again."""


def integrate(
    old_size: int, edge: Mapping[int, bytes], leaf_hashes: Sequence[bytes]
) -> Integration:
    """Append ``leaf_hashes`` to a tree of ``old_size`` whose partial tiles are ``edge``.

    ``edge`` maps level -> bytes of the partial tile at that level (``edge_tiles``); a
    level with no partial tile is absent. Work and output are O(new leaves + log n).
    """
    _check_edge(old_size, edge)
    if any(len(h) != HASH_SIZE for h in leaf_hashes):
        raise TileDataError(f"every leaf hash must have {HASH_SIZE} bytes")
    new_size = old_size + len(leaf_hashes)
    if new_size > TREE_SIZE_MAX:
        raise TileDataError("the tree would outgrow uint64")
    written: list[tuple[TileId, bytes]] = []
    inner_nodes: dict[tuple[int, int], bytes] = {}
    new_edge = dict(edge)
    level, count_old, rising = 0, old_size, b"".join(leaf_hashes)
    while rising:
        assert level <= TILE_LEVEL_MAX
        first_tile = count_old // TILE_WIDTH
        buf = edge.get(level, b"") + rising
        completed: list[bytes] = []
        for at in range(0, len(buf), TILE_BYTES_MAX):
            chunk = buf[at : at + TILE_BYTES_MAX]
            width = len(chunk) // HASH_SIZE
            tile = TileId(level, first_tile + at // TILE_BYTES_MAX, width)
            written.append((tile, chunk))
            if width == TILE_WIDTH:
                nodes = tile_inner_nodes(chunk)  # heights 1..7; height 7 is the last pair
                inner_nodes[tile.level, tile.index] = nodes
                completed.append(_node(nodes[-2 * HASH_SIZE :]))
            else:
                new_edge[level] = chunk
        if len(buf) % TILE_BYTES_MAX == 0:
            new_edge.pop(level, None)
        level, count_old, rising = level + 1, count_old // TILE_WIDTH, b"".join(completed)
    root = root_from_edge(new_size, new_edge)
    return Integration(new_size, root, tuple(written), new_edge, inner_nodes)


TileSource = Callable[[Sequence[TileId]], Sequence[bytes]]
"""Reads tiles in one batch. A wider tile of the same level and index may be returned in
place of a partial one: hashes in a tile never change, later tiles only extend them."""


class TileHashReader:
    """A ``merkle.HashReader`` over stored tiles for one tree size.

    A subtree at level 8L + j is 2**j consecutive hashes of one level-L tile, so a proof
    reads at most one tile per tile level and hashes at most 255 hashes per tile.
    """

    __slots__ = ("_read_tiles", "_tree_size")

    def __init__(self, tree_size: int, read_tiles: TileSource) -> None:
        assert 0 <= tree_size <= TREE_SIZE_MAX
        self._tree_size = tree_size
        self._read_tiles = read_tiles

    def read_hashes(self, coords: Sequence[SubtreeCoord]) -> list[bytes]:
        plan: list[tuple[TileId, int, int]] = []
        for level, index in coords:
            if level < 0 or index < 0 or (index + 1) << level > self._tree_size:
                raise ProofRequestError(
                    f"subtree ({level}, {index}) is not complete in a tree of {self._tree_size}"
                )
            tile_level, bit = divmod(level, TILE_HEIGHT)
            first = index << bit
            tile_index, offset = divmod(first, TILE_WIDTH)
            width = tile_width(self._tree_size, tile_level, tile_index)
            plan.append((TileId(tile_level, tile_index, width), offset, 1 << bit))
        wanted = list(dict.fromkeys(tile for tile, _, _ in plan))
        data = self._read_tiles(wanted)
        if len(data) != len(wanted):
            raise TileDataError(f"asked for {len(wanted)} tiles, got {len(data)}")
        by_tile = {}
        for tile, tile_data in zip(wanted, data, strict=True):
            size = len(tile_data)
            if size < tile.width * HASH_SIZE or size % HASH_SIZE or size > TILE_BYTES_MAX:
                raise TileDataError(f"tile {tile.path} has {size} bytes")
            by_tile[tile] = tile_data
        result = []
        for tile, offset, count in plan:
            chunk = by_tile[tile][offset * HASH_SIZE : (offset + count) * HASH_SIZE]
            result.append(chunk if count == 1 else perfect_tree_hash(chunk))
        return result


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as big-endian uint16 length-prefixed records (tlog-tiles "Log entries")."""
    if not 0 < len(entries) <= TILE_WIDTH:
        raise EntryBundleError(f"a bundle holds 1..256 entries, not {len(entries)}")
    parts = []
    for i, entry in enumerate(entries):
        if len(entry) > ENTRY_BYTES_MAX:
            raise EntryTooLargeError(
                f"entry {i} has {len(entry)} bytes; an entry holds at most {ENTRY_BYTES_MAX}",
                entry_bytes=len(entry),
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """The entries of a bundle; refuses truncation, trailing bytes and a count not ``width``."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if len(entries) == TILE_WIDTH:
            raise EntryBundleError("the bundle holds more than 256 entries")
        if at + 2 > len(data):
            raise EntryBundleError(f"the bundle ends inside a length prefix at byte {at}")
        size = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + size > len(data):
            raise EntryBundleError(f"entry {len(entries)} runs past the end of the bundle")
        entries.append(data[at + 2 : at + 2 + size])
        at += 2 + size
    if not entries:
        raise EntryBundleError("the bundle is empty")
    if width is not None and len(entries) != width:
        raise EntryBundleError(f"the bundle holds {len(entries)} entries, not {width}")
    assert at == len(data)
    return entries


def append_entry_bundles(
    old_size: int, edge_bundle: bytes, entries: Sequence[bytes]
) -> list[tuple[TileId, bytes]]:
    """The entry bundles to store after appending ``entries``, like ``integrate`` for hashes.

    ``edge_bundle`` is the partial bundle of the old tree (empty if ``old_size`` is a
    multiple of 256).
    """
    assert 0 <= old_size <= TREE_SIZE_MAX
    kept = old_size % TILE_WIDTH
    previous = decode_entry_bundle(edge_bundle, kept) if kept else []
    if not kept and edge_bundle:
        raise EntryBundleError(f"a tree of {old_size} has no partial entry bundle")
    pending = [*previous, *entries]
    first = old_size // TILE_WIDTH
    result = []
    for at in range(0, len(pending), TILE_WIDTH):
        chunk = pending[at : at + TILE_WIDTH]
        result.append(
            (
                TileId(ENTRIES_LEVEL, first + at // TILE_WIDTH, len(chunk)),
                encode_entry_bundle(chunk),
            )
        )
    return result
