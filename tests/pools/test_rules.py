"""The pool manager's pure decisions (ECONOMICS.md sections 2, 4, 5), example by example."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from nexapod.policy import default_policy
from nexapod.pools import rules
from nexapod.pools.rules import Member

POLICY = default_policy()
T = 10**12  # one TFLOP/s


def node(
    node_id: str, user: str, pool: rules.Pool = "none", tflops: int = 1, **kw: object
) -> Member:
    return Member(node_id, user, pool, tflops * T, kw.pop("since_ms", 0), **kw)  # type: ignore[arg-type]


def test_admission_to_hot_until_the_cap_binds_then_warm_with_the_reason() -> None:
    hot = [node("a1", "alice", "hot", since_ms=1), node("b1", "bob", "hot", since_ms=2)]
    # two users: the cap does not bind yet, so alice may hold 2 of 3 nodes
    assert rules.admit(node("a2", "alice"), hot, {}, POLICY) == [
        rules.Move("a2", "none", "hot", "admission")
    ]
    hot.append(node("a2", "alice", "hot", since_ms=3))
    # carol makes three users and the cap binds: alice (2 of 4 = 0.5) makes room, her
    # newest node first, and carol is admitted
    moves = rules.admit(node("c1", "carol"), hot, {}, POLICY)
    assert moves == [
        rules.Move("a2", "hot", "warm", "share_cap"),
        rules.Move("c1", "none", "hot", "admission"),
    ]
    hot = rules.apply_moves([*hot, node("c1", "carol")], moves, now_ms=5)
    # alice's parked node asking again changes nothing (it would be 2 of 4 again)
    parked = next(m for m in hot if m.node_id == "a2")
    assert rules.admit(parked, hot, {}, POLICY) == []
    # a third alice node is refused for the cap and parked in warm
    assert rules.admit(node("a3", "alice"), hot, {}, POLICY) == [
        rules.Move("a3", "none", "warm", "share_cap")
    ]
    assert rules.rebalance(hot, POLICY) == []


def test_a_newcomer_over_the_cap_waits_and_a_departure_rebalances() -> None:
    hot = [node("a1", "alice", "hot", 19, since_ms=1), node("b1", "bob", "hot", 11, since_ms=2)]
    # carol's one node would hold 21 of 51: she waits in warm; nobody is displaced
    assert rules.admit(node("c1", "carol", tflops=21), hot, {}, POLICY) == [
        rules.Move("c1", "none", "warm", "share_cap")
    ]
    # three equal users, then dave leaves: bob's two nodes hold 2 of 4; his newest goes
    equal = [
        node("a1", "alice", "hot", since_ms=1),
        node("b1", "bob", "hot", since_ms=2),
        node("b2", "bob", "hot", since_ms=6),
        node("c1", "carol", "hot", since_ms=3),
    ]
    assert rules.rebalance(equal, POLICY) == [rules.Move("b2", "hot", "warm", "share_cap")]


def test_shares_count_capacity_up_to_the_node_cap() -> None:
    cap_tflops = POLICY.node_cap_flops_per_s // T  # 500
    hot = [node("b1", "bob", "hot", cap_tflops), node("c1", "carol", "hot", cap_tflops)]
    # a machine of 10^18 FLOP/s counts as 500 TFLOP/s: 1/3 < 0.35, admitted
    huge = node("a1", "alice", tflops=10**6)
    assert rules.admit(huge, hot, {}, POLICY) == [rules.Move("a1", "none", "hot", "admission")]


def test_institutions_and_big_contributors_go_institutional() -> None:
    members = [node("i1", "uni", tflops=10**6 + 1), node("s1", "sam")]
    reasons = rules.institutional_users(members, ["lab"], POLICY)
    assert reasons == {"lab": "institution", "uni": "capacity"}
    moves = rules.admit(node("l1", "lab"), [], reasons, POLICY)
    assert moves == [rules.Move("l1", "none", "institutional", "institution")]


def test_cold_band_promotes_volunteers_and_demotes_the_least_available() -> None:
    hot = [node(f"h{i}", f"u{i}", "hot", 10) for i in range(10)]  # 100 TFLOP/s
    volunteers = [node(f"v{i}", "vol", "warm", 4, cold_opt_in=True, since_ms=i) for i in range(6)]
    moves = rules.manage_cold(hot + volunteers, POLICY)
    # low 10, target 15, high 20: four volunteers of 4 = 16
    assert [m.node_id for m in moves] == ["v0", "v1", "v2", "v3"]
    assert all(m.to_pool == "cold" and m.reason == "cold_band" for m in moves)
    cold = [
        node(f"c{i}", "vol", "cold", 4, availability_ppm=ppm, warm_opt_in=i == 1)
        for i, ppm in enumerate([990_000, 500_000, 900_000, 950_000, 999_000, 980_000, 970_000])
    ]  # 28 > 20: demote the least available while above the target, never below 10
    moves = rules.manage_cold(hot + cold, POLICY)
    assert [(m.node_id, m.to_pool) for m in moves] == [
        ("c1", "warm"),
        ("c2", "none"),
        ("c3", "none"),
        ("c6", "none"),
    ]  # 28 -> 12
    low, target, high = rules.cold_band(hot, POLICY)
    assert (low, target, high) == (Decimal(10 * T), Decimal(15 * T), Decimal(20 * T))


def test_the_cap_counts_stand_ins_and_takes_them_back_first() -> None:
    members = [
        node("a1", "alice", "hot", 10, since_ms=1),
        node("b1", "bob", "hot", 10, since_ms=2),
        node("c1", "carol", "hot", 10, since_ms=3),
        node("a2", "alice", "hot", 2, since_ms=9, promoted=True),  # a stand-in
    ]
    # stand-ins are hot capacity: alice holds 12 of 32 = 0.375 > 0.35
    assert rules.hot_capacity_by_user(members, POLICY)["alice"] == 12 * T
    # her stand-in goes back to cold before any of her own nodes (newest or not)
    assert rules.rebalance(members, POLICY) == [rules.Move("a2", "hot", "cold", "share_cap")]
    # and a newcomer of alice's is parked: with the stand-in she has no room
    assert rules.admit(node("a3", "alice", tflops=1), members[:3], {}, POLICY) == [
        rules.Move("a3", "none", "warm", "share_cap")
    ]


def test_fits_under_cap_checks_everyone_when_a_newcomer_makes_it_bind() -> None:
    by_user = {"alice": 10 * T, "bob": 10 * T}
    total = 20 * T
    # two users: the cap does not bind, a second alice node fits
    assert rules.fits_under_cap(by_user, total, "alice", 10 * T, POLICY)
    # a third user makes it bind: alice and bob at 10 of 21 each would be over
    assert not rules.fits_under_cap(by_user, total, "carol", 1 * T, POLICY)
    # with enough capacity the third user fits (10 of 30 each)
    assert rules.fits_under_cap(by_user, total, "carol", 10 * T, POLICY)
    # binding already: only the grower's own share is checked (exactly, at the boundary)
    three = {"alice": 35 * T, "bob": 35 * T, "carol": 30 * T}
    assert rules.fits_under_cap(three, 100 * T, "carol", 0, POLICY)
    assert not rules.fits_under_cap(three, 100 * T, "alice", 1, POLICY)


def test_a_move_must_start_where_the_node_is() -> None:
    members = [node("n1", "alice", "warm")]
    try:
        rules.apply_moves(members, [rules.Move("n1", "hot", "none", "lease_end")], 0)
    except AssertionError as exc:
        assert "n1 is in warm" in str(exc)
    else:
        raise AssertionError("a move from the wrong pool was applied")
    assert replace(members[0], pool="hot").pool == "hot"
