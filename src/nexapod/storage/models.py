"""Imports every area's tables so that ``Base.metadata`` knows them all (for Alembic)."""

from nexapod.mesh import store as mesh_store
from nexapod.registry import store as registry_store
from nexapod.storage.base import Base

__all__ = ["Base", "mesh_store", "registry_store"]
