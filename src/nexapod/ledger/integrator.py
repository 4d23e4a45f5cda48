"""The log's integrator: new entries into tiles and a signed checkpoint, one process at a time.

Appends (``log_store.append_entries``) only number entries and store their leaf hashes,
inside the transaction of the change they record. Turning them into the Merkle tree is
done here, after commit, as Tessera does: read the entries past the last checkpoint,
hash them up through the right-edge tiles, store every created or widened tile, index
the transfers among them under their accounts (``history.index_history``), and sign a
checkpoint for the new size, all in one transaction. A checkpoint therefore never covers
an entry that did not commit, and tiles, account histories and checkpoint move together.

With several coordinator processes on PostgreSQL, a transaction-level advisory lock
(:data:`INTEGRATOR_LOCK_KEY`, tried, never waited on) lets one integrate while the others
skip the round; on SQLite the write transaction already serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from nexapod.ledger.checkpoint import Checkpoint, sign_checkpoint
from nexapod.ledger.history import index_history
from nexapod.ledger.log_store import READ_ENTRIES_MAX, read_leaf_hashes, read_tree_size
from nexapod.ledger.merkle import HASH_SIZE
from nexapod.ledger.note import NoteSigner
from nexapod.ledger.tile_store import (
    StoredCheckpoint,
    insert_checkpoint,
    latest_checkpoint,
    read_tiles,
    write_tiles,
)
from nexapod.ledger.tiles import edge_tiles, integrate
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["INTEGRATOR_LOCK_KEY", "LogIdentity", "integrate_pending"]

INTEGRATOR_LOCK_KEY = int.from_bytes(b"NXLOGINT", "big")
"""The PostgreSQL advisory lock of the integrator: the ASCII bytes ``NXLOGINT``."""

assert 0 < INTEGRATOR_LOCK_KEY < 2**63


@dataclass(frozen=True)
class LogIdentity:
    """Who signs the log's checkpoints, and the origin line they carry."""

    origin: str
    signer: NoteSigner


def integrate_pending(
    uow_factory: UnitOfWorkFactory,
    log: LogIdentity,
    now_ms: int,
    entries_max: int,
    *,
    read_uow_factory: UnitOfWorkFactory | None = None,
) -> StoredCheckpoint | None:
    """Integrate up to ``entries_max`` new entries; the new checkpoint, or None.

    None when there is nothing new, or when another process holds the integrator lock.
    With ``read_uow_factory`` an idle log is seen without taking the write lock.
    The very first call on an empty log signs the checkpoint of size 0, so a verifier
    always has a tree head to start from.
    """
    assert entries_max >= 1
    if read_uow_factory is not None:  # look first without the write lock: usually idle
        with read_uow_factory() as uow:
            last = latest_checkpoint(uow.session)
            if last is not None and read_tree_size(uow.session) == last.tree_size:
                return None
    with uow_factory() as uow:
        session = uow.session
        if not _try_lock(session):
            return None
        last = latest_checkpoint(session)
        old_size = 0 if last is None else last.tree_size
        new_size = min(read_tree_size(session), old_size + entries_max)
        if last is not None and new_size == old_size:
            return None
        wanted = edge_tiles(old_size)
        stored = read_tiles(session, wanted)
        edge = {}
        for tile in wanted:
            data = stored[(tile.level, tile.index)]
            edge[tile.level] = data[: tile.width * HASH_SIZE]
        leaf_hashes: list[bytes] = []
        for start in range(old_size, new_size, READ_ENTRIES_MAX):
            stop = min(new_size, start + READ_ENTRIES_MAX)
            leaf_hashes.extend(read_leaf_hashes(session, start, stop))  # refuses a gap
        assert len(leaf_hashes) == new_size - old_size
        result = integrate(old_size, edge, leaf_hashes)
        assert result.tree_size == new_size
        write_tiles(session, result.tiles, result.inner_nodes)
        index_history(session, old_size, new_size)
        note = sign_checkpoint(Checkpoint(log.origin, new_size, result.root_hash), log.signer)
        checkpoint = StoredCheckpoint(new_size, result.root_hash, note, now_ms)
        insert_checkpoint(session, checkpoint)
        uow.commit()
    return checkpoint


def _try_lock(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: this write transaction holds the database's write lock
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": INTEGRATOR_LOCK_KEY}
    ).scalar_one()
    return bool(locked)
