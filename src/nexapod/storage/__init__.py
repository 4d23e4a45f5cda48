"""Database plumbing shared by every area: engine, base class, unit of work, migrations."""

from nexapod.storage.base import Base
from nexapod.storage.engine import make_engine
from nexapod.storage.migrate import migrate_to_head
from nexapod.storage.types import ExactInteger
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory, unit_of_work_factory

__all__ = [
    "Base",
    "ExactInteger",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "make_engine",
    "migrate_to_head",
    "unit_of_work_factory",
]
