"""Stored tiles and checkpoints of the ledger's log, and reads of them for proofs and serving.

Tiles are kept by (level, index) with their current width: a partial tile is widened in
place as the log grows, and a tile of width W serves any partial tile ``.p/w`` with w <= W
(hashes in a tile never change; later tiles only extend them). Every signed checkpoint
is kept, so any past tree head can be shown and proven consistent with the newest.
Entry bundles are not stored: they are built from the log's entries on request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from nexapod.ledger.tiles import TileId, tile_inner_nodes
from nexapod.storage.base import Base

__all__ = [
    "CHECKPOINTS",
    "TILES",
    "StoredCheckpoint",
    "checkpoint_at",
    "insert_checkpoint",
    "latest_checkpoint",
    "read_tiles",
    "read_tiles_with_nodes",
    "write_tiles",
]

_metadata: MetaData = Base.metadata

TILES = Table(
    "ledger_tiles",
    _metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("tile_index", BigInteger, primary_key=True, autoincrement=False),
    Column("width", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("nodes", LargeBinary, nullable=False),  # tiles.tile_inner_nodes(data)
)

CHECKPOINTS = Table(
    "ledger_checkpoints",
    _metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("signed_at_ms", BigInteger, nullable=False),
)

_TILES_PER_QUERY_MAX = 64


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str
    signed_at_ms: int


def read_tiles(session: Session, tiles: Sequence[TileId]) -> dict[tuple[int, int], bytes]:
    """Stored data of each (level, index) asked for that exists, at its stored width."""
    rows = _read_rows(session, [(t.level, t.index) for t in tiles], with_nodes=False)
    return {(int(row[0]), int(row[1])): bytes(row[2]) for row in rows}


def read_tiles_with_nodes(
    session: Session, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """(data, inner nodes) of each stored (level, index) asked for."""
    rows = _read_rows(session, keys, with_nodes=True)
    return {(int(row[0]), int(row[1])): (bytes(row[2]), bytes(row[3])) for row in rows}


def _read_rows(session: Session, keys: Sequence[tuple[int, int]], *, with_nodes: bool) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(keys), _TILES_PER_QUERY_MAX):
        chunk = keys[start : start + _TILES_PER_QUERY_MAX]
        parameters: dict[str, int] = {}
        for i, (level, index) in enumerate(chunk):
            parameters[f"l{i}"] = level
            parameters[f"i{i}"] = index
        rows.extend(session.execute(_lookup(len(chunk), with_nodes), parameters).all())
    return rows


@functools.cache
def _lookup(count: int, with_nodes: bool) -> Select[Any]:
    """The statement for ``count`` tiles, built once per shape (a proof reads one tile per
    tile level, a served tile is one), written as OR'ed primary-key lookups, which
    SQLite and PostgreSQL both answer from the index (a row-value IN list is scanned)."""
    assert 1 <= count <= _TILES_PER_QUERY_MAX
    columns = [TILES.c.level, TILES.c.tile_index, TILES.c.data]
    if with_nodes:
        columns.append(TILES.c.nodes)
    lookups = [
        and_(TILES.c.level == bindparam(f"l{i}"), TILES.c.tile_index == bindparam(f"i{i}"))
        for i in range(count)
    ]
    return select(*columns).where(or_(*lookups))


def write_tiles(
    session: Session,
    tiles: Iterable[tuple[TileId, bytes]],
    inner_nodes: Mapping[tuple[int, int], bytes] | None = None,
) -> int:
    """Store tiles, replacing a narrower version of the same (level, index).

    ``inner_nodes`` holds the ``tile_inner_nodes`` of some of them, already computed (by
    ``tiles.integrate``); the others are hashed here.
    """
    known = inner_nodes or {}
    rows: list[dict[str, Any]] = []
    for tile, data in tiles:
        assert tile.level >= 0, "entry bundles are not stored"
        nodes = known.get((tile.level, tile.index))
        if nodes is None:
            nodes = tile_inner_nodes(data)
        rows.append(
            {
                "level": tile.level,
                "tile_index": tile.index,
                "width": tile.width,
                "data": data,
                "nodes": nodes,
            }
        )
    if not rows:
        return 0
    for start in range(0, len(rows), _TILES_PER_QUERY_MAX):
        chunk = rows[start : start + _TILES_PER_QUERY_MAX]
        session.execute(
            delete(TILES).where(
                or_(
                    *(
                        and_(TILES.c.level == r["level"], TILES.c.tile_index == r["tile_index"])
                        for r in chunk
                    )
                )
            )
        )
    session.execute(insert(TILES), rows)
    return len(rows)


def latest_checkpoint(session: Session) -> StoredCheckpoint | None:
    row = session.execute(
        select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)
    ).first()
    return None if row is None else _checkpoint(row)


def checkpoint_at(session: Session, tree_size: int) -> StoredCheckpoint | None:
    row = session.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.tree_size == tree_size)).first()
    return None if row is None else _checkpoint(row)


def insert_checkpoint(session: Session, checkpoint: StoredCheckpoint) -> None:
    session.execute(
        insert(CHECKPOINTS).values(
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            note=checkpoint.note,
            signed_at_ms=checkpoint.signed_at_ms,
        )
    )


def _checkpoint(row: Row[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        tree_size=int(row.tree_size),
        root_hash=bytes(row.root_hash),
        note=str(row.note),
        signed_at_ms=int(row.signed_at_ms),
    )
