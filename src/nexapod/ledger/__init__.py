"""The ledger: accounts, transfers, holds, and the Merkle log that makes them provable."""
