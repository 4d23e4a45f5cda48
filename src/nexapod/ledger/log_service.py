"""Reading the log for clients: tiles, entry bundles, checkpoints, proofs and receipts.

Everything served is bounded by the newest checkpoint: a client never sees a tile,
entry or proof the signed tree head does not cover, so whatever it fetches can be
checked against a checkpoint it can also fetch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from nexapod.ledger.integrator import LogIdentity, integrate_pending
from nexapod.ledger.log_errors import (
    CheckpointNotFoundError,
    LogCorruptError,
    NotIntegratedError,
    ProofRequestError,
    TileNotFoundError,
)
from nexapod.ledger.log_store import read_entries
from nexapod.ledger.merkle import (
    HASH_SIZE,
    TREE_SIZE_MAX,
    SubtreeCoord,
    prove_consistency,
    prove_inclusion,
)
from nexapod.ledger.receipts import b64_hash, make_receipt
from nexapod.ledger.tile_store import (
    StoredCheckpoint,
    checkpoint_at,
    latest_checkpoint,
    read_tiles,
    read_tiles_with_nodes,
)
from nexapod.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    inner_node,
    parse_tile_path,
    tile_width,
)
from nexapod.protocol.v1.ledger_log import ConsistencyProof, InclusionProof, Receipt
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = [
    "RECEIPT_WAIT_S_MAX",
    "await_receipts",
    "consistency_proof",
    "current_checkpoint",
    "inclusion_proof",
    "receipt",
    "stored_checkpoint",
    "tile_bytes",
]


def current_checkpoint(session: Session) -> StoredCheckpoint:
    checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise CheckpointNotFoundError(
            "the log has no checkpoint yet: the coordinator signs one within a second of start"
        )
    return checkpoint


def stored_checkpoint(session: Session, tree_size: int) -> StoredCheckpoint:
    checkpoint = checkpoint_at(session, tree_size)
    if checkpoint is None:
        raise CheckpointNotFoundError(f"no checkpoint was signed at tree size {tree_size}")
    return checkpoint


def tile_bytes(session: Session, path: str) -> bytes:
    """The bytes of ``tile/<path>`` as tlog-tiles serves them, within the newest checkpoint."""
    tile = parse_tile_path(f"tile/{path}")
    tree_size = current_checkpoint(session).tree_size
    level = max(tile.level, 0)
    available = tile_width(tree_size, level, tile.index)
    if available < tile.width:
        raise TileNotFoundError(f"tile {tile.path} is beyond the log's {tree_size} entries")
    if tile.is_entries:
        start = tile.index * TILE_WIDTH
        rows = read_entries(session, start, start + tile.width)
        if [index for index, _, _ in rows] != list(range(start, start + tile.width)):
            raise LogCorruptError(f"entries {start}..{start + tile.width - 1} are not all stored")
        return encode_entry_bundle([entry for _, entry, _ in rows])
    data = read_tiles(session, [tile]).get((tile.level, tile.index), b"")
    if len(data) < tile.width * HASH_SIZE:
        raise TileNotFoundError(f"tile {tile.path} is not stored")
    return data[: tile.width * HASH_SIZE]


class _StoredTileReader:
    """Subtree hashes straight from stored tiles and their inner nodes: one query, no hashing.

    A subtree of height 8L + j starting at leaf ``i`` is node j of tile (L, i >> 8(L+1))
    (see ``tiles.inner_node``); a proof reads at most one tile per tile level.
    """

    def __init__(self, session: Session, tree_size: int) -> None:
        self._session = session
        self._tree_size = tree_size

    def read_hashes(self, coords: Sequence[SubtreeCoord]) -> list[bytes]:
        plan = []
        for level, index in coords:
            if level < 0 or index < 0 or (index + 1) << level > self._tree_size:
                raise ProofRequestError(f"subtree ({level}, {index}) is not in the tree")
            tile_level, height = divmod(level, TILE_HEIGHT)
            tile_index, offset = divmod(index << height, TILE_WIDTH)
            plan.append((tile_level, tile_index, height, offset))
        keys = list(dict.fromkeys((lv, ix) for lv, ix, _, _ in plan))
        stored = read_tiles_with_nodes(self._session, keys)
        hashes = []
        for tile_level, tile_index, height, offset in plan:
            found = stored.get((tile_level, tile_index))
            if found is None:
                raise TileNotFoundError(f"tile {tile_level}/{tile_index} is not stored")
            data, nodes = found
            hashes.append(inner_node(data, nodes, height, offset))
        return hashes


def _reader(session: Session, tree_size: int) -> _StoredTileReader:
    return _StoredTileReader(session, tree_size)


def _tree_size(session: Session, tree_size: int | None) -> int:
    latest = current_checkpoint(session).tree_size
    if tree_size is None:
        return latest
    if not 0 <= tree_size <= TREE_SIZE_MAX:
        raise ProofRequestError(f"tree size {tree_size} is out of range")
    if tree_size > latest:
        raise NotIntegratedError(
            f"the newest checkpoint covers {latest} entries, not {tree_size}: ask again shortly"
        )
    return tree_size


def inclusion_proof(session: Session, leaf_index: int, tree_size: int | None) -> InclusionProof:
    size = _tree_size(session, tree_size)
    if not 0 <= leaf_index < size:
        if leaf_index >= size and tree_size is None:
            raise NotIntegratedError(
                f"entry {leaf_index} is not covered by the newest checkpoint ({size} entries) yet"
            )
        raise ProofRequestError(f"entry {leaf_index} is not in a tree of {size} entries")
    hashes = prove_inclusion(leaf_index, size, _reader(session, size))
    return InclusionProof(
        leaf_index=leaf_index, tree_size=size, hashes=[b64_hash(h) for h in hashes]
    )


def consistency_proof(session: Session, old_size: int, new_size: int | None) -> ConsistencyProof:
    size = _tree_size(session, new_size)
    if not 0 <= old_size <= size:
        raise ProofRequestError(f"old size {old_size} is not within 0..{size}")
    hashes = prove_consistency(old_size, size, _reader(session, size))
    return ConsistencyProof(old_size=old_size, new_size=size, hashes=[b64_hash(h) for h in hashes])


def receipt(session: Session, origin: str, leaf_index: int) -> Receipt:
    """The entry at ``leaf_index`` with its proof to the newest checkpoint."""
    checkpoint = current_checkpoint(session)
    size = checkpoint.tree_size
    if leaf_index < 0:
        raise ProofRequestError(f"entry {leaf_index} does not exist")
    if leaf_index >= size:
        raise NotIntegratedError(
            f"entry {leaf_index} is not covered by the newest checkpoint ({size} entries) yet"
        )
    hashes = prove_inclusion(leaf_index, size, _reader(session, size))
    rows = read_entries(session, leaf_index, leaf_index + 1)
    assert len(rows) == 1
    return make_receipt(origin, rows[0][1], leaf_index, size, hashes, checkpoint.note)


RECEIPT_WAIT_S_MAX = 10.0
_RECEIPT_POLL_S = 0.02


def await_receipts(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    log: LogIdentity,
    leaf_indexes: Sequence[int],
    clock_ms: Callable[[], int],
    entries_max: int,
) -> list[Receipt] | None:
    """Receipts for committed entries, integrating them now rather than at the next tick.

    Another process may hold the integrator lock; then this waits for its checkpoint.
    None when no checkpoint covers the entries within ``RECEIPT_WAIT_S_MAX`` (the
    entries are committed all the same; ``GET /v1/ledger/receipts/{i}`` has them later).
    """
    if not leaf_indexes:
        return []
    needed = max(leaf_indexes) + 1
    deadline = time.monotonic() + RECEIPT_WAIT_S_MAX
    while True:
        integrate_pending(uow_factory, log, clock_ms(), entries_max)
        with read_uow_factory() as uow:
            latest = latest_checkpoint(uow.session)
            if latest is not None and latest.tree_size >= needed:
                return [receipt(uow.session, log.origin, index) for index in leaf_indexes]
        if time.monotonic() >= deadline:
            return None
        time.sleep(_RECEIPT_POLL_S)
