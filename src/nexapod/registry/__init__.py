"""The registry: contributors, their nodes and hardware profiles, request authentication."""

__all__: list[str] = []
