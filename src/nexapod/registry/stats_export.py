"""The stats export's two formats, written a chunk at a time (pure: entries in, bytes out).

JSON is one ``StatsExport`` document: ``{"snapshot": {...}, "entries": [...]}``. CSV
(RFC 4180, CRLF line ends) is a header line of :data:`STATS_CSV_COLUMNS` and one line per
entry in the same order as the JSON, with the same decimal text; it carries the
snapshot's metadata in the response headers :func:`export_headers` gives.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from nexapod.protocol.v1 import STATS_CSV_COLUMNS, LeaderboardEntry, StatsSnapshotView

__all__ = [
    "CSV_MEDIA_TYPE",
    "JSON_MEDIA_TYPE",
    "csv_chunks",
    "export_headers",
    "json_chunks",
]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
JSON_MEDIA_TYPE = "application/json"


def json_chunks(
    snapshot: StatsSnapshotView, chunks: Iterable[list[LeaderboardEntry]]
) -> Iterator[bytes]:
    """The JSON document, its head first, then each chunk of entries, then its end."""
    yield b'{"snapshot":' + snapshot.model_dump_json().encode() + b',"entries":['
    written = 0
    for chunk in chunks:
        if chunk:
            separator = b"," if written else b""
            yield separator + b",".join(entry.model_dump_json().encode() for entry in chunk)
            written += len(chunk)
    assert written == snapshot.users_total, "an export holds the whole snapshot"
    yield b"]}\n"


def csv_chunks(
    snapshot: StatsSnapshotView, chunks: Iterable[list[LeaderboardEntry]]
) -> Iterator[bytes]:
    """The CSV file, its header line first, then one block of lines per chunk."""
    yield _csv_lines([STATS_CSV_COLUMNS])
    written = 0
    for chunk in chunks:
        written += len(chunk)
        yield _csv_lines([_csv_row(entry) for entry in chunk])
    assert written == snapshot.users_total, "an export holds the whole snapshot"


def _csv_row(entry: LeaderboardEntry) -> tuple[str, ...]:
    fields = entry.model_dump()
    assert set(fields) == set(STATS_CSV_COLUMNS)
    return tuple(str(fields[column]) for column in STATS_CSV_COLUMNS)


def _csv_lines(rows: list[tuple[str, ...]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


def export_headers(snapshot: StatsSnapshotView, now_ms: int, filename: str) -> dict[str, str]:
    """Which snapshot a response holds, and how long a cache may keep it (until the
    next refresh is due)."""
    max_age_s = max(0, (snapshot.next_refresh_at_ms - now_ms) // 1000)
    return {
        "Cache-Control": f"public, max-age={max_age_s}",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "NexaPod-Stats-Snapshot-Id": str(snapshot.snapshot_id),
        "NexaPod-Stats-Generated-At-Ms": str(snapshot.generated_at_ms),
        "NexaPod-Stats-Next-Refresh-At-Ms": str(snapshot.next_refresh_at_ms),
        "NexaPod-Stats-Rows": str(snapshot.users_total),
    }
