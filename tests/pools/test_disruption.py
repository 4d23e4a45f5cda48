"""Disruptions as pure rules (ECONOMICS.md §4, §5): lost nodes, capacity needs, stand-ins
promoted within the share cap and returned once their capacity is no longer owed."""

from __future__ import annotations

from nexapod.policy import default_policy
from nexapod.pools import rules
from nexapod.pools.disruption import (
    Disruption,
    LostNode,
    lose,
    promote_stand_ins,
    return_stand_ins,
    stand_ins_owed_flops_per_s,
    written_off,
)
from nexapod.pools.rules import Member, Move

POLICY = default_policy()
T = 10**12  # one TFLOP/s


def node(
    node_id: str, user: str, pool: rules.Pool = "none", tflops: int = 1, **kw: object
) -> Member:
    return Member(node_id, user, pool, tflops * T, kw.pop("since_ms", 0), **kw)  # type: ignore[arg-type]


def _pool() -> list[Member]:
    return [
        node("h1", "alice", "hot", 8),
        node("h2", "bob", "hot", 8),
        node("h3", "carol", "hot", 8),
        node("h4", "dave", "hot", 8),
        node("c1", "erin", "cold", 4, availability_ppm=900_000),
        node("c2", "fay", "cold", 4, availability_ppm=999_000),
        node("c3", "gus", "cold", 4, availability_ppm=950_000),
    ]


def test_a_lost_node_is_replaced_by_the_most_available_and_owed_until_written_off() -> None:
    members = _pool()
    lost = lose(members, ["h1", "nobody"])
    assert lost == [Move("h1", "hot", "none", "lost")]
    members = rules.apply_moves(members, lost, now_ms=10)
    away = Disruption(lost_flops_per_s=8 * T, need_flops_per_s=0)
    owed = stand_ins_owed_flops_per_s(members, away, POLICY)
    assert owed == 8 * T
    promoted = promote_stand_ins(members, owed, "failover", POLICY)
    assert promoted == [
        Move("c2", "cold", "hot", "failover", promoted=True),
        Move("c3", "cold", "hot", "failover", promoted=True),
    ]
    members = rules.apply_moves(members, promoted, now_ms=20)
    assert return_stand_ins(members, owed, POLICY) == []  # still owed
    assert promote_stand_ins(members, owed, "failover", POLICY) == []  # already covered
    # a stand-in lost in turn is not owed again: the lost node still owes its capacity
    assert lose(members, ["c2"]) == [Move("c2", "hot", "none", "stand_in_lost")]
    # written off (or back): nothing is owed, every stand-in returns to cold
    over = return_stand_ins(members, 0, POLICY)
    assert sorted((m.node_id, m.to_pool, m.reason) for m in over) == [
        ("c2", "cold", "disruption_over"),
        ("c3", "cold", "disruption_over"),
    ]


def test_a_capacity_need_promotes_until_met_and_returns_stand_ins_it_no_longer_needs() -> None:
    members = _pool()  # 32 TFLOP/s of regular hot
    need = Disruption(lost_flops_per_s=0, need_flops_per_s=37 * T)
    owed = stand_ins_owed_flops_per_s(members, need, POLICY)
    assert owed == 5 * T
    promoted = promote_stand_ins(members, owed, "capacity_need", POLICY)
    assert [(m.node_id, m.reason) for m in promoted] == [
        ("c2", "capacity_need"),
        ("c3", "capacity_need"),
    ]  # 8 >= 5: whole nodes
    members = rules.apply_moves(members, promoted, now_ms=30)
    # a new hot node of 4 TFLOP/s arrives: 36 regular, 1 owed: one stand-in can go
    members = [*members, node("h5", "hank", "hot", 4)]
    owed = stand_ins_owed_flops_per_s(members, need, POLICY)
    assert owed == 1 * T
    back = return_stand_ins(members, owed, POLICY)
    assert len(back) == 1 and back[0].reason == "disruption_over"
    members = rules.apply_moves(members, back, now_ms=40)
    assert sum(rules.counted_capacity(m, POLICY) for m in members if m.promoted) >= owed
    # the need met without them (or the job ended): the last one returns too
    met = Disruption(lost_flops_per_s=0, need_flops_per_s=36 * T)
    assert stand_ins_owed_flops_per_s(members, met, POLICY) == 0
    assert [m.reason for m in return_stand_ins(members, 0, POLICY)] == ["disruption_over"]


def test_lost_capacity_and_the_need_are_covered_by_the_same_stand_ins() -> None:
    members = rules.apply_moves(_pool(), [Move("h1", "hot", "none", "lost")], now_ms=1)
    # 24 regular; 8 lost; need 30 (6 short): owed is the larger, 8, not 14
    both = Disruption(lost_flops_per_s=8 * T, need_flops_per_s=30 * T)
    assert stand_ins_owed_flops_per_s(members, both, POLICY) == 8 * T
    bigger_need = Disruption(lost_flops_per_s=8 * T, need_flops_per_s=40 * T)
    assert stand_ins_owed_flops_per_s(members, bigger_need, POLICY) == 16 * T


def test_stand_ins_respect_the_share_cap_or_capacity_stays_unreplaced() -> None:
    members = [
        node("a1", "alice", "hot", 34),
        node("b1", "bob", "hot", 33),
        node("c1", "carol", "hot", 33),
        node("a2", "alice", "cold", 10, availability_ppm=1_000_000),
        node("b2", "bob", "cold", 10, availability_ppm=990_000),
        node("d1", "dave", "cold", 10, availability_ppm=980_000),
    ]
    # alice's and bob's standbys are the most available, but 44 or 43 of 110 would pass
    # 0.35: passed over for dave's; the other 10 TFLOP/s owed stay unreplaced
    moves = promote_stand_ins(members, 20 * T, "capacity_need", POLICY)
    assert [m.node_id for m in moves] == ["d1"]
    after = rules.apply_moves(members, moves, now_ms=5)
    by_user = rules.hot_capacity_by_user(after, POLICY)
    total = sum(by_user.values())
    assert all(c * 20 <= 7 * total for c in by_user.values())  # 0.35 = 7/20
    # nobody else has a standby: what alice's would break stays unreplaced
    only_alice = [*members[:3], members[3]]
    assert promote_stand_ins(only_alice, 20 * T, "failover", POLICY) == []


def test_lost_nodes_are_written_off_after_the_grace() -> None:
    lost = [LostNode("n2", 1_000), LostNode("n1", 5_000), LostNode("n3", 9_000)]
    assert written_off(lost, now_ms=4_000, write_off_s=5) == []
    assert [n.node_id for n in written_off(lost, now_ms=10_000, write_off_s=5)] == ["n1", "n2"]
    assert [n.node_id for n in written_off(lost, now_ms=14_000, write_off_s=5)] == [
        "n1",
        "n2",
        "n3",
    ]
