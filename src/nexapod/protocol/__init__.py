"""Versioned wire messages shared by the coordinator and the node agent."""

__all__: list[str] = []
