"""Imports every area's tables so that ``Base.metadata`` knows them all (for Alembic)."""

from nexapod.ledger import store as ledger_store
from nexapod.ledger import tile_store as ledger_tile_store
from nexapod.mesh import store as mesh_store
from nexapod.policy import store as policy_store
from nexapod.pools import store as pools_store
from nexapod.registry import stats_store as registry_stats_store
from nexapod.registry import store as registry_store
from nexapod.storage.base import Base

__all__ = [
    "Base",
    "ledger_store",
    "ledger_tile_store",
    "mesh_store",
    "policy_store",
    "pools_store",
    "registry_stats_store",
    "registry_store",
]
