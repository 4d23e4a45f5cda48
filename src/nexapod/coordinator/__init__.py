"""The coordinator process: the FastAPI app, its context, auth, errors and maintenance."""

from nexapod.coordinator.app import create_app

__all__ = ["create_app"]
