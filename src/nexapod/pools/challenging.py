"""Cold-pool liveness challenges in the database: issue, list, answer, prune.

The rules are in ``challenges`` (pure), the check unit in ``nexapod.workloads.liveness``
(shared with the node agent), the availability figures in ``availability``. Issuing runs
in the coordinator's maintenance pass and is safe with several coordinators over one
database: a node's challenge in a slot has one id whoever issues it, and the insert keeps
the first (``ON CONFLICT DO NOTHING``). The check units' answers are computed outside the
write transaction, so issuing holds SQLite's write lock only for the inserts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nexapod.crypto import verify_document
from nexapod.ledger import log_store
from nexapod.pools import challenge_errors as errors
from nexapod.pools.challenges import (
    ChallengeSchedule,
    answer_status,
    challenge_id_for,
    issue_now,
    poll_after_s,
    recorded_status,
    slot_start_ms,
)
from nexapod.pools.store import ColdChallengeRow, PoolMemberRow
from nexapod.protocol.v1 import (
    PURPOSE_CHALLENGE_ANSWER,
    ChallengeAnswer,
    ChallengeList,
    ChallengeOutcome,
    ChallengeView,
)
from nexapod.registry import blacklist
from nexapod.registry import errors as registry_errors
from nexapod.registry.store import NodeRow
from nexapod.settings import COLD_CHALLENGE_DEADLINE_S_MAX, Settings
from nexapod.storage.uow import UnitOfWork
from nexapod.workloads.liveness import CHECK_KIND, SEED_HEX_CHARS, check_answer_sha256

__all__ = [
    "CANDIDATES_PER_PASS_MAX",
    "OPEN_LISTED_MAX",
    "PRUNED_PER_PASS_MAX",
    "NewChallenge",
    "answer_challenge",
    "challenge_schedule",
    "insert_challenges",
    "issue_due_challenges",
    "open_challenges",
    "plan_challenges",
    "prune_challenges",
]

# Cold nodes one pass looks at, from a random node id on (past it, a node is looked at in
# fewer passes: its challenge comes later in the slot, or not at all in that slot, which
# does not count against it).
CANDIDATES_PER_PASS_MAX = 50_000
OPEN_LISTED_MAX = 16  # at most one is open at a time; a few more survive a settings change
PRUNED_PER_PASS_MAX = 10_000  # a backlog of expired challenges goes over several passes
# No challenge is open longer than the largest deadline the settings allow, so queries
# look back only this far on the (node_id, issued_at_ms) index.
_DEADLINE_MS_MAX = COLD_CHALLENGE_DEADLINE_S_MAX * 1000
_NODE_ID_SPACE = 16**32
_COLD = "cold"


@dataclass(frozen=True)
class NewChallenge:
    """A challenge planned by a pass, ready to insert."""

    challenge_id: str
    node_id: str
    seed: str
    expected_sha256: str
    issued_at_ms: int
    deadline_at_ms: int

    def __post_init__(self) -> None:
        assert len(self.challenge_id) == 32
        assert self.issued_at_ms < self.deadline_at_ms


def _new_seed() -> str:
    return secrets.token_hex(SEED_HEX_CHARS // 2)


def challenge_schedule(settings: Settings, pass_ms: int) -> ChallengeSchedule:
    """The schedule the settings describe, for passes every ``pass_ms``."""
    return ChallengeSchedule(
        interval_ms=settings.cold_challenge_interval_s * 1000,
        deadline_ms=settings.cold_challenge_deadline_s * 1000,
        poll_s=settings.cold_challenge_poll_s,
        per_pass_max=settings.cold_challenges_per_pass_max,
        pass_ms=pass_ms,
    )


def issue_due_challenges(
    read_uow: UnitOfWork,
    uow: UnitOfWork,
    schedule: ChallengeSchedule,
    now_ms: int,
    *,
    randbelow: Callable[[int], int] = secrets.randbelow,
    new_seed: Callable[[], str] = _new_seed,
) -> int:
    """Issue this pass's challenges to cold nodes; returns how many were inserted.

    A cold node is owed one challenge per slot and never has two open at once; each owed
    node gets it now with the chance of ``issue_now``, at most ``per_pass_max`` in all.
    """
    planned = plan_challenges(read_uow, schedule, now_ms, randbelow=randbelow, new_seed=new_seed)
    return insert_challenges(uow, planned)


def plan_challenges(
    read_uow: UnitOfWork,
    schedule: ChallengeSchedule,
    now_ms: int,
    *,
    randbelow: Callable[[int], int] = secrets.randbelow,
    new_seed: Callable[[], str] = _new_seed,
) -> list[NewChallenge]:
    """The challenges to issue now, each with its expected answer (computed here, outside
    any write transaction: a millisecond of numpy each)."""
    slot_start = slot_start_ms(now_ms, schedule.interval_ms)
    remaining_ms = slot_start + schedule.interval_ms - now_ms
    with read_uow:
        pivot = f"{randbelow(_NODE_ID_SPACE):032x}"
        candidates = _owed_nodes(read_uow.session, now_ms, slot_start, pivot)
    chosen = [
        node_id
        for node_id in candidates
        if issue_now(randbelow(remaining_ms), remaining_ms, schedule.pass_ms)
    ][: schedule.per_pass_max]
    planned = []
    for node_id in chosen:
        seed = new_seed()
        assert len(seed) == SEED_HEX_CHARS
        planned.append(
            NewChallenge(
                challenge_id=challenge_id_for(node_id, slot_start),
                node_id=node_id,
                seed=seed,
                expected_sha256=check_answer_sha256(seed),
                issued_at_ms=now_ms,
                deadline_at_ms=now_ms + schedule.deadline_ms,
            )
        )
    assert len(planned) <= schedule.per_pass_max
    return planned


def insert_challenges(uow: UnitOfWork, planned: list[NewChallenge]) -> int:
    """Insert planned challenges in one transaction, skipping any whose id exists (another
    coordinator issued the node's challenge of that slot first); returns how many."""
    if not planned:
        return 0
    with uow:
        # Issuers one at a time (PostgreSQL; SQLite's write transaction already is), and the
        # "none open" condition checked again inside: a plan made on a snapshot may be stale
        # when another coordinator issued meanwhile.
        log_store.lock_log(uow.session)
        open_deadlines: dict[str, int] = {}
        for node_id, deadline_ms in uow.session.execute(
            select(ColdChallengeRow.node_id, ColdChallengeRow.deadline_at_ms).where(
                ColdChallengeRow.node_id.in_(sorted({c.node_id for c in planned})),
                ColdChallengeRow.answered_at_ms.is_(None),
            )
        ):
            open_deadlines[node_id] = max(deadline_ms, open_deadlines.get(node_id, 0))
        inserted = sum(
            _insert_new(uow, challenge)
            for challenge in planned
            if open_deadlines.get(challenge.node_id, -1) < challenge.issued_at_ms
        )
        uow.commit()
    assert 0 <= inserted <= len(planned)
    return inserted


def _owed_nodes(session: Session, now_ms: int, slot_start: int, pivot: str) -> list[str]:
    """Cold nodes (not blacklisted) with no challenge in this slot and none open.

    Up to CANDIDATES_PER_PASS_MAX, in node id order from ``pivot`` on, wrapping around, so
    that a bound reached does not always leave out the same nodes.
    """
    challenge = ColdChallengeRow
    served = (
        select(challenge.challenge_id)
        .where(
            challenge.node_id == PoolMemberRow.node_id,
            challenge.issued_at_ms >= min(slot_start, now_ms - _DEADLINE_MS_MAX),
            or_(
                challenge.issued_at_ms >= slot_start,
                and_(challenge.answered_at_ms.is_(None), challenge.deadline_at_ms >= now_ms),
            ),
        )
        .correlate(PoolMemberRow)
    )
    owed = select(PoolMemberRow.node_id).where(
        PoolMemberRow.pool == _COLD,
        ~served.exists(),
        PoolMemberRow.node_id.not_in(blacklist.listed_node_ids()),
    )
    found = list(
        session.scalars(
            owed.where(PoolMemberRow.node_id >= pivot)
            .order_by(PoolMemberRow.node_id)
            .limit(CANDIDATES_PER_PASS_MAX)
        )
    )
    if len(found) < CANDIDATES_PER_PASS_MAX:
        found += session.scalars(
            owed.where(PoolMemberRow.node_id < pivot)
            .order_by(PoolMemberRow.node_id)
            .limit(CANDIDATES_PER_PASS_MAX - len(found))
        )
    assert len(found) <= CANDIDATES_PER_PASS_MAX
    assert len(set(found)) == len(found)
    return found


def _insert_new(uow: UnitOfWork, challenge: NewChallenge) -> int:
    """Insert a challenge unless one with its id exists (another coordinator's); 1 or 0."""
    dialect = postgresql if uow.dialect_name == "postgresql" else sqlite
    statement = (
        dialect.insert(ColdChallengeRow)
        .values(**asdict(challenge), answered_at_ms=None, passed=False)
        .on_conflict_do_nothing(index_elements=["challenge_id"])
        .returning(ColdChallengeRow.challenge_id)
    )
    count = len(uow.session.execute(statement).all())
    assert count in (0, 1)
    return count


def prune_challenges(read_uow: UnitOfWork, uow: UnitOfWork, now_ms: int, retention_ms: int) -> int:
    """Delete challenges whose deadline is more than ``retention_ms`` ago (at most
    PRUNED_PER_PASS_MAX); returns how many. The table would otherwise grow by one row per
    cold node and interval forever; a paid stipend keeps its counts in its own row.

    Looks first without the write lock, so a pass with nothing to prune writes nothing.
    """
    assert retention_ms > _DEADLINE_MS_MAX
    cutoff_ms = now_ms - retention_ms
    with read_uow:
        stale = list(
            read_uow.session.scalars(
                select(ColdChallengeRow.challenge_id)
                .where(ColdChallengeRow.deadline_at_ms < cutoff_ms)
                .order_by(ColdChallengeRow.deadline_at_ms)
                .limit(PRUNED_PER_PASS_MAX)
            )
        )
    if not stale:
        return 0
    with uow:
        result = uow.session.execute(
            delete(ColdChallengeRow).where(
                ColdChallengeRow.challenge_id.in_(stale),
                ColdChallengeRow.deadline_at_ms < cutoff_ms,
            )
        )
        uow.commit()
    count: int = result.rowcount  # type: ignore[attr-defined]
    assert 0 <= count <= len(stale)
    return count


def open_challenges(
    uow: UnitOfWork, node_id: str, now_ms: int, schedule: ChallengeSchedule
) -> ChallengeList:
    """The node's unanswered challenges whose deadline has not passed, oldest first."""
    session = uow.session
    pool = session.scalar(select(PoolMemberRow.pool).where(PoolMemberRow.node_id == node_id))
    rows = session.scalars(
        select(ColdChallengeRow)
        .where(
            ColdChallengeRow.node_id == node_id,
            ColdChallengeRow.issued_at_ms >= now_ms - _DEADLINE_MS_MAX,
            ColdChallengeRow.issued_at_ms <= now_ms,
            ColdChallengeRow.answered_at_ms.is_(None),
            ColdChallengeRow.deadline_at_ms >= now_ms,
        )
        .order_by(ColdChallengeRow.issued_at_ms, ColdChallengeRow.challenge_id)
        .limit(OPEN_LISTED_MAX)
    ).all()
    views = [
        ChallengeView(
            challenge_id=row.challenge_id,
            kind=CHECK_KIND,
            seed=row.seed,
            issued_at_ms=row.issued_at_ms,
            deadline_at_ms=row.deadline_at_ms,
        )
        for row in rows
    ]
    return ChallengeList(challenges=views, poll_after_s=poll_after_s(pool == _COLD, schedule))


def answer_challenge(
    uow: UnitOfWork, node_id: str, challenge_id: str, answer: ChallengeAnswer, now_ms: int
) -> ChallengeOutcome:
    """Record the node's signed answer; the first answer counts, a repeat gets its outcome.

    Refusals (unknown, another node's, a document bound to something else, a bad
    signature) change nothing. An answer past the deadline is recorded as late.
    """
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    row = session.get(ColdChallengeRow, challenge_id, with_for_update=True)
    if row is None or row.issued_at_ms > now_ms:
        raise errors.challenge_unknown(challenge_id)
    if row.node_id != node_id:
        raise errors.challenge_not_yours(challenge_id)
    document = answer.document
    if document.node_id != node_id:
        raise errors.challenge_node_mismatch()
    if document.challenge_id != challenge_id:
        raise errors.challenge_mismatch("the answer document names another challenge")
    if document.seed != row.seed:
        raise errors.challenge_mismatch("the answer document names another seed")
    if not verify_document(
        node.public_key, answer.signature, PURPOSE_CHALLENGE_ANSWER, document.model_dump()
    ):
        raise errors.challenge_signature_invalid()
    node.last_seen_at_ms = max(node.last_seen_at_ms, now_ms)
    if row.answered_at_ms is None:
        correct = document.answer_sha256 == row.expected_sha256
        status = answer_status(now_ms, row.deadline_at_ms, correct)
        row.answered_at_ms = now_ms
        row.passed = status == "passed"
    else:
        status = recorded_status(row.answered_at_ms, row.deadline_at_ms, row.passed)
    outcome = ChallengeOutcome(
        challenge_id=challenge_id,
        status=status,
        answered_at_ms=row.answered_at_ms,
        deadline_at_ms=row.deadline_at_ms,
    )
    uow.commit()
    return outcome
