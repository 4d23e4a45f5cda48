"""Tables of the pools area: membership, transitions, institutions and entitlements,
cold liveness challenges, and what each epoch's settlement and each week's stipends paid.

Every row that records a decision keeps the index of its entry in the ledger's log, so
the table is a fast view and the log the proof.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base
from nexapod.storage.types import ExactInteger

__all__ = [
    "ColdChallengeRow",
    "EntitlementRow",
    "InstitutionRow",
    "PoolMemberRow",
    "PoolTransitionRow",
    "RewardEpochRow",
    "StipendRow",
]


class PoolMemberRow(Base):
    """A node's pool now: ``hot``, ``warm``, ``cold``, ``institutional`` or ``none``."""

    __tablename__ = "pool_members"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), index=True)
    pool: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    since_ms: Mapped[int] = mapped_column(BigInteger)
    warm_opt_in: Mapped[bool] = mapped_column(Boolean, server_default=false())
    cold_opt_in: Mapped[bool] = mapped_column(Boolean, server_default=false())
    promoted: Mapped[bool] = mapped_column(Boolean, server_default=false())  # cold, on failover
    log_index: Mapped[int] = mapped_column(BigInteger)


class PoolTransitionRow(Base):
    """One move of a node between pools, with its reason (also an entry in the log)."""

    __tablename__ = "pool_transitions"

    transition_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(String(40), index=True)
    from_pool: Mapped[str] = mapped_column(String(16))
    to_pool: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    log_index: Mapped[int] = mapped_column(BigInteger)


class InstitutionRow(Base):
    """A user an operator verified as an institution (its nodes join the institutional pool)."""

    __tablename__ = "institutions"

    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    verified_at_ms: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)


class EntitlementRow(Base):
    """An Atlas++ access entitlement (``unlimited``, ``early_access``) for the atlas to honour."""

    __tablename__ = "atlas_entitlements"

    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    granted_at_ms: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)


class ColdChallengeRow(Base):
    """A liveness challenge to a cold node: a small check unit to sign and answer in time."""

    __tablename__ = "cold_challenges"

    challenge_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"))
    seed: Mapped[str] = mapped_column(String(64))
    expected_sha256: Mapped[str] = mapped_column(String(64))
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    deadline_at_ms: Mapped[int] = mapped_column(BigInteger)
    answered_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        Index("ix_cold_challenges_node_issued", "node_id", "issued_at_ms"),
        Index("ix_cold_challenges_deadline_at_ms", "deadline_at_ms"),  # migration 0010
    )


class RewardEpochRow(Base):
    """One settled epoch: what was owed and paid, the common USDC factor and the shortfall."""

    __tablename__ = "reward_epochs"

    epoch_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch_s: Mapped[int] = mapped_column(Integer)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    settled_at_ms: Mapped[int] = mapped_column(BigInteger)
    nodes_paid: Mapped[int] = mapped_column(Integer)
    flops_total: Mapped[int] = mapped_column(ExactInteger())
    nxc_micro_total: Mapped[int] = mapped_column(ExactInteger())
    usdc_owed_micro_total: Mapped[int] = mapped_column(ExactInteger())
    usdc_paid_micro_total: Mapped[int] = mapped_column(ExactInteger())
    usdc_shortfall_micro: Mapped[int] = mapped_column(ExactInteger())
    treasury_micro_usdc: Mapped[int] = mapped_column(ExactInteger())  # available at settlement
    log_index: Mapped[int] = mapped_column(BigInteger)  # the summary entry


class StipendRow(Base):
    """One cold node's stipend for one week (or its refusal, with the availability)."""

    __tablename__ = "cold_stipends"

    period_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    cold_s: Mapped[int] = mapped_column(Integer)
    challenges: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    nxc_micro: Mapped[int] = mapped_column(ExactInteger())
    usdc_micro: Mapped[int] = mapped_column(ExactInteger())
    paid_at_ms: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, server_default="")
