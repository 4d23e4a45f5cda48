"""A migrated store on each backend, and a small world of users, nodes and validated work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from nexapod.pools.synthetic import add_nodes, add_users, add_validated_work
from nexapod.storage.engine import make_engine
from nexapod.storage.migrate import migrate_to_head
from nexapod.storage.uow import UnitOfWorkFactory, unit_of_work_factory


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate_to_head(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def uow_factory(engine: Engine) -> UnitOfWorkFactory:
    return unit_of_work_factory(engine)


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
