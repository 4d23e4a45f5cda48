"""Cold challenges through the HTTP API and the maintenance pass, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from nexapod.coordinator.app import create_app
from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import PASS_MS, run_maintenance_once
from nexapod.crypto import sign_document, sign_request
from nexapod.pools import availability as pool_availability
from nexapod.pools import challenging
from nexapod.pools.challenges import Availability, ChallengeSchedule, slot_start_ms
from nexapod.pools.store import ColdChallengeRow, PoolMemberRow
from nexapod.protocol.v1 import PURPOSE_CHALLENGE_ANSWER, PURPOSE_RESULT
from nexapod.registry.store import NodeRow
from nexapod.settings import Settings
from nexapod.workloads.liveness import CHECK_KIND, check_answer_sha256
from tests.factories import Actor, make_node, make_user, signed

INTERVAL_MS = 600_000
DEADLINE_MS = 60_000
SLOT_MS = 10 * INTERVAL_MS  # the start of a slot, far from the real clock's


class Clock:
    """A settable clock (ms); signed requests carry its time."""

    def __init__(self) -> None:
        self.now_ms = 1_800_000_000_000 // INTERVAL_MS * INTERVAL_MS

    def __call__(self) -> int:
        return self.now_ms

    @property
    def s(self) -> int:
        return self.now_ms // 1000


@dataclass
class World:
    api: TestClient
    clock: Clock
    ctx: Context
    user: Actor
    nodes: list[Actor]

    @property
    def schedule(self) -> ChallengeSchedule:
        return challenging.challenge_schedule(self.ctx.settings, PASS_MS)

    def place(self, node: Actor, pool: str) -> None:
        with self.ctx.uow() as uow:
            row = uow.session.get(PoolMemberRow, node.name)
            if row is None:
                row = PoolMemberRow(node_id=node.name, username=self.user.name, log_index=0)
                uow.session.add(row)
            row.pool, row.reason, row.since_ms = pool, "opt_in", self.clock()
            uow.commit()

    def issue(self, randbelow: Any = lambda n: 0) -> int:
        return challenging.issue_due_challenges(
            self.ctx.read_uow(), self.ctx.uow(), self.schedule, self.clock(), randbelow=randbelow
        )

    def rows(self) -> list[Any]:
        """Every challenge, as plain rows (oldest first)."""
        with self.ctx.read_uow() as uow:
            table = ColdChallengeRow.__table__
            query = select(table).order_by(table.c.issued_at_ms)
            return list(uow.session.execute(query).all())

    def open(self, node: Actor) -> dict[str, Any]:
        response = signed(self.api, node, "GET", "/v1/challenges", timestamp_s=self.clock.s)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def answer(
        self, node: Actor, challenge: dict[str, Any], *, signer: Actor | None = None, **doc: Any
    ) -> httpx.Response:
        document = {
            "challenge_id": challenge["challenge_id"],
            "node_id": node.name,
            "seed": challenge["seed"],
            "answer_sha256": check_answer_sha256(challenge["seed"]),
            **doc,
        }
        body = {
            "document": document,
            "signature": sign_document(node.key, PURPOSE_CHALLENGE_ANSWER, document),
        }
        path = f"/v1/challenges/{challenge['challenge_id']}"
        return signed(self.api, signer or node, "POST", path, body, timestamp_s=self.clock.s)

    def availability(self, node: Actor, start_ms: int = 0, end_ms: int = 2**62) -> Availability:
        with self.ctx.read_uow() as uow:
            return pool_availability.availability(uow.session, node.name, start_ms, end_ms)


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    clock = Clock()
    app = create_app(settings, clock_ms=clock, run_maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as api:
        user = make_user(api, "alice")
        nodes = [make_node(api, user) for _ in range(3)]
        yield World(api, clock, app.state.context, user, nodes)


def _issued_one(world: World, node: Actor) -> dict[str, Any]:
    world.place(node, "cold")
    assert world.issue() == 1
    (challenge,) = world.open(node)["challenges"]
    return challenge


def test_a_cold_node_answers_its_challenge_in_time(world: World) -> None:
    node = world.nodes[0]
    challenge = _issued_one(world, node)
    assert challenge["kind"] == CHECK_KIND
    assert challenge["issued_at_ms"] == world.clock()
    assert challenge["deadline_at_ms"] == world.clock() + DEADLINE_MS
    world.clock.now_ms += DEADLINE_MS  # the deadline itself is in time
    response = world.answer(node, challenge)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "challenge_id": challenge["challenge_id"],
        "status": "passed",
        "answered_at_ms": world.clock(),
        "deadline_at_ms": challenge["deadline_at_ms"],
    }
    assert world.open(node)["challenges"] == []
    assert world.availability(node) == Availability(issued=1, answered_in_time=1)
    with world.ctx.read_uow() as uow:
        assert uow.session.get(NodeRow, node.name).last_seen_at_ms == world.clock()  # type: ignore[union-attr]


def test_a_late_answer_is_recorded_and_does_not_count(world: World) -> None:
    node = world.nodes[0]
    challenge = _issued_one(world, node)
    world.clock.now_ms += DEADLINE_MS + 1
    assert world.open(node)["challenges"] == []  # closed: no longer listed
    response = world.answer(node, challenge)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "late"
    (row,) = world.rows()
    assert row.answered_at_ms == world.clock()
    assert not row.passed
    assert world.availability(node) == Availability(issued=1, answered_in_time=0)


def test_a_wrong_answer_is_recorded_as_wrong_and_cannot_be_retried(world: World) -> None:
    node = world.nodes[0]
    challenge = _issued_one(world, node)
    response = world.answer(node, challenge, answer_sha256="00" * 32)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "wrong"
    again = world.answer(node, challenge)  # the right answer, second: the first counts
    assert again.status_code == 200, again.text
    assert again.json() == response.json()
    assert world.availability(node) == Availability(issued=1, answered_in_time=0)


def test_answering_twice_is_idempotent(world: World) -> None:
    node = world.nodes[0]
    challenge = _issued_one(world, node)
    first = world.answer(node, challenge)
    world.clock.now_ms += DEADLINE_MS * 2  # even past the deadline, the repeat says passed
    second = world.answer(node, challenge)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "passed"
    (row,) = world.rows()
    assert row.answered_at_ms == first.json()["answered_at_ms"]


def _state(world: World) -> list[tuple[Any, ...]]:
    return [(r.challenge_id, r.answered_at_ms, r.passed) for r in world.rows()]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("another_nodes_challenge", 403, "pools.challenge_not_yours"),
        ("unknown_id", 404, "pools.challenge_unknown"),
        ("document_names_another_node", 403, "auth.challenge_node_mismatch"),
        ("document_names_another_challenge", 422, "pools.challenge_mismatch"),
        ("document_names_another_seed", 422, "pools.challenge_mismatch"),
        ("signed_by_another_key", 401, "auth.challenge_signature_invalid"),
        ("signed_for_another_purpose", 401, "auth.challenge_signature_invalid"),
        ("signed_by_a_user", 403, "auth.node_required"),
    ],
)
def test_refusals_change_nothing(world: World, case: str, status: int, code: str) -> None:
    node, other = world.nodes[0], world.nodes[1]
    challenge = _issued_one(world, node)
    before = _state(world)
    if case == "another_nodes_challenge":
        response = world.answer(other, challenge)
    elif case == "unknown_id":
        response = world.answer(node, {**challenge, "challenge_id": "f" * 32})
    elif case == "document_names_another_node":
        response = world.answer(node, challenge, node_id=other.name)
    elif case == "document_names_another_challenge":
        response = world.answer(node, challenge, challenge_id="e" * 32)
    elif case == "document_names_another_seed":
        response = world.answer(node, challenge, seed="0" * 64)
    elif case == "signed_by_a_user":
        response = world.answer(node, challenge, signer=world.user)
    else:
        document = {
            "challenge_id": challenge["challenge_id"],
            "node_id": node.name,
            "seed": challenge["seed"],
            "answer_sha256": check_answer_sha256(challenge["seed"]),
        }
        key = other.key if case == "signed_by_another_key" else node.key
        purpose = (
            PURPOSE_RESULT if case == "signed_for_another_purpose" else PURPOSE_CHALLENGE_ANSWER
        )
        body = {"document": document, "signature": sign_document(key, purpose, document)}
        path = f"/v1/challenges/{challenge['challenge_id']}"
        response = signed(world.api, node, "POST", path, body, timestamp_s=world.clock.s)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert _state(world) == before
    assert world.answer(node, challenge).json()["status"] == "passed"  # still answerable


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/challenges/XYZ", {}),
        ("/v1/challenges/" + "a" * 31, {}),
        ("/v1/challenges/" + "a" * 32, {"document": {}, "signature": "x"}),
        ("/v1/challenges/" + "a" * 32, {"surprise": 1}),
    ],
)
def test_malformed_answers_are_refused(world: World, path: str, body: dict[str, Any]) -> None:
    response = signed(world.api, world.nodes[0], "POST", path, body, timestamp_s=world.clock.s)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "protocol.invalid_request"


def test_listing_needs_a_node_signature(world: World) -> None:
    assert world.api.get("/v1/challenges").json()["code"] == "auth.signature_missing"
    response = signed(world.api, world.user, "GET", "/v1/challenges", timestamp_s=world.clock.s)
    assert response.status_code == 403
    assert response.json()["code"] == "auth.node_required"


def test_only_cold_nodes_are_challenged_and_told_to_poll_often(world: World) -> None:
    hot, warm, cold = world.nodes
    world.place(hot, "hot")
    world.place(warm, "warm")
    world.place(cold, "cold")
    assert world.issue() == 1
    assert [r.node_id for r in world.rows()] == [cold.name]
    assert world.open(cold)["poll_after_s"] == 10
    assert world.open(hot) == {"challenges": [], "poll_after_s": 30}


def test_one_challenge_per_slot_and_never_two_open(world: World) -> None:
    node = world.nodes[0]
    world.place(node, "cold")
    world.clock.now_ms = SLOT_MS + INTERVAL_MS - 1000  # the slot's last pass
    assert world.issue() == 1
    world.clock.now_ms += 500
    assert world.issue() == 0  # this slot has its challenge
    world.clock.now_ms = SLOT_MS + INTERVAL_MS + 1000  # next slot, the first still open
    assert world.issue() == 0
    world.clock.now_ms = SLOT_MS + INTERVAL_MS - 1000 + DEADLINE_MS + 1  # it closed unanswered
    assert world.issue() == 1
    assert world.issue() == 0
    rows = world.rows()
    assert len({slot_start_ms(r.issued_at_ms, INTERVAL_MS) for r in rows}) == 2
    # up to now, one has closed unanswered; the other is open, its deadline still ahead
    assert world.availability(node, 0, world.clock()) == Availability(1, 0)


def test_the_moment_of_issue_follows_the_draw(world: World) -> None:
    node = world.nodes[0]
    world.place(node, "cold")

    def never_before_the_end(n: int) -> int:
        return n - 1  # issues only when less than a pass is left

    world.clock.now_ms = SLOT_MS
    for offset_ms in (0, 1000, INTERVAL_MS // 2, INTERVAL_MS - PASS_MS - 1):
        world.clock.now_ms = SLOT_MS + offset_ms
        assert world.issue(never_before_the_end) == 0
    world.clock.now_ms = SLOT_MS + INTERVAL_MS - PASS_MS
    assert world.issue(never_before_the_end) == 1


def test_a_pass_issues_at_most_per_pass_max(settings: Settings) -> None:
    clock = Clock()
    app = create_app(
        settings.with_overrides(cold_challenges_per_pass_max=2),
        clock_ms=clock,
        run_maintenance=False,
    )
    with TestClient(app, raise_server_exceptions=False) as api:
        user = make_user(api, "alice")
        world = World(api, clock, app.state.context, user, [make_node(api, user) for _ in range(5)])
        for node in world.nodes:
            world.place(node, "cold")
        assert [world.issue(), world.issue(), world.issue()] == [2, 2, 1]
        assert len({r.node_id for r in world.rows()}) == 5


def test_two_coordinators_issue_one_challenge_per_node_and_slot(world: World) -> None:
    """Both passes find the node owed before either writes; the slot's id keeps one."""
    node = world.nodes[0]
    world.place(node, "cold")
    plans = [
        challenging.plan_challenges(
            world.ctx.read_uow(), world.schedule, world.clock(), randbelow=lambda n: 0
        )
        for _ in range(2)
    ]
    assert [[c.node_id for c in plan] for plan in plans] == [[node.name], [node.name]]
    assert plans[0][0].seed != plans[1][0].seed
    assert [challenging.insert_challenges(world.ctx.uow(), plan) for plan in plans] == [1, 0]
    (row,) = world.rows()
    assert row.seed == plans[0][0].seed


