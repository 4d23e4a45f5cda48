"""A small world of users, nodes and validated work, written into a migrated store."""

from __future__ import annotations

from nexapod.pools.synthetic import add_nodes, add_users, add_validated_work
from nexapod.storage.uow import UnitOfWorkFactory


def seed_world(
    uow_factory: UnitOfWorkFactory,
    nodes: list[tuple[str, str, int]],
    work: list[tuple[str, int, int]],
    now_ms: int = 0,
) -> None:
    """Users and nodes (node_id, username, capacity), then (node_id, flops, at_ms) results."""
    owners = {node_id: user for node_id, user, _ in nodes}
    with uow_factory() as uow:
        add_users(uow.session, sorted(set(owners.values())), now_ms)
        add_nodes(uow.session, nodes, now_ms)
        add_validated_work(
            uow.session, [(n, owners[n], flops, at) for n, flops, at in work], first_unit_index=0
        )
        uow.commit()
