"""An epoch's validated work per node, and the users whose nodes add up to a capacity,
read through the driver.

Settlement reads a row per node that worked in the epoch (100,000 and more), and must
know which of their users are institutional by capacity. Through SQLAlchemy, converting
those rows cost three times the queries themselves (0.7 s against 0.25 s for 100,000
nodes on SQLite), so the reads go through the driver (``storage.driver``), in the
settlement's own transaction, and rows are named tuples (a frozen dataclass per row
cost another 0.1 s). Summing every user's capacities in Python meant reading every
node; :func:`users_with_capacity_over` lets the database find the few users whose nodes
come near a threshold, in binary floating point as a sieve only, and the caller sums
those users' capacities exactly.

A node's FLOPs in an epoch may pass 2^63, where SQLite's SUM fails: they are summed in
two parts, ``flops / 10^6`` and ``flops mod 10^6``, each far inside 63 bits, and joined
in Python, exactly. Capacities are ExactInteger (decimal text on SQLite, NUMERIC on
PostgreSQL): ``int`` reads both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from nexapod.storage.driver import driver

__all__ = ["NodeEpochWork", "SPLIT", "epoch_work", "users_with_capacity_over"]

SPLIT = 10**6

# Valid results are summed per node first, from the partial covering index
# ix_results_valid_work alone (no result row is read), and only then joined to the nodes.
_EPOCH_WORK = f"""
SELECT r.node_id, n.username, n.capacity_flops_per_s, r.high, r.low, m.pool
FROM (
    SELECT node_id, SUM(work_flops / {SPLIT}) AS high,
           SUM(work_flops - (work_flops / {SPLIT}) * {SPLIT}) AS low
    FROM results
    WHERE status = 'valid' AND validated_at_ms >= ? AND validated_at_ms < ?
    GROUP BY node_id
) AS r
JOIN nodes AS n ON n.node_id = r.node_id
LEFT OUTER JOIN pool_members AS m ON m.node_id = r.node_id
ORDER BY r.node_id
"""
_USERS_OVER = (
    "SELECT username FROM nodes GROUP BY username "
    "HAVING SUM(CAST(capacity_flops_per_s AS DOUBLE PRECISION)) >= ?"
)
_FETCH_ROWS = 10_000


class NodeEpochWork(NamedTuple):
    node_id: str
    username: str
    capacity_flops_per_s: int
    flops: int
    pool: str | None  # None: the node was never placed in a pool


def epoch_work(session: Session, start_ms: int, end_ms: int) -> list[NodeEpochWork]:
    """Per node, its validated FLOPs in ``[start_ms, end_ms)``, ordered by node id."""
    assert 0 <= start_ms < end_ms
    cursor = driver(session)
    cursor.cursor.execute(cursor.sql(_EPOCH_WORK), (start_ms, end_ms))
    work = [
        NodeEpochWork(
            str(node_id), str(username), int(capacity), int(high) * SPLIT + int(low), pool
        )
        for node_id, username, capacity, high, low, pool in _rows(cursor.cursor)
    ]
    assert all(w.flops >= 0 for w in work)
    return work


def users_with_capacity_over(session: Session, flops_per_s: int) -> set[str]:
    """A superset of the users whose nodes' capacities add up to more than ``flops_per_s``.

    The database sums in doubles, which err by far less than half (each value and each
    addition by at most 2^-53 of the sum, so even 10^6 nodes stay within 2^-33), so every
    user whose exact total is above the threshold is among those whose double total
    reaches half of it. The caller sums these users' capacities exactly.
    """
    assert flops_per_s >= 0
    cursor = driver(session)
    cursor.cursor.execute(cursor.sql(_USERS_OVER), (float(flops_per_s) / 2,))
    return {str(username) for (username,) in _rows(cursor.cursor)}


def _rows(cursor: Any) -> Iterator[tuple[Any, ...]]:
    """A DBAPI cursor's rows, fetched a bounded batch at a time (values as the driver
    gives them: the callers convert each column they read)."""
    while rows := cursor.fetchmany(_FETCH_ROWS):
        yield from rows
