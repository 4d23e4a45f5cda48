"""The node's block cache: bounded, least recently used first, linked out without copies."""

from __future__ import annotations

import os
from pathlib import Path

from nexapod.crypto import sha256_hex
from nexapod.node.cache import BlockCache


def _block(fill: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([fill]) * size
    return sha256_hex(data), data


def test_a_linked_block_shares_the_cached_bytes(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 10_000)
    name, data = _block(1)
    cache.put_verified(name, data)
    destination = tmp_path / "unit.npy"

    assert cache.link_into(name, destination)

    assert destination.read_bytes() == data
    assert os.stat(destination).st_ino == os.stat(tmp_path / "cache" / name).st_ino


def test_a_block_not_cached_is_not_linked(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 10_000)
    destination = tmp_path / "unit.npy"

    assert not cache.link_into(_block(1)[0], destination)
    assert not destination.exists()


def test_an_empty_entry_is_dropped_not_linked(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 10_000)
    name, _ = _block(1)
    (tmp_path / "cache" / name).write_bytes(b"")  # a crash between create and write

    assert not cache.link_into(name, tmp_path / "unit.npy")
    assert not (tmp_path / "cache" / name).exists()


def test_eviction_keeps_the_bytes_a_unit_holds(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 2_500)
    first, first_data = _block(1)
    cache.put_verified(first, first_data)
    held = tmp_path / "held.npy"
    assert cache.link_into(first, held)
    os.utime(tmp_path / "cache" / first, (1, 1))  # the least recently used

    for fill in (2, 3):
        cache.put_verified(*_block(fill))

    assert cache.get(first) is None, "evicted from the cache"
    assert held.read_bytes() == first_data, "but not from under the unit holding it"
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir()) <= 2_500


def test_a_block_larger_than_the_cache_is_not_kept(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 500)
    name, data = _block(1)

    cache.put_verified(name, data)

    assert cache.get(name) is None
    assert list((tmp_path / "cache").iterdir()) == []