def test_maintenance_issues_to_cold_nodes_when_due(world: World) -> None:
    cold, hot, _ = world.nodes
    world.place(cold, "cold")
    world.place(hot, "hot")
    world.clock.now_ms = SLOT_MS + INTERVAL_MS - 1  # less than a pass left: certain
    run_maintenance_once(world.ctx)
    assert [r.node_id for r in world.rows()] == [cold.name]
    run_maintenance_once(world.ctx)
    assert len(world.rows()) == 1
    (challenge,) = world.open(cold)["challenges"]
    assert world.answer(cold, challenge).json()["status"] == "passed"


def test_availability_counts_challenges_by_deadline(world: World) -> None:
    node, other, _ = world.nodes
    world.place(node, "cold")
    world.place(other, "cold")
    answers = ["passed", "wrong", "late", "passed", "unanswered"]
    slots = []
    for index, fate in enumerate(answers):
        world.clock.now_ms = SLOT_MS + index * INTERVAL_MS
        slots.append(world.clock())
        assert world.issue() == 2
        challenge = next(
            c for c in world.open(node)["challenges"] if c["issued_at_ms"] == world.clock()
        )
        if fate == "late":
            world.clock.now_ms += DEADLINE_MS + 1
        if fate != "unanswered":
            digest = "00" * 32 if fate == "wrong" else check_answer_sha256(challenge["seed"])
            assert world.answer(node, challenge, answer_sha256=digest).json()["status"] == fate
    end_ms = SLOT_MS + len(answers) * INTERVAL_MS
    assert world.availability(node, SLOT_MS, end_ms) == Availability(5, 2)
    # by deadline: [slot 1, slot 3) holds the deadlines of the second and third only
    window = (slots[1], slots[3])
    assert world.availability(node, *window) == Availability(2, 0)
    first_deadline = slots[0] + DEADLINE_MS
    assert world.availability(node, SLOT_MS, first_deadline) == Availability(0, 0)
    assert world.availability(node, SLOT_MS, first_deadline + 1) == Availability(1, 1)
    with world.ctx.read_uow() as uow:
        by_node = pool_availability.availability_by_node(uow.session, SLOT_MS, end_ms)
    assert by_node == {node.name: Availability(5, 2), other.name: Availability(5, 0)}
    assert world.availability(world.nodes[2]) == Availability(0, 0)


