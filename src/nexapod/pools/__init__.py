"""Pool membership and transitions, capacity and caps, failover, stipends and reward
settlement (ECONOMICS.md sections 2 to 5)."""

__all__: list[str] = []
