"""The independent verifier: the whole log through its tiles, checked from nothing but the vkey.

It trusts nothing the coordinator says without checking it:

1. the checkpoint's signature (the vkey given on the command line) and origin;
2. every entry, from the entry bundles: its leaf hash, rebuilt into every hash tile (each
   served tile compared byte for byte) and into the root, which must be the checkpoint's;
3. every transfer, replayed from an empty state (``replay``), and every balance the
   coordinator reports for the accounts the log names, compared exactly;
4. the witness: the last checkpoint this verifier accepted. The new tree's first
   ``witness size`` entries must give the witness's root, or the log was rewritten (a
   fork); a smaller log than the witness's was rolled back. The witness is then moved on.

Memory stays bounded by the replay's state (accounts, transfer ids, open holds): the
entries and tiles are streamed one bundle at a time.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from nexapod.ledger.checkpoint import Checkpoint, open_checkpoint
from nexapod.ledger.log_errors import LogError
from nexapod.ledger.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash
from nexapod.ledger.note import NoteVerifier
from nexapod.ledger.receipts import b64_hash
from nexapod.ledger.replay import Replay, ReplayError
from nexapod.ledger.tiles import (
    TILE_WIDTH,
    TileId,
    decode_entry_bundle,
    edge_tiles,
    integrate,
)

__all__ = [
    "DirSource",
    "HttpSource",
    "LogSource",
    "LogVerificationError",
    "VerifyReport",
    "verify_log",
]

HTTP_TIMEOUT_S = 30.0
FETCH_THREADS = 4
PREFETCH_BUNDLES = 16  # bundles fetched ahead: at most 16 x (64 KiB + 8 KiB) in memory
CATCH_UP_ROUNDS_MAX = 5
CATCH_UP_WAIT_S_MAX = 15.0
_POLL_S = 0.2

Progress = Callable[[int, int], None]  # (entries verified, tree size)


class LogVerificationError(Exception):
    """The log is wrong: the message says where and why (one line)."""


class LogSource(Protocol):
    """Where the log is read from: a coordinator over HTTP, or an exported directory."""

    description: str

    def checkpoint(self) -> str: ...

    def tile(self, path: str) -> bytes: ...

    def committed_size(self) -> int | None:
        """Entries committed (perhaps not yet checkpointed); None when not known."""
        ...

    def balances(self, account_ids: list[str]) -> dict[str, dict[str, str]] | None:
        """The totals the operator reports per account, or None when there are none."""
        ...


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read whole."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class HttpSource:
    """A live coordinator: tiles from ``/v1/ledger/log/``, balances from ``/v1/accounts``.

    Fetches use the standard library's ``http.client``, one keep-alive connection per
    thread: a verifier makes two requests per 256 entries, and a lighter client leaves
    the CPU to the checking. ``client`` (an httpx client, e.g. a test client) replaces it.
    """

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.description = self.url
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LogVerificationError(f"{url!r} is not an http(s) URL")
        self._parts = parts
        self._client = client
        self._local = threading.local()

    def try_get(self, path: str) -> Reply:
        """GET ``path``; any status. Raises LogVerificationError when unreachable."""
        try:
            if self._client is not None:
                response = self._client.get(f"{self.url}{path}")
                return Reply(response.status_code, response.content)
            return self._get_plain(path)
        except (OSError, http.client.HTTPException, httpx.HTTPError) as exc:
            self._local.__dict__.pop("connection", None)
            raise LogVerificationError(f"cannot reach {self.url}{path}: {exc}") from exc

    def _get_plain(self, path: str) -> Reply:
        for attempt in range(2):  # a kept-alive connection the server closed: once more
            connection = self._connection()
            try:
                connection.request("GET", f"{self._parts.path}{path}")
                response = connection.getresponse()
                return Reply(response.status, response.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                self._local.__dict__.pop("connection", None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            connection = kind(self._parts.hostname or "", self._parts.port, timeout=HTTP_TIMEOUT_S)
            self._local.connection = connection
        return connection

    def get(self, path: str) -> Reply:
        reply = self.try_get(path)
        if reply.status_code != 200:
            raise LogVerificationError(f"{path}: HTTP {reply.status_code} {reply.text[:200]}")
        return reply

    def checkpoint(self) -> str:
        return self.get("/v1/ledger/log/checkpoint").text

    def tile(self, path: str) -> bytes:
        return self.get(f"/v1/ledger/log/{path}").content

    def committed_size(self) -> int | None:
        size = self.get("/v1/ledger/log/size").json()["tree_size"]
        assert isinstance(size, int)
        return size

    def balances(self, account_ids: list[str]) -> dict[str, dict[str, str]] | None:
        """Every account's totals, fetched on a few threads."""

        def one(account_id: str) -> tuple[str, dict[str, str]]:
            view = self.get(f"/v1/accounts/{account_id}").json()
            return account_id, {name: view[name] for name in _TOTALS}

        with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="nexapod-balances") as pool:
            return dict(pool.map(one, account_ids))

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()


