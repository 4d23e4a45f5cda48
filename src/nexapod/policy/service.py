"""Record the active policy: a change of policy is an auditable event in the ledger's log."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nexapod.crypto import canonical_json
from nexapod.ledger import log_store
from nexapod.policy._policy import Policy
from nexapod.policy.store import PolicyActivationRow
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["ensure_policy_recorded", "record_active_policy"]


def ensure_policy_recorded(session: Session, policy: Policy, now_ms: int) -> bool:
    """In the caller's transaction: log ``policy`` as active unless it already is.

    Takes the log's lock first, so coordinator processes racing here record one
    activation, not one each. True when it was a change.
    """
    log_store.lock_log(session)
    latest = session.scalars(
        select(PolicyActivationRow).order_by(PolicyActivationRow.activation_id.desc()).limit(1)
    ).first()
    if latest is not None and latest.policy_sha256 == policy.sha256:
        return False
    values = policy.as_dict()
    body = {"policy_sha256": policy.sha256, "policy": values, "at_ms": now_ms}
    log_index = log_store.append_entries(session, "policy_activated", [body])
    session.add(
        PolicyActivationRow(
            policy_sha256=policy.sha256,
            policy_json=canonical_json(values).decode(),
            activated_at_ms=now_ms,
            log_index=log_index,
        )
    )
    return True


def record_active_policy(uow_factory: UnitOfWorkFactory, policy: Policy, now_ms: int) -> bool:
    """:func:`ensure_policy_recorded` in its own unit of work (committed)."""
    with uow_factory() as uow:
        changed = ensure_policy_recorded(uow.session, policy, now_ms)
        uow.commit()
    return changed
