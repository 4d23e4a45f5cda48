"""Export a coordinator's log to a directory: the same C2SP tiles, checkpoint and vkey.

The directory is what a static file server would serve under the log's prefix, so the
verifier (``--dir``) and third-party tlog tools read it as they would read the live log.
Next to the tiles it holds ``accounts.json`` (the balances the operator reported, taken
while the log stood still, so the verifier can compare them) and ``proofs.json`` (a few
inclusion and consistency proofs as the coordinator served them, for tools that check
proofs). Every file is written to a temporary name first and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nexapod.ledger.checkpoint import Checkpoint
from nexapod.ledger.log_errors import LogError
from nexapod.ledger.replay import Replay, ReplayError
from nexapod.ledger.tiles import TILE_WIDTH, decode_entry_bundle, tiles_for_size
from nexapod.ledger.verifier import HttpSource

__all__ = ["ExportReport", "export_log"]

PROOF_SAMPLES = 8


@dataclass(frozen=True)
class ExportReport:
    tree_size: int
    files: int
    accounts: int | None  # None: balances were not exported (the log moved meanwhile)


def export_log(
    source: HttpSource, directory: Path, progress: Callable[[int, int], None] | None = None
) -> ExportReport:
    directory.mkdir(parents=True, exist_ok=True)
    note = source.checkpoint()
    checkpoint = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")
    size = checkpoint.tree_size
    files = 0
    vkey = source.get("/v1/ledger/log/vkey").text
    _write(directory / "vkey", vkey.encode())
    replay: Replay | None = Replay()
    done = 0
    for tile in tiles_for_size(size, entries=True):
        data = source.tile(tile.path)
        _write(directory / tile.path, data)
        files += 1
        if replay is not None:
            try:
                for entry in decode_entry_bundle(data, tile.width):
                    replay.feed(entry)
            except (LogError, ReplayError):
                replay = None  # a bad log is exported as it is; the verifier will say why
        done = min(size, (tile.index + 1) * TILE_WIDTH)
        if progress is not None:
            progress(done, size)
    for tile in tiles_for_size(size):
        _write(directory / tile.path, source.tile(tile.path))
        files += 1
    accounts = _export_balances(source, directory, replay, size)
    _write(directory / "proofs.json", _proofs(source, size))
    _write(directory / "checkpoint", note.encode())  # last: a complete export has one
    return ExportReport(tree_size=size, files=files + 3, accounts=accounts)


def _export_balances(
    source: HttpSource, directory: Path, replay: Replay | None, tree_size: int
) -> int | None:
    if replay is None or source.committed_size() != tree_size:
        return None
    ids = sorted(replay.accounts)
    balances = source.balances(ids)
    if balances is None or source.committed_size() != tree_size:
        return None
    _write(directory / "accounts.json", json.dumps(balances, indent=1, sort_keys=True).encode())
    return len(ids)


def _proofs(source: HttpSource, tree_size: int) -> bytes:
    """Proofs as served, in the layout third-party tlog checkers read (base64 hashes)."""
    inclusion = []
    consistency = []
    if tree_size:
        step = max(1, tree_size // PROOF_SAMPLES)
        for index in sorted({0, tree_size - 1, *range(0, tree_size, step)}):
            proof = source.get(
                f"/v1/ledger/proofs/inclusion?leaf_index={index}&tree_size={tree_size}"
            ).json()
            inclusion.append(
                {"leaf_index": index, "tree_size": tree_size, "proof": proof["hashes"]}
            )
        for old in sorted({1, tree_size // 2, tree_size}):
            proof = source.get(
                f"/v1/ledger/proofs/consistency?old_size={old}&new_size={tree_size}"
            ).json()
            consistency.append({"old_size": old, "new_size": tree_size, "proof": proof["hashes"]})
    return json.dumps({"inclusion": inclusion, "consistency": consistency}, indent=1).encode()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
