"""The ledger: accounts, transfers, holds, and the Merkle log that makes them provable."""

__all__: list[str] = []
