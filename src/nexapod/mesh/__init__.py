"""The mesh: jobs, work units, leases, signed results and merged products."""

__all__: list[str] = []
