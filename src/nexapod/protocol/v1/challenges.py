"""Liveness challenges of cold-pool nodes: the open ones, a signed answer, its outcome.

See docs/cold-challenges.md. A challenge names a check unit (``kind``) and its seed; the
node computes the unit and answers the SHA-256 of its result bytes, in a document signed
with its node key for ``nexapod.challenge_answer.v1``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nexapod.protocol.v1._base import HEX64, SIGNATURE_B64, WireModel

__all__ = [
    "CHALLENGE_STATUSES",
    "ChallengeAnswer",
    "ChallengeAnswerDocument",
    "ChallengeList",
    "ChallengeOutcome",
    "ChallengeView",
]

ChallengeId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
# "passed": the right answer by the deadline; "late": after it (right or wrong, it does
# not count); "wrong": by the deadline, but not the check unit's answer.
ChallengeStatus = Literal["passed", "late", "wrong"]
CHALLENGE_STATUSES: tuple[ChallengeStatus, ...] = ("passed", "late", "wrong")


class ChallengeView(WireModel):
    """An open challenge: compute the ``kind`` check unit of ``seed`` by the deadline."""

    challenge_id: ChallengeId
    kind: str
    seed: HEX64
    issued_at_ms: int
    deadline_at_ms: int


class ChallengeList(WireModel):
    """The signer's open challenges, and when to ask again (the coordinator sets the pace)."""

    challenges: list[ChallengeView]
    poll_after_s: int


class ChallengeAnswerDocument(WireModel):
    """What a node signs: binds the challenge, the node, the seed and the answer."""

    challenge_id: ChallengeId
    node_id: Annotated[str, Field(max_length=40)]
    seed: HEX64
    answer_sha256: HEX64


class ChallengeAnswer(WireModel):
    document: ChallengeAnswerDocument
    signature: SIGNATURE_B64


class ChallengeOutcome(WireModel):
    """How the coordinator recorded the answer; the first answer to a challenge counts."""

    challenge_id: str
    status: ChallengeStatus
    answered_at_ms: int
    deadline_at_ms: int
