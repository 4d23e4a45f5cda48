"""Tables of the registry: contributors, their nodes, runner releases, seen request nonces."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base
from nexapod.storage.types import ExactInteger

__all__ = ["BlacklistRow", "NodeRow", "ReleaseRow", "RequestNonceRow", "UserRow"]


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    registration_document: Mapped[str] = mapped_column(Text)
    registration_signature: Mapped[str] = mapped_column(String(128))
    registration_sha256: Mapped[str] = mapped_column(String(64))
    registered_at_ms: Mapped[int] = mapped_column(BigInteger)


class NodeRow(Base):
    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    registration_document: Mapped[str] = mapped_column(Text)
    node_signature: Mapped[str] = mapped_column(String(128))
    user_signature: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    capacity_flops_per_s: Mapped[int] = mapped_column(ExactInteger())
    runner_tree_hash: Mapped[str] = mapped_column(String(64))
    registered_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_at_ms: Mapped[int] = mapped_column(BigInteger)


class RequestNonceRow(Base):
    """A nonce seen from a signer; kept until its timestamp leaves the skew window."""

    __tablename__ = "request_nonces"

    key_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_request_nonces_expires_at_ms", "expires_at_ms"),)


class ReleaseRow(Base):
    """A runner release: a tree hash whose manifest an operator's release key signed."""

    __tablename__ = "runner_releases"

    tree_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    release_public_key: Mapped[str] = mapped_column(String(64))
    manifest_json: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))
    published_at_ms: Mapped[int] = mapped_column(BigInteger)


class BlacklistRow(Base):
    """A blacklisting: a node, its fingerprint and (by policy) its user, with the evidence.

    An entry is active until lifted; each listing and lifting is an entry in the
    ledger's log (``*_log_index``), so the blacklist's history is auditable.
    """

    __tablename__ = "blacklist_entries"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    username: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    reason_code: Mapped[str] = mapped_column(String(64))
    evidence_json: Mapped[str] = mapped_column(Text)
    listed_at_ms: Mapped[int] = mapped_column(BigInteger)
    listed_log_index: Mapped[int] = mapped_column(BigInteger)
    lifted_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    lifted_log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
