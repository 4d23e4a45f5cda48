"""Availability of cold nodes: their challenges over a window, and how many they passed.

What the weekly stipend is computed from (ECONOMICS.md §4, docs/cold-challenges.md). A
challenge belongs to the window its **deadline** falls in, so every challenge counted is
decided by the window's end and windows that partition time count each challenge once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from nexapod.pools.challenges import Availability
from nexapod.pools.store import ColdChallengeRow
from nexapod.settings import COLD_CHALLENGE_DEADLINE_S_MAX

__all__ = ["Availability", "availability", "availability_by_node"]

# A challenge's deadline is at most this long after its issue: the issue range a query
# gives the (node_id, issued_at_ms) index.
_DEADLINE_MS_MAX = COLD_CHALLENGE_DEADLINE_S_MAX * 1000


def availability(session: Session, node_id: str, start_ms: int, end_ms: int) -> Availability:
    """The node's challenges whose deadline falls in ``[start_ms, end_ms)``, and how many
    of them it answered right and in time (ECONOMICS.md §4).

    Every such challenge is decided by ``end_ms``, so once ``end_ms`` has passed the figure
    is final; windows that partition time count each challenge once. Before ``end_ms``, an
    open challenge counts as issued and not (yet) answered.
    """
    assert 0 <= start_ms <= end_ms
    issued, passed = session.execute(
        select(func.count(), _passed_count()).where(
            ColdChallengeRow.node_id == node_id, *_deadline_in(start_ms, end_ms)
        )
    ).one()
    return Availability(issued=int(issued), answered_in_time=int(passed or 0))


def availability_by_node(session: Session, start_ms: int, end_ms: int) -> dict[str, Availability]:
    """:func:`availability` of every node challenged in the window, in one query.

    A node absent from the result was not challenged: its availability is
    ``Availability(0, 0)``.
    """
    assert 0 <= start_ms <= end_ms
    rows = session.execute(
        select(ColdChallengeRow.node_id, func.count(), _passed_count())
        .where(*_deadline_in(start_ms, end_ms))
        .group_by(ColdChallengeRow.node_id)
    ).all()
    return {
        node_id: Availability(issued=int(issued), answered_in_time=int(passed or 0))
        for node_id, issued, passed in rows
    }


def _passed_count() -> Any:
    return func.sum(case((ColdChallengeRow.passed.is_(True), 1), else_=0))


def _deadline_in(start_ms: int, end_ms: int) -> tuple[Any, ...]:
    """A deadline in [start_ms, end_ms), with the issue range the index can use."""
    return (
        ColdChallengeRow.issued_at_ms >= start_ms - _DEADLINE_MS_MAX,
        ColdChallengeRow.issued_at_ms < end_ms,
        ColdChallengeRow.deadline_at_ms >= start_ms,
        ColdChallengeRow.deadline_at_ms < end_ms,
    )
