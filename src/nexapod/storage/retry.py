"""Run a transaction again when PostgreSQL aborted it to break a deadlock.

Two writers that lock the same rows in different orders (results of one job's replicas,
recorded at once by two coordinator threads, each marking both nodes' trust) can wait on
each other; PostgreSQL then aborts one of them with ``deadlock_detected`` (40P01), or,
under serializable isolation, ``serialization_failure`` (40001). The aborted transaction
changed nothing, so doing the same work again in a fresh one is correct, and is what the
PostgreSQL documentation asks of applications. Anything else propagates at once.

The abort is recognised whether it reaches the caller through SQLAlchemy (a
``DBAPIError`` wrapping the driver's error) or straight from the driver's own cursor, as
the store modules that write through ``storage.driver`` use it (psycopg's error, which
carries the ``sqlstate`` itself).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from nexapod.logs import log_event

__all__ = ["ATTEMPTS_MAX", "is_transient", "retrying_transient"]

ATTEMPTS_MAX = 4
_BACKOFF_S_MAX = 0.05
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization
_log = logging.getLogger("nexapod.storage")
T = TypeVar("T")


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction PostgreSQL aborted for another's sake."""
    return _sqlstate(exc) in _TRANSIENT_SQLSTATES


def retrying_transient(attempt: Callable[[], T], attempts_max: int = ATTEMPTS_MAX) -> T:
    """``attempt()``, run again (in its own fresh transaction, which ``attempt`` opens)
    after a transient abort, at most ``attempts_max`` times in all, with a short random
    pause so that the two colliding writers do not collide again."""
    assert attempts_max >= 1
    for attempt_index in range(1, attempts_max + 1):
        try:
            return attempt()
        except Exception as exc:
            if not is_transient(exc) or attempt_index == attempts_max:
                raise
            sqlstate = _sqlstate(exc)
            log_event(_log, "transaction.retried", attempt=attempt_index, sqlstate=sqlstate)
            time.sleep(random.uniform(0, _BACKOFF_S_MAX))
    raise AssertionError("unreachable: the last attempt returns or raises")
