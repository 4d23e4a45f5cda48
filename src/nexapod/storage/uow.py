"""One unit of work per use case: a session that commits explicitly or rolls back."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nexapod.storage.engine import READ_ONLY_OPTION

__all__ = ["UnitOfWork", "UnitOfWorkFactory", "unit_of_work_factory"]


class UnitOfWork:
    """``with uow:`` opens a transaction; leaving without ``commit()`` rolls it back."""

    def __init__(self, session_factory: sessionmaker[Session], *, read_only: bool = False) -> None:
        self._session_factory = session_factory
        self.read_only = read_only
        self._session: Session | None = None
        self.committed = False

    @property
    def session(self) -> Session:
        assert self._session is not None, "use the unit of work inside `with`"
        return self._session

    @property
    def dialect_name(self) -> str:
        return self.session.get_bind().dialect.name

    def __enter__(self) -> UnitOfWork:
        assert self._session is None, "a unit of work is not re-entrant"
        self._session = self._session_factory()
        self.committed = False
        if self.read_only:
            self._session.connection(execution_options={READ_ONLY_OPTION: True})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            if not self.committed:
                self._session.rollback()
        finally:
            self._session.close()
            self._session = None

    def commit(self) -> None:
        assert not self.read_only, "a read-only unit of work never commits"
        self.session.commit()
        self.committed = True


UnitOfWorkFactory = Callable[[], UnitOfWork]


def unit_of_work_factory(engine: Engine, *, read_only: bool = False) -> UnitOfWorkFactory:
    """A factory of units of work bound to ``engine``."""
    session_factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
    return lambda: UnitOfWork(session_factory, read_only=read_only)
