"""The fast encoder of reward lines writes exactly the canonical JSON of their bodies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.crypto import canonical_json
from nexapod.pools import line_entries
from nexapod.pools.line_entries import KIND, encode_line_entries
from nexapod.pools.settle import (
    LINES_PER_ENTRY_MAX,
    EpochSettlement,
    RewardLine,
    line_entry_bodies,
)

SHA = "ab" * 32
_name = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=1, max_size=12
)


def _settlement(lines: list[RewardLine], epoch: int = 5, epoch_s: int = 3600) -> EpochSettlement:
    return EpochSettlement(epoch, epoch_s, tuple(lines), 0, 0, 0, 0)


def _canonical(settlement: EpochSettlement) -> list[bytes]:
    return [
        canonical_json({"kind": KIND, "v": 1, **body})
        for body in line_entry_bodies(settlement, SHA)
    ]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.from_regex(r"[0-9a-f]{16}", fullmatch=True), _name),
            st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{2,31}", fullmatch=True), _name),
            st.lists(st.integers(0, 10**30), min_size=5, max_size=5),
        ),
        max_size=40,
        unique_by=lambda row: row[0],
    ),
    epoch=st.integers(0, 2**53 - 1),
    epoch_s=st.integers(1, 10**7),
)
def test_every_entry_is_the_canonical_json_of_its_body(
    rows: list[tuple[str, str, list[int]]], epoch: int, epoch_s: int
) -> None:
    """Node ids and usernames are drawn from their real alphabets and from any text,
    quotes, backslashes, control and non-ASCII characters included (those entries go
    through the general serialiser)."""
    lines = [RewardLine(node, user, *numbers) for node, user, numbers in rows]
    settlement = _settlement(lines, epoch, epoch_s)
    assert encode_line_entries(settlement, SHA) == _canonical(settlement)


def test_ordinary_lines_never_need_the_general_serialiser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real node ids (hex) and usernames take the fast path, entry after entry."""

    def refuse(value: object) -> bytes:
        raise AssertionError(f"the general serialiser was asked for {value!r:.80}")

    monkeypatch.setattr(line_entries, "canonical_json", refuse)
    lines = [
        RewardLine(f"{i:016x}", f"user-{i % 3}_x", 10**20 + i, 10, 7, 3, 2)
        for i in range(LINES_PER_ENTRY_MAX + 5)
    ]
    entries = encode_line_entries(_settlement(lines), SHA)
    monkeypatch.undo()
    assert entries == _canonical(_settlement(lines))


def test_lines_are_chunked_in_node_order() -> None:
    lines = [
        RewardLine(f"{i:016x}", f"user{i % 3}", i + 1, 10, 7, 3, 2)
        for i in reversed(range(2 * LINES_PER_ENTRY_MAX + 1))
    ]
    entries = encode_line_entries(_settlement(lines), SHA)
    assert [len(e) > 0 for e in entries] == [True, True, True]
    assert entries == _canonical(_settlement(lines))
    assert entries[2].startswith(b'{"chunk":2,')
    assert f'"{2 * LINES_PER_ENTRY_MAX:016x}"'.encode() in entries[2], "the highest id last"
