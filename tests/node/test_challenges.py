"""The node's challenge responder: signs right answers, follows the coordinator's pace,
and rides out refusals and outages (the coordinator side: tests/pools)."""

from __future__ import annotations

from typing import Any

import pytest

from nexapod.crypto import SigningKey, verify_document
from nexapod.errors import NexaPodError
from nexapod.node.challenges import POLL_S_MIN, ChallengeResponder
from nexapod.node.client import RemoteError
from nexapod.protocol.v1 import (
    PURPOSE_CHALLENGE_ANSWER,
    ChallengeAnswer,
    ChallengeList,
    ChallengeOutcome,
    ChallengeView,
)
from nexapod.workloads.liveness import CHECK_KIND, check_answer_sha256

NODE_ID = "ab" * 16
POLL_S_MAX = 60.0


def _view(kind: str = CHECK_KIND, seed: str = "5e" * 32) -> ChallengeView:
    return ChallengeView(
        challenge_id="c" * 32, kind=kind, seed=seed, issued_at_ms=1, deadline_at_ms=60_001
    )


class Coordinator:
    """Stands in for the HTTP client: what it lists, what it answers, what it was sent."""

    def __init__(self, listed: ChallengeList | Exception, answer: Exception | None = None):
        self.listed = listed
        self.answer = answer
        self.sent: list[tuple[str, ChallengeAnswer]] = []

    def open_challenges(self) -> ChallengeList:
        if isinstance(self.listed, Exception):
            raise self.listed
        return self.listed

    def answer_challenge(self, challenge_id: str, answer: ChallengeAnswer) -> ChallengeOutcome:
        self.sent.append((challenge_id, answer))
        if self.answer is not None:
            raise self.answer
        return ChallengeOutcome(
            challenge_id=challenge_id, status="passed", answered_at_ms=2, deadline_at_ms=60_001
        )


def _responder(coordinator: Coordinator, key: SigningKey | None = None) -> ChallengeResponder:
    client: Any = coordinator
    return ChallengeResponder(
        node_id=NODE_ID, key=key or SigningKey.generate(), client=client, poll_s_max=POLL_S_MAX
    )


def test_an_open_challenge_gets_the_signed_right_answer() -> None:
    key = SigningKey.generate()
    coordinator = Coordinator(ChallengeList(challenges=[_view()], poll_after_s=7))
    responder = _responder(coordinator, key)
    assert responder.poll_once() == 7.0
    ((challenge_id, answer),) = coordinator.sent
    assert challenge_id == "c" * 32
    assert answer.document.model_dump() == {
        "challenge_id": "c" * 32,
        "node_id": NODE_ID,
        "seed": "5e" * 32,
        "answer_sha256": check_answer_sha256("5e" * 32),
    }
    document = answer.document.model_dump()
    assert verify_document(key.public_key_b64, answer.signature, PURPOSE_CHALLENGE_ANSWER, document)
    assert (responder.counts.answered, responder.counts.passed) == (1, 1)


@pytest.mark.parametrize(("asked_s", "waited_s"), [(0, POLL_S_MIN), (10**6, POLL_S_MAX)])
def test_the_pace_is_the_coordinators_within_bounds(asked_s: int, waited_s: float) -> None:
    coordinator = Coordinator(ChallengeList(challenges=[], poll_after_s=asked_s))
    assert _responder(coordinator).poll_once() == waited_s


@pytest.mark.parametrize(
    "failure",
    [
        RemoteError(404, "protocol.not_found", "Not Found", {}),  # a coordinator without them
        RemoteError(503, "internal", "down", {}),
        NexaPodError("unreachable", "cannot reach the coordinator"),
    ],
)
def test_a_failed_poll_waits_the_longest_and_goes_on(failure: Exception) -> None:
    assert _responder(Coordinator(failure)).poll_once() == POLL_S_MAX


def test_a_challenge_of_an_unknown_kind_is_left_unanswered() -> None:
    coordinator = Coordinator(ChallengeList(challenges=[_view(kind="other.v9")], poll_after_s=5))
    responder = _responder(coordinator)
    assert responder.poll_once() == 5.0
    assert coordinator.sent == []
    assert responder.counts.refused == 1


@pytest.mark.parametrize(
    ("failure", "refused"),
    [
        (RemoteError(403, "pools.challenge_not_yours", "no", {}), 1),
        (RemoteError(503, "internal", "down", {}), 0),
        (NexaPodError("unreachable", "cannot reach the coordinator"), 0),
    ],
)
def test_a_refused_or_unsent_answer_is_counted_apart(failure: Exception, refused: int) -> None:
    coordinator = Coordinator(ChallengeList(challenges=[_view()], poll_after_s=5), failure)
    responder = _responder(coordinator)
    assert responder.poll_once() == 5.0
    assert len(coordinator.sent) == 1
    assert (responder.counts.answered, responder.counts.refused) == (0, refused)


def test_the_thread_stops_promptly() -> None:
    coordinator = Coordinator(ChallengeList(challenges=[], poll_after_s=1000))
    responder = _responder(coordinator)
    responder.start()
    responder.stop()
    assert not responder._thread.is_alive()