class DirSource:
    """A directory written by ``nexapod ledger export`` (``accounts.json`` is optional)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = str(directory)

    def _read(self, relative: str) -> bytes:
        path = self.directory / relative
        try:
            return path.read_bytes()
        except OSError as exc:
            raise LogVerificationError(f"cannot read {path}: {exc.strerror}") from exc

    def checkpoint(self) -> str:
        return self._read("checkpoint").decode("utf-8", errors="replace")

    def tile(self, path: str) -> bytes:
        return self._read(path)

    def committed_size(self) -> int | None:
        return None

    def balances(self, account_ids: list[str]) -> dict[str, dict[str, str]] | None:
        path = self.directory / "accounts.json"
        if not path.exists():
            return None
        document = json.loads(path.read_text())
        return {a: document[a] for a in account_ids if a in document}


_TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass(frozen=True)
class VerifyReport:
    tree_size: int
    root_hash: bytes
    accounts_checked: int
    entries_by_kind: dict[str, int]
    witness_size: int | None  # the size of the witness checked against, if there was one

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.entries_by_kind.items()))
        return (
            f"OK: tree size {self.tree_size}, root {b64_hash(self.root_hash)}"
            f" ({kinds or 'no entries'}; {self.accounts_checked} balances match)"
        )


class _Stream:
    """The tree and the replay, extended entry bundle by entry bundle."""

    def __init__(self, source: LogSource, witness: Checkpoint | None) -> None:
        self.source = source
        self.witness = witness
        self.size = 0
        self.edge: dict[int, bytes] = {}
        self.root = EMPTY_ROOT
        self.replay = Replay()

    def extend_to(self, tree_size: int, progress: Progress | None) -> None:
        """Verify entries up to ``tree_size``, fetching bundles ahead while checking.

        The fetches (the server's work, or the disk's) run on a few threads, at most
        ``PREFETCH_BUNDLES`` ahead, so memory stays bounded and both cores are busy.
        """
        first = self.size // TILE_WIDTH
        last = (tree_size - 1) // TILE_WIDTH if tree_size else first - 1
        with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="nexapod-verify") as pool:
            ahead: deque[tuple[int, Future[tuple[bytes, bytes]]]] = deque()
            next_index = first
            while self.size < tree_size:
                while next_index <= last and len(ahead) < PREFETCH_BUNDLES:
                    width = min(tree_size - next_index * TILE_WIDTH, TILE_WIDTH)
                    ahead.append((next_index, pool.submit(self._fetch, next_index, width)))
                    next_index += 1
                tile_index, fetched = ahead.popleft()
                end = min(tree_size, (tile_index + 1) * TILE_WIDTH)
                self._bundle(tile_index, end, fetched.result(), progress, tree_size)

    def _fetch(self, tile_index: int, width: int) -> tuple[bytes, bytes]:
        """The entry bundle and the level-0 tile of one tile index, at ``width``."""
        suffix = "" if width == TILE_WIDTH else f".p/{width}"
        bundle = self.source.tile(f"tile/entries/{_index_path(tile_index)}{suffix}")
        return bundle, self.source.tile(f"tile/0/{_index_path(tile_index)}{suffix}")

    def _bundle(
        self,
        tile_index: int,
        end: int,
        fetched: tuple[bytes, bytes],
        progress: Progress | None,
        total: int,
    ) -> None:
        width = end - tile_index * TILE_WIDTH
        bundle, served = fetched
        try:
            entries = decode_entry_bundle(bundle, width)
        except LogError as exc:
            suffix = "" if width == TILE_WIDTH else f".p/{width}"
            path = f"tile/entries/{_index_path(tile_index)}{suffix}"
            raise LogVerificationError(f"{path}: {exc.detail}") from exc
        skip = self.size - tile_index * TILE_WIDTH
        fresh = entries[skip:]
        hashes = []
        for offset, entry in enumerate(fresh, start=skip):
            hash_ = leaf_hash(entry)
            if served[offset * HASH_SIZE : (offset + 1) * HASH_SIZE] != hash_:
                raise LogVerificationError(
                    f"entry {tile_index * TILE_WIDTH + offset}: its leaf hash is not the one in "
                    "the log's tiles (the entry or the tile was changed)"
                )
            try:
                self.replay.feed(entry)
            except ReplayError as exc:
                raise LogVerificationError(str(exc)) from exc
            hashes.append(hash_)
        witness = self.witness
        if witness is not None and self.size < witness.tree_size <= end:
            cut = witness.tree_size - self.size
            early = integrate(self.size, self.edge, hashes[:cut])
            if early.root_hash != witness.root_hash:
                raise LogVerificationError(
                    f"fork: the first {witness.tree_size} entries do not give the root of the "
                    "witness checkpoint: the log's history was rewritten"
                )
        result = integrate(self.size, self.edge, hashes)
        for tile, data in result.tiles:
            if tile.width == TILE_WIDTH and tile.level > 0:  # level 0: checked per entry
                self._compare(tile, data)
        self.size, self.edge, self.root = result.tree_size, dict(result.edge), result.root_hash
        if progress is not None:
            progress(self.size, total)

    def compare_edge(self) -> None:
        """The partial tiles of the current size, as served, against the rebuilt ones."""
        for tile in edge_tiles(self.size):
            self._compare(tile, self.edge[tile.level])

    def _compare(self, tile: TileId, data: bytes) -> None:
        path = tile.path
        served = self.source.tile(path)
        if served != data:
            first = tile.index * TILE_WIDTH ** (tile.level + 1)
            raise LogVerificationError(
                f"{path} (from entry {first}) does not match the tile rebuilt from the entries"
            )


def _index_path(index: int) -> str:
    return TileId(0, index, TILE_WIDTH).path.removeprefix("tile/0/")


def verify_log(
    source: LogSource,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
    witness_file: Path | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check everything; the report on success, LogVerificationError with the first fault."""
    origin = origin or verifier.name
    note = source.checkpoint()
    checkpoint = _open(note, verifier, origin)
    witness = _read_witness(witness_file, verifier, origin)
    if witness is not None and witness.tree_size > checkpoint.tree_size:
        raise LogVerificationError(
            f"rollback: the checkpoint has {checkpoint.tree_size} entries, the witness "
            f"already saw {witness.tree_size}"
        )
    stream = _Stream(source, witness)
    stream.extend_to(checkpoint.tree_size, progress)
    checked = 0
    for _ in range(CATCH_UP_ROUNDS_MAX):
        _check_root(stream, checkpoint)
        before = source.committed_size()
        if before is not None and before > checkpoint.tree_size:
            note, checkpoint = _wait_for_checkpoint(source, verifier, origin, before)
            stream.extend_to(checkpoint.tree_size, progress)
            continue
        account_ids = sorted(stream.replay.accounts)
        reported = source.balances(account_ids)
        if reported is not None and source.committed_size() != before:
            continue  # money moved while we read balances: catch up and read them again
        if reported is not None:
            checked = _compare_balances(stream.replay, reported, account_ids)
        break
    else:
        raise LogVerificationError(
            "the log kept growing while balances were read: run again when it is quieter"
        )
    stream.compare_edge()
    if witness_file is not None:
        _write_witness(witness_file, note)
    return VerifyReport(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        accounts_checked=checked,
        entries_by_kind=dict(stream.replay.kinds),
        witness_size=None if witness is None else witness.tree_size,
    )