def test_a_replayed_listing_reads_the_same(world: World) -> None:
    """The listing is read-only: the same signed request twice gives the same answer."""
    node = world.nodes[0]
    _issued_one(world, node)
    signature = sign_request(
        node.key,
        key_id=node.key_id,
        method="GET",
        path="/v1/challenges",
        body=b"",
        timestamp_s=world.clock.s,
    )
    first = world.api.get("/v1/challenges", headers=signature.headers())
    second = world.api.get("/v1/challenges", headers=signature.headers())
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_challenges_past_their_retention_are_pruned(world: World) -> None:
    node = world.nodes[0]
    world.place(node, "cold")
    retention_ms = world.ctx.settings.cold_challenge_retention_s * 1000
    first_ms = world.clock()
    assert world.issue() == 1
    world.clock.now_ms += INTERVAL_MS
    assert world.issue() == 1
    prune = challenging.prune_challenges
    world.clock.now_ms = first_ms + DEADLINE_MS + retention_ms  # the first is just kept
    assert prune(world.ctx.read_uow(), world.ctx.uow(), world.clock(), retention_ms) == 0
    world.clock.now_ms += 1
    assert prune(world.ctx.read_uow(), world.ctx.uow(), world.clock(), retention_ms) == 1
    assert [r.issued_at_ms for r in world.rows()] == [first_ms + INTERVAL_MS]
