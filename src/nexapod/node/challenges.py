"""Answer the coordinator's liveness challenges, on a thread of their own.

A cold node's stipend depends on answering small check units in time (ECONOMICS.md §4,
docs/cold-challenges.md). The responder asks ``GET /v1/challenges`` at the pace the
coordinator sets (``poll_after_s``: often for a cold node, rarely for others), computes
each open challenge's check unit (about a millisecond of numpy on one BLAS thread) and
posts the signed answer. It runs beside the run loop, not between units: a unit may run
far longer than a challenge's deadline, and the one cheap request every few seconds
never delays leasing or running work.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from nexapod.crypto import SigningKey, sign_document
from nexapod.errors import NexaPodError
from nexapod.logs import log_event
from nexapod.node.client import CoordinatorClient, RemoteError
from nexapod.protocol.v1 import (
    PURPOSE_CHALLENGE_ANSWER,
    ChallengeAnswer,
    ChallengeAnswerDocument,
    ChallengeView,
)
from nexapod.workloads.liveness import CHECK_KIND

__all__ = ["POLL_S_MIN", "ChallengeCounts", "ChallengeResponder", "answer_for"]

logger = logging.getLogger("nexapod.node.challenges")
POLL_S_MIN = 1.0
STOP_WAIT_S = 5.0


@dataclass
class ChallengeCounts:
    """What the responder did, for the operator's summary."""

    answered: int = 0
    passed: int = 0
    refused: int = 0  # answers the coordinator refused, or challenges it could not answer


def answer_for(node_id: str, key: SigningKey, view: ChallengeView) -> ChallengeAnswer:
    """Compute the challenge's check unit and sign the answer (node, challenge, seed)."""
    from threadpoolctl import threadpool_limits

    from nexapod.workloads.liveness import check_answer_sha256

    assert view.kind == CHECK_KIND
    with threadpool_limits(limits=1):  # never compete with a running unit for cores
        answer_sha256 = check_answer_sha256(view.seed)
    document = ChallengeAnswerDocument(
        challenge_id=view.challenge_id, node_id=node_id, seed=view.seed, answer_sha256=answer_sha256
    )
    signature = sign_document(key, PURPOSE_CHALLENGE_ANSWER, document.model_dump())
    return ChallengeAnswer(document=document, signature=signature)


class ChallengeResponder:
    """Polls for open challenges and answers them until stopped."""

    def __init__(
        self, *, node_id: str, key: SigningKey, client: CoordinatorClient, poll_s_max: float
    ) -> None:
        assert poll_s_max >= POLL_S_MIN
        self.node_id = node_id
        self.key = key
        self.client = client
        self.poll_s_max = poll_s_max
        self.counts = ChallengeCounts()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexapod-challenges", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; a request under way may finish (bounded by the client's timeout)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.poll_once())

    def poll_once(self) -> float:
        """Answer every open challenge once; returns the seconds to wait before the next poll.

        A coordinator that is down or refuses the poll (an older one without the route, a
        blacklisted node) is asked again after ``poll_s_max``; the run loop deals with it.
        """
        try:
            listed = self.client.open_challenges()
        except NexaPodError as exc:
            log_event(logger, "challenge.poll_failed", code=exc.code, detail=exc.detail[:200])
            return self.poll_s_max
        for view in listed.challenges:
            if self._stop.is_set():
                break
            self._answer(view)
        return min(self.poll_s_max, max(POLL_S_MIN, float(listed.poll_after_s)))

    def _answer(self, view: ChallengeView) -> None:
        if view.kind != CHECK_KIND:
            self.counts.refused += 1
            log_event(logger, "challenge.unknown_kind", challenge_id=view.challenge_id)
            return
        started = time.monotonic()
        answer = answer_for(self.node_id, self.key, view)
        try:
            outcome = self.client.answer_challenge(view.challenge_id, answer)
        except NexaPodError as exc:
            refused = isinstance(exc, RemoteError) and exc.http_status < 500
            self.counts.refused += refused
            event = "challenge.refused" if refused else "challenge.unsent"
            log_event(logger, event, challenge_id=view.challenge_id, code=exc.code)
            return
        self.counts.answered += 1
        self.counts.passed += outcome.status == "passed"
        log_event(
            logger,
            "challenge.answered",
            challenge_id=view.challenge_id,
            status=outcome.status,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
