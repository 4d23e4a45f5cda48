"""The coordinator's log key: the Ed25519 key that signs every checkpoint.

It is created once, on first start, in the data directory (mode 0600), before any
worker process starts; losing it means starting a new log under a new key, so back it
up with the database. The key name in the vkey is the log's origin, as C2SP
tlog-checkpoint recommends.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from nexapod.crypto import SigningKey
from nexapod.ledger.integrator import LogIdentity
from nexapod.ledger.note import NoteSigner

__all__ = ["ensure_log_key", "load_log_identity"]


def ensure_log_key(path: Path) -> None:
    """Create the key file if it does not exist (never overwrites one)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            SigningKey.generate().save(path)


def load_log_identity(path: Path, origin: str) -> LogIdentity:
    """The signer of checkpoints for the log ``origin``, from the key file at ``path``."""
    key = SigningKey.load(path)
    return LogIdentity(origin=origin, signer=NoteSigner.from_seed(origin, key.seed()))
