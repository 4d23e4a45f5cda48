"""The export's formats on their own: an empty table, chunks joined, headers."""

from __future__ import annotations

import json

from nexapod.protocol.v1 import LeaderboardEntry, StatsExport, StatsSnapshotView
from nexapod.registry.stats_export import csv_chunks, export_headers, json_chunks

SNAPSHOT = StatsSnapshotView(
    snapshot_id=4,
    generated_at_ms=1_000_000,
    next_refresh_at_ms=4_600_000,
    refresh_s=3600,
    recent_half_life_s=604_800,
    users_total=3,
    verified_flops_total=str(2**80 + 3),
)
ENTRIES = [
    LeaderboardEntry(
        rank=i + 1,
        username=f"user{i}",
        verified_flops=str(2**80 + 2 - i),
        recent_avg_flops_per_day=str(10**20 * i),
        nodes=i,
    )
    for i in range(3)
]


def test_chunks_join_into_one_document_with_exact_numbers() -> None:
    document = b"".join(json_chunks(SNAPSHOT, [ENTRIES[:2], [], ENTRIES[2:]]))
    assert StatsExport.model_validate_json(document) == StatsExport(
        snapshot=SNAPSHOT, entries=ENTRIES
    )
    assert json.loads(document)["entries"][0]["verified_flops"] == str(2**80 + 2)


def test_csv_lines_follow_the_json_order() -> None:
    text = b"".join(csv_chunks(SNAPSHOT, [ENTRIES[:1], ENTRIES[1:]])).decode()
    assert text.split("\r\n") == [
        "rank,username,verified_flops,recent_avg_flops_per_day,nodes",
        f"1,user0,{2**80 + 2},0,0",
        f"2,user1,{2**80 + 1},{10**20},1",
        f"3,user2,{2**80},{2 * 10**20},2",
        "",
    ]


def test_an_empty_table_is_still_a_document() -> None:
    empty = SNAPSHOT.model_copy(update={"users_total": 0, "verified_flops_total": "0"})
    assert json.loads(b"".join(json_chunks(empty, [])))["entries"] == []
    assert b"".join(csv_chunks(empty, [])) == (
        b"rank,username,verified_flops,recent_avg_flops_per_day,nodes\r\n"
    )


def test_headers_name_the_snapshot_and_cache_until_the_next_refresh() -> None:
    headers = export_headers(SNAPSHOT, 1_600_500, "stats.csv")
    assert headers["Cache-Control"] == "public, max-age=2999"  # rounded down
    assert headers["NexaPod-Stats-Snapshot-Id"] == "4"
    assert headers["NexaPod-Stats-Rows"] == "3"
    assert export_headers(SNAPSHOT, 9_000_000, "x")["Cache-Control"] == "public, max-age=0"
