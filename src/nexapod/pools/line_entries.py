"""An epoch's per-node reward lines as log entries, in canonical JSON (pure).

Each entry is the canonical JSON (RFC 8785) of ``{"kind": "reward_lines", "v": 1,
**body}`` for one body of :func:`settle.line_entry_bodies` (at most
``LINES_PER_ENTRY_MAX`` lines). Settlement publishes a line for every paid node, 10^5
and more an epoch, and the general serialiser (``crypto.canonical_json``) spent most of
its time there proving that the lines need no escaping; here that is known in advance,
as for transfers (``ledger.transfer_entry``):

- keys in RFC 8785 order (ASCII, so byte order): chunk, epoch, epoch_s, kind, lines,
  policy_sha256, v;
- a line's strings are a node id (hex), a username (``[a-z][a-z0-9_-]*``) and numbers as
  decimal text: nothing JSON escapes. An entry whose bytes show a backslash or an
  unexpected count of quotes (a value that would need escaping) is written by the
  general serialiser instead, so the bytes are canonical either way;
- the integers (chunk, epoch, epoch_s) are within 2^53.

A property test holds every entry byte for byte against ``canonical_json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from nexapod.crypto import canonical_json
from nexapod.pools.settle import (
    LINES_PER_ENTRY_MAX,
    EpochSettlement,
    RewardLine,
    line_entry_bodies,
)

__all__ = ["KIND", "encode_line_entries"]

KIND = "reward_lines"
_INT_MAX = 2**53 - 1
_QUOTES_PER_LINE = 14  # seven strings
_QUOTES_PER_ENTRY = 18  # seven keys, "reward_lines" and the policy hash
_ESCAPED = re.compile(rb"[\x00-\x1f\\]")  # what RFC 8785 writes with a backslash


def encode_line_entries(settlement: EpochSettlement, policy_sha256: str) -> list[bytes]:
    """The epoch's lines, sorted by node id, as entries of at most LINES_PER_ENTRY_MAX
    (the bodies of ``settle.line_entry_bodies``, with their kind and version)."""
    assert 0 <= settlement.epoch_index <= _INT_MAX
    assert 0 < settlement.epoch_s <= _INT_MAX
    lines = sorted(settlement.lines, key=lambda line: line.node_id)
    epoch = f'"epoch":{settlement.epoch_index},"epoch_s":{settlement.epoch_s}'
    tail = f'],"policy_sha256":"{policy_sha256}","v":1}}'
    entries = []
    bodies: list[dict[str, Any]] | None = None  # built only if a value needs escaping
    for chunk, start in enumerate(range(0, len(lines), LINES_PER_ENTRY_MAX)):
        part = lines[start : start + LINES_PER_ENTRY_MAX]
        text = f'{{"chunk":{chunk},{epoch},"kind":"{KIND}","lines":[{",".join(_texts(part))}'
        entry = (text + tail).encode()
        quotes = _QUOTES_PER_ENTRY + _QUOTES_PER_LINE * len(part)
        if _ESCAPED.search(entry) or entry.count(b'"') != quotes:  # needs the general one
            if bodies is None:
                bodies = line_entry_bodies(settlement, policy_sha256)
            entry = canonical_json({"kind": KIND, "v": 1, **bodies[chunk]})
        entries.append(entry)
    return entries


def _texts(lines: list[RewardLine]) -> Iterator[str]:
    for node_id, username, flops, capacity, nxc, usdc_owed, usdc_paid in lines:
        yield (
            f'["{node_id}","{username}","{flops}","{capacity}","{nxc}","{usdc_owed}","{usdc_paid}"]'
        )
