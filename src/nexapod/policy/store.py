"""The history of the policies a coordinator ran with (each also an entry in the log)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base

__all__ = ["PolicyActivationRow"]


class PolicyActivationRow(Base):
    __tablename__ = "policy_history"

    activation_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    policy_json: Mapped[str] = mapped_column(Text)
    activated_at_ms: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)
