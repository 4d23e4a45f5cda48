"""A bounded on-disk cache of input blocks, addressed by their SHA-256."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

__all__ = ["BlockCache"]


class BlockCache:
    """Blocks a node has downloaded, so units sharing a block fetch it once.

    Only the node writes here (the cache lives outside every sandbox), and a block enters
    only after its caller checked it against its name, so entries are not hashed again on
    the way out. The least recently used are evicted when the cache passes ``bytes_max``.
    """

    def __init__(self, root: Path, bytes_max: int) -> None:
        assert bytes_max > 0
        self.root = root
        self.bytes_max = bytes_max
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def get(self, sha256: str) -> bytes | None:
        """A cached block's bytes, or None."""
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

    def link_into(self, sha256: str, destination: Path) -> bool:
        """Give ``destination`` a cached block without copying it; False when not cached.

        A hard link shares the bytes and keeps them for as long as ``destination`` exists,
        even if the block is evicted meanwhile (a copy where the two directories sit on
        different file systems). Whoever reads ``destination`` must not be able to write it:
        the node binds its inputs read-only into the sandbox.
        """
        path = self.root / sha256
        with self._lock:  # eviction cannot unlink between the check and the link
            try:
                if path.stat().st_size == 0:
                    path.unlink()
                    return False
                os.utime(path)
                try:
                    os.link(path, destination)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    shutil.copyfile(path, destination)
            except FileNotFoundError:
                return False
        return True

    def put_verified(self, sha256: str, data: bytes) -> None:
        """Store a block its caller checked against ``sha256`` (a block larger than the
        whole cache is not kept)."""
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
