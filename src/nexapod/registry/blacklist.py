"""The blacklist: nodes, fingerprints and users caught tampering, with the evidence.

A listing names the node, its hardware fingerprint and, when the coordinator's policy
says so (``blacklist_user_on_tampering``), its user: a cheater cannot come back with a
new node key on the same machine, nor (by policy) with another machine under the same
name. Listing and lifting happen in the caller's transaction together with one entry
in the ledger's log, so the blacklist's whole history can be audited by anyone who
verifies the log; the evidence itself stays in the coordinator's database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from nexapod.crypto import canonical_json, canonical_sha256_hex
from nexapod.ledger import log_store
from nexapod.pools.membership import remove_from_pools
from nexapod.registry import errors
from nexapod.registry.store import BlacklistRow, NodeRow
from nexapod.storage.uow import UnitOfWork

__all__ = [
    "EVIDENCE_BYTES_MAX",
    "LIFT_REASON_CHARS_MAX",
    "BlacklistEntry",
    "active_entry",
    "get_entry",
    "lift_entry",
    "list_entries",
    "listed_node_ids",
    "list_node",
]

EVIDENCE_BYTES_MAX = 4096
LIFT_REASON_CHARS_MAX = 500
ENTRIES_LISTED_MAX = 1000


@dataclass(frozen=True)
class BlacklistEntry:
    """An entry, detached from the database (what the CLI and the API show)."""

    entry_id: int
    node_id: str | None
    fingerprint: str | None
    username: str | None
    reason_code: str
    evidence: dict[str, Any]
    listed_at_ms: int
    listed_log_index: int
    lifted_at_ms: int | None
    lift_reason: str | None
    lifted_log_index: int | None

    @property
    def active(self) -> bool:
        return self.lifted_at_ms is None


def active_entry(
    session: Session,
    *,
    node_id: str | None = None,
    fingerprint: str | None = None,
    username: str | None = None,
) -> BlacklistRow | None:
    """The oldest active entry naming any of these, or None."""
    conditions = []
    if node_id is not None:
        conditions.append(BlacklistRow.node_id == node_id)
    if fingerprint is not None:
        conditions.append(BlacklistRow.fingerprint == fingerprint)
    if username is not None:
        conditions.append(BlacklistRow.username == username)
    if not conditions:
        return None
    return session.scalars(
        select(BlacklistRow)
        .where(BlacklistRow.lifted_at_ms.is_(None), or_(*conditions))
        .order_by(BlacklistRow.entry_id)
        .limit(1)
    ).first()


def listed_node_ids() -> Select[str | None]:
    """The ids of nodes with an active entry, as a subquery (``.not_in(listed_node_ids())``)."""
    return select(BlacklistRow.node_id).where(
        BlacklistRow.node_id.is_not(None), BlacklistRow.lifted_at_ms.is_(None)
    )


def list_node(
    session: Session,
    node_id: str,
    reason_code: str,
    evidence: dict[str, Any],
    now_ms: int,
    *,
    include_user: bool,
) -> BlacklistRow:
    """Blacklist a node (its fingerprint, and its user when ``include_user``) in the
    caller's transaction, with a ``blacklist_listed`` log entry. A node already listed
    keeps its first entry: one act of tampering is enough, and the first is the evidence.
    """
    assert reason_code and len(reason_code) <= 64
    node = session.get(NodeRow, node_id)
    assert node is not None, "only registered nodes are caught"
    existing = active_entry(session, node_id=node_id)
    if existing is not None:
        return existing
    evidence_json = canonical_json(evidence)
    assert len(evidence_json) <= EVIDENCE_BYTES_MAX, "evidence is a short summary"
    username = node.username if include_user else None
    body = {
        "node_id": node_id,
        "fingerprint": node.fingerprint,
        "username": username,
        "reason_code": reason_code,
        "evidence_sha256": canonical_sha256_hex(evidence),
        "at_ms": now_ms,
    }
    log_index = log_store.append_entries(session, "blacklist_listed", [body])
    row = BlacklistRow(
        node_id=node_id,
        fingerprint=node.fingerprint,
        username=username,
        reason_code=reason_code,
        evidence_json=evidence_json.decode(),
        listed_at_ms=now_ms,
        listed_log_index=log_index,
    )
    session.add(row)
    session.flush()
    leaving = [node_id]
    if username is not None:
        leaving = list(session.scalars(select(NodeRow.node_id).where(NodeRow.username == username)))
    remove_from_pools(session, leaving, now_ms)
    return row


def lift_entry(uow: UnitOfWork, entry_id: int, reason: str, now_ms: int) -> BlacklistEntry:
    """An operator lifts an entry, with a reason, logged as ``blacklist_lifted``. Commits."""
    reason = reason.strip()
    if not reason or len(reason) > LIFT_REASON_CHARS_MAX:
        raise errors.lift_reason_invalid(LIFT_REASON_CHARS_MAX)
    session = uow.session
    row = session.get(BlacklistRow, entry_id, with_for_update=True)
    if row is None:
        raise errors.blacklist_entry_unknown(entry_id)
    if row.lifted_at_ms is not None:
        raise errors.blacklist_entry_lifted(entry_id)
    body = {"entry_id": entry_id, "reason": reason, "at_ms": now_ms}
    row.lifted_log_index = log_store.append_entries(session, "blacklist_lifted", [body])
    row.lifted_at_ms = now_ms
    row.lift_reason = reason
    entry = _entry(row)
    uow.commit()
    return entry


def get_entry(uow: UnitOfWork, entry_id: int) -> BlacklistEntry:
    row = uow.session.get(BlacklistRow, entry_id)
    if row is None:
        raise errors.blacklist_entry_unknown(entry_id)
    return _entry(row)


def list_entries(uow: UnitOfWork, *, include_lifted: bool, limit: int) -> list[BlacklistEntry]:
    """Entries, newest first, at most ``limit`` (itself at most ENTRIES_LISTED_MAX)."""
    assert limit >= 1
    query = select(BlacklistRow).order_by(BlacklistRow.entry_id.desc())
    if not include_lifted:
        query = query.where(BlacklistRow.lifted_at_ms.is_(None))
    rows = uow.session.scalars(query.limit(min(limit, ENTRIES_LISTED_MAX)))
    return [_entry(row) for row in rows]


def _entry(row: BlacklistRow) -> BlacklistEntry:
    return BlacklistEntry(
        entry_id=row.entry_id,
        node_id=row.node_id,
        fingerprint=row.fingerprint,
        username=row.username,
        reason_code=row.reason_code,
        evidence=json.loads(row.evidence_json),
        listed_at_ms=row.listed_at_ms,
        listed_log_index=row.listed_log_index,
        lifted_at_ms=row.lifted_at_ms,
        lift_reason=row.lift_reason,
        lifted_log_index=row.lifted_log_index,
    )