def _open(note: str, verifier: NoteVerifier, origin: str) -> Checkpoint:
    try:
        return open_checkpoint(note, [verifier], origin=origin)
    except LogError as exc:
        raise LogVerificationError(f"checkpoint: {exc.detail} [{exc.code}]") from exc


def _check_root(stream: _Stream, checkpoint: Checkpoint) -> None:
    assert stream.size == checkpoint.tree_size
    if stream.root != checkpoint.root_hash:
        raise LogVerificationError(
            f"the {checkpoint.tree_size} entries give root {b64_hash(stream.root)}, the "
            f"signed checkpoint says {b64_hash(checkpoint.root_hash)}"
        )


def _wait_for_checkpoint(
    source: LogSource, verifier: NoteVerifier, origin: str, tree_size: int
) -> tuple[str, Checkpoint]:
    deadline = time.monotonic() + CATCH_UP_WAIT_S_MAX
    while True:
        note = source.checkpoint()
        checkpoint = _open(note, verifier, origin)
        if checkpoint.tree_size >= tree_size:
            return note, checkpoint
        if time.monotonic() >= deadline:
            raise LogVerificationError(
                f"{tree_size} entries are committed but no checkpoint covers them after "
                f"{CATCH_UP_WAIT_S_MAX:.0f} s: the coordinator is not signing checkpoints"
            )
        time.sleep(_POLL_S)


def _compare_balances(
    replay: Replay, reported: dict[str, dict[str, str]], account_ids: list[str]
) -> int:
    for account_id in account_ids:
        mine = replay.accounts[account_id].as_text()
        theirs = reported.get(account_id)
        if theirs is None:
            raise LogVerificationError(f"account {account_id}: named in the log, not reported")
        for name in _TOTALS:
            if theirs.get(name) != mine[name]:
                raise LogVerificationError(
                    f"account {account_id}: {name} is reported as {theirs.get(name)}, "
                    f"the log gives {mine[name]}"
                )
    return len(account_ids)


def _read_witness(path: Path | None, verifier: NoteVerifier, origin: str) -> Checkpoint | None:
    if path is None or not path.exists():
        return None
    try:
        return open_checkpoint(path.read_text(), [verifier], origin=origin)
    except LogError as exc:
        raise LogVerificationError(f"witness {path}: {exc.detail} [{exc.code}]") from exc


def _write_witness(path: Path, note: str) -> None:
    """Replace the witness atomically: a crash leaves the old one or the new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(note)
    os.replace(temporary, path)
