"""The one exception tree of NexaPod.

    NexaPodError                     code, HTTP status, detail
     +-- ProtocolError               protocol.*   malformed or oversized input
     +-- AuthError                   auth.*       signatures, timestamps, replays
     +-- RegistryError               registry.*   users, nodes, profiles
     +-- MeshError                   mesh.*       jobs, work units, leases, results
     +-- PoolError                   pools.*      pool membership, cold challenges
     +-- WorkloadError               workload.*   datasets and unit results
     +-- NodeError                   node.*       the node agent (never sent over HTTP)

Every leaf has a stable machine-readable ``code`` (``mesh.lease_expired``) and an HTTP
status. The coordinator renders them as RFC 9457 problem details; the CLI prints the
detail and the code. Library errors are translated where they happen with
``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "MeshError",
    "NexaPodError",
    "NodeError",
    "PoolError",
    "ProtocolError",
    "RegistryError",
    "WorkloadError",
]


class NexaPodError(Exception):
    """A failure with a stable code that a client can act on."""

    status: ClassVar[int] = 400
    area: ClassVar[str] = "nexapod"

    def __init__(self, name: str, detail: str, *, status: int | None = None, **extra: Any) -> None:
        assert name, "an error needs a name"
        assert "." not in name, "the area prefix is added by the class"
        super().__init__(detail)
        self.code = f"{self.area}.{name}"
        self.detail = detail
        self.http_status = status if status is not None else self.status
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.detail} [{self.code}]"


class ProtocolError(NexaPodError):
    area = "protocol"


class AuthError(NexaPodError):
    area = "auth"
    status = 401


class RegistryError(NexaPodError):
    area = "registry"


class MeshError(NexaPodError):
    area = "mesh"


class PoolError(NexaPodError):
    area = "pools"


class WorkloadError(NexaPodError):
    area = "workload"
    status = 422


class NodeError(NexaPodError):
    area = "node"
