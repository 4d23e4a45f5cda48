"""C2SP tlog-tiles: paths, incremental integration, reading hashes back, entry bundles."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.ledger.log_errors import (
    EntryBundleError,
    EntryTooLargeError,
    ProofRequestError,
    TileDataError,
    TilePathError,
)
from nexapod.ledger.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    tree_hash,
)
from nexapod.ledger.tiles import (
    ENTRIES_LEVEL,
    ENTRY_BYTES_MAX,
    Integration,
    TileHashReader,
    TileId,
    append_entry_bundles,
    decode_entry_bundle,
    edge_tiles,
    encode_entry_bundle,
    format_tile_index,
    format_tile_path,
    integrate,
    parse_tile_path,
    root_from_edge,
    tile_width,
    tiles_for_size,
)

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(70_000)]
STORE = MemoryHashStore(LEAVES[:2000])


class TileStore:
    """Tiles by (level, index), as a sequencer keeps them: the latest width wins."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.size = 0
        self.edge: dict[int, bytes] = {}

    def apply(self, result: Integration) -> None:
        for tile, data in result.tiles:
            old = self.tiles.get((tile.level, tile.index), b"")
            assert len(old) < 8192, "a full tile was written twice"
            assert data.startswith(old), "a tile changed instead of growing"
            assert len(data) == tile.width * 32
            assert tile.width == tile_width(result.tree_size, tile.level, tile.index)
            self.tiles[tile.level, tile.index] = data
        self.size, self.edge = result.tree_size, dict(result.edge)

    def append(self, leaf_hashes: Sequence[bytes]) -> Integration:
        result = integrate(self.size, self.edge, leaf_hashes)
        self.apply(result)
        return result

    def read(self, wanted: Sequence[TileId]) -> list[bytes]:
        return [self.tiles[tile.level, tile.index] for tile in wanted]


def expected_tile(store: MemoryHashStore, tile: TileId) -> bytes:
    """A tile from its definition: hashes of tree level 8L, 256 per tile."""
    level = 8 * tile.level
    coords = [(level, tile.index * 256 + i) for i in range(tile.width)]
    return b"".join(store.read_hashes(coords))


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (TileId(0, 0, 256), "tile/0/000"),
        (TileId(0, 1234067, 256), "tile/0/x001/x234/067"),
        (TileId(1, 1234067, 17), "tile/1/x001/x234/067.p/17"),
        (TileId(63, 999, 1), "tile/63/999.p/1"),
        (TileId(2, 1000, 255), "tile/2/x001/000.p/255"),
        (TileId(ENTRIES_LEVEL, 1234067, 256), "tile/entries/x001/x234/067"),
        (TileId(ENTRIES_LEVEL, 5, 112), "tile/entries/005.p/112"),
    ],
)
def test_tile_paths(tile: TileId, path: str) -> None:
    assert format_tile_path(tile) == path
    assert tile.path == path
    assert parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "tiles/0/000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/x/000",
        "tile/data/000",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x001",
        "tile/0/001/002",
        "tile/0/x000/001",
        "tile/0/x01/001",
        "tile/0/X001/001",
        "tile/0/001.p",
        "tile/0/001.p/",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/007",
        "tile/0/001.p/+7",
        "tile/0/001.p/7/",
        "tile/0/001/.p/7",
        "tile/0/\u0661\u0662\u0663",
        "tile/entries/001.p/300",
        "tile/0/" + "x001/" * 9 + "001",
    ],
)
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(TilePathError) as caught:
        parse_tile_path(path)
    assert caught.value.code == "ledger.tile_path_malformed"


@given(
    level=st.integers(ENTRIES_LEVEL, 63),
    index=st.integers(0, 2**56),
    width=st.integers(1, 256),
)
def test_tile_paths_round_trip(level: int, index: int, width: int) -> None:
    tile = TileId(level, index, width)
    assert parse_tile_path(format_tile_path(tile)) == tile


def test_tile_index_groups() -> None:
    assert format_tile_index(0) == "000"
    assert format_tile_index(999) == "999"
    assert format_tile_index(1000) == "x001/000"
    assert format_tile_index(1234067) == "x001/x234/067"


