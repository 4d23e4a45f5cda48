"""Errors of the simulator (``sim.*``): each with a stable code, as everywhere."""

from __future__ import annotations

from nexapod.errors import NexaPodError

__all__ = ["INSTALL_HINT", "SimError", "matplotlib_missing", "store_not_empty"]

INSTALL_HINT = "pip install 'nexapod[sim]'  (or: pip install 'matplotlib>=3.8')"


class SimError(NexaPodError):
    area = "sim"
    status = 422


def matplotlib_missing() -> SimError:
    return SimError(
        "matplotlib_missing",
        f"the simulator's charts need matplotlib: {INSTALL_HINT}; or run with --no-charts",
        status=500,
    )


def store_not_empty(url: str) -> SimError:
    return SimError(
        "store_not_empty",
        f"the simulator runs on a fresh store, and {url} already holds nodes: "
        "give a new database (or none, for a throwaway one)",
        status=409,
    )
