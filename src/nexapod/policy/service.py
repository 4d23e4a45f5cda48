"""Record the active policy: a change of policy is an auditable event in the ledger's log."""

from __future__ import annotations

from sqlalchemy import select

from nexapod.crypto import canonical_json
from nexapod.ledger import log_store
from nexapod.policy._policy import Policy
from nexapod.policy.store import PolicyActivationRow
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["record_active_policy"]


def record_active_policy(uow_factory: UnitOfWorkFactory, policy: Policy, now_ms: int) -> bool:
    """Log ``policy`` as active unless it already is; True when it was a change.

    The check and the append share one transaction under the log's lock, so coordinator
    processes starting together record one activation, not one each.
    """
    with uow_factory() as uow:
        session = uow.session
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
        uow.commit()
    return True