def test_the_spec_example_of_a_tree_of_70000() -> None:
    tiles = list(tiles_for_size(70_000))
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert [t for t in level0 if t.is_partial] == [TileId(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [TileId(1, 0, 256), TileId(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [TileId(2, 0, 1)]
    assert edge_tiles(70_000) == [TileId(0, 273, 112), TileId(1, 1, 17), TileId(2, 0, 1)]
    bundles = list(tiles_for_size(70_000, entries=True))
    assert len(bundles) == 274
    assert bundles[-1] == TileId(ENTRIES_LEVEL, 273, 112)


def test_a_tree_of_256_has_a_full_tile_and_a_level_one_partial() -> None:
    assert list(tiles_for_size(256)) == [TileId(0, 0, 256), TileId(1, 0, 1)]
    assert edge_tiles(256) == [TileId(1, 0, 1)]
    assert list(tiles_for_size(0)) == []


@given(chunks=st.lists(st.integers(0, 700), min_size=1, max_size=8))
@settings(max_examples=40, deadline=None)
def test_integrating_in_chunks_equals_all_at_once_equals_from_scratch(chunks: list[int]) -> None:
    total = STORE.size
    stepwise = TileStore()
    at = 0
    for chunk in chunks:
        piece = LEAVES[at : min(at + chunk, total)]
        result = stepwise.append(piece)
        at += len(piece)
        assert result.root_hash == tree_hash(at, STORE)
        assert root_from_edge(at, result.edge) == result.root_hash
    at_once = TileStore()
    assert at_once.append(LEAVES[:at]).root_hash == tree_hash(at, STORE)
    assert stepwise.tiles == at_once.tiles
    scratch = {(t.level, t.index): expected_tile(STORE, t) for t in tiles_for_size(at)}
    assert stepwise.tiles == scratch


def test_integrating_past_two_tile_levels() -> None:
    """70,000 leaves reach a level-2 tile; chunk edges straddle tile edges on purpose."""
    stepwise, at_once = TileStore(), TileStore()
    at = 0
    for chunk in (1, 255, 257, 65_023, 1, 4_000, 463):
        stepwise.append(LEAVES[at : at + chunk])
        at += chunk
    assert at == 70_000
    result = at_once.append(LEAVES)
    assert stepwise.tiles == at_once.tiles
    full_store = MemoryHashStore(LEAVES)
    assert result.root_hash == full_store.root()
    assert set(result.edge) == {0, 1, 2}
    for tile in tiles_for_size(70_000):
        assert at_once.tiles[tile.level, tile.index] == expected_tile(full_store, tile)


def test_integrating_nothing_keeps_the_head() -> None:
    store = TileStore()
    empty = store.append([])
    assert (empty.tree_size, empty.root_hash, empty.tiles) == (0, EMPTY_ROOT, ())
    store.append(LEAVES[:300])
    again = store.append([])
    assert again.tree_size == 300
    assert again.tiles == ()
    assert again.root_hash == tree_hash(300, STORE)


def test_integrate_refuses_a_wrong_edge() -> None:
    store = TileStore()
    store.append(LEAVES[:300])
    with pytest.raises(TileDataError):
        integrate(300, {0: store.edge[0][:-32], 1: store.edge[1]}, LEAVES[300:301])
    with pytest.raises(TileDataError):
        integrate(300, {0: store.edge[0]}, LEAVES[300:301])
    with pytest.raises(TileDataError):
        integrate(256, {0: store.edge[0]}, [])
    with pytest.raises(TileDataError):
        integrate(300, store.edge, [b"short"])


@given(data=st.data(), tree_size=st.integers(1, 2000))
@settings(max_examples=60, deadline=None)
def test_proofs_from_tiles_equal_proofs_from_all_hashes(
    data: st.DataObject, tree_size: int
) -> None:
    """The tiles are those of a bigger tree: older, wider tiles must serve smaller trees."""
    reader = TileHashReader(tree_size, GROWN.read)
    leaf_index = data.draw(st.integers(0, tree_size - 1))
    old_size = data.draw(st.integers(0, tree_size))
    assert prove_inclusion(leaf_index, tree_size, reader) == prove_inclusion(
        leaf_index, tree_size, STORE
    )
    assert prove_consistency(old_size, tree_size, reader) == prove_consistency(
        old_size, tree_size, STORE
    )
    assert tree_hash(tree_size, reader) == tree_hash(tree_size, STORE)


GROWN = TileStore()
GROWN.append(LEAVES[:2000])


def test_tile_reader_refuses_hashes_outside_the_tree_and_short_tiles() -> None:
    reader = TileHashReader(300, GROWN.read)
    with pytest.raises(ProofRequestError):
        reader.read_hashes([(0, 300)])
    with pytest.raises(ProofRequestError):
        reader.read_hashes([(9, 0)])
    short = TileHashReader(300, lambda wanted: [b"\x00" * 31 for _ in wanted])
    with pytest.raises(TileDataError):
        short.read_hashes([(0, 0)])
    missing = TileHashReader(300, lambda wanted: [])
    with pytest.raises(TileDataError):
        missing.read_hashes([(0, 0)])


def test_a_proof_reads_one_tile_per_tile_level() -> None:
    asked: list[list[TileId]] = []

    def read(wanted: Sequence[TileId]) -> list[bytes]:
        asked.append(list(wanted))
        return GROWN.read(wanted)

    prove_inclusion(1234, 2000, TileHashReader(2000, read))
    assert len(asked) == 1
    assert len(asked[0]) <= 4


@given(entries=st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    bundle = encode_entry_bundle(entries)
    assert decode_entry_bundle(bundle) == entries
    assert decode_entry_bundle(bundle, len(entries)) == entries


def test_entry_bundle_bytes() -> None:
    assert encode_entry_bundle([b"", b"ab", b"\x00" * 256]) == (
        b"\x00\x00" + b"\x00\x02ab" + b"\x01\x00" + b"\x00" * 256
    )


def test_entries_of_65536_bytes_are_refused() -> None:
    assert decode_entry_bundle(encode_entry_bundle([b"x" * ENTRY_BYTES_MAX])) == [
        b"x" * ENTRY_BYTES_MAX
    ]
    with pytest.raises(EntryTooLargeError) as caught:
        encode_entry_bundle([b"x" * (ENTRY_BYTES_MAX + 1)])
    assert caught.value.code == "ledger.entry_too_large"
    assert caught.value.http_status == 413


@pytest.mark.parametrize(
    ("bundle", "width"),
    [
        (b"", None),
        (b"\x00", None),
        (b"\x00\x02a", None),
        (b"\x00\x01a\x00", None),
        (b"\x00\x01a\x00\x01b", 1),
        (b"\x00\x00" * 257, None),
    ],
)
def test_malformed_entry_bundles_are_refused(bundle: bytes, width: int | None) -> None:
    with pytest.raises(EntryBundleError):
        decode_entry_bundle(bundle, width)


def test_entry_bundles_grow_like_hash_tiles() -> None:
    entries = [i.to_bytes(3, "big") for i in range(700)]
    at_once = {tile.index: (tile, data) for tile, data in append_entry_bundles(0, b"", entries)}
    latest: dict[int, tuple[TileId, bytes]] = {}
    size = 0
    for chunk in (1, 254, 2, 300, 143):
        edge = latest[size // 256][1] if size % 256 else b""
        for tile, data in append_entry_bundles(size, edge, entries[size : size + chunk]):
            old = latest.get(tile.index)
            assert old is None or (old[0].is_partial and data.startswith(old[1]))
            latest[tile.index] = (tile, data)
        size += chunk
    assert latest == at_once
    assert at_once[2][0] == TileId(ENTRIES_LEVEL, 2, 188)
    assert decode_entry_bundle(at_once[2][1], 188) == entries[512:]
    with pytest.raises(EntryBundleError):
        append_entry_bundles(256, b"\x00\x00", [b"x"])
    with pytest.raises(EntryBundleError):
        append_entry_bundles(3, encode_entry_bundle([b"a", b"b"]), [b"x"])
