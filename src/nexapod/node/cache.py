"""A bounded on-disk cache of input blocks, addressed by their SHA-256."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from nexapod.crypto import sha256_hex

__all__ = ["BlockCache"]


class BlockCache:
    """Blocks a node has downloaded, so units sharing a block fetch it once.

    Entries are verified against their name before they are stored; the oldest are
    evicted when the cache passes ``bytes_max``.
    """

    def __init__(self, root: Path, bytes_max: int) -> None:
        assert bytes_max > 0
        self.root = root
        self.bytes_max = bytes_max
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def get(self, sha256: str) -> bytes | None:
        """A cached block. Blocks are hashed once, when they arrive: the cache lives outside
        every sandbox (units get copies), so only the node itself writes here."""
        path = self.root / sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) == 0:
            path.unlink(missing_ok=True)
            return None
        os.utime(path)
        return data

    def put(self, sha256: str, data: bytes) -> None:
        assert sha256_hex(data) == sha256, "only verified blocks enter the cache"
        if len(data) > self.bytes_max:
            return
        with self._lock:
            temporary = self.root / f".{sha256}.{threading.get_ident()}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.root / sha256)
            self._evict()

    def _evict(self) -> None:
        entries = []
        for path in self.root.iterdir():
            if path.name.startswith("."):
                continue
            stat = path.stat()
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.bytes_max:
                break
            path.unlink(missing_ok=True)
            total -= size
