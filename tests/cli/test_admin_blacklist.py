"""`nexapod admin blacklist list|show|lift` on the coordinator's own store."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nexapod.cli.main import app as cli
from nexapod.coordinator.app import create_app
from nexapod.settings import Settings
from tests.factories import make_node, make_user, result_item
from tests.mesh.test_mesh_api import Clock, _compute, _lease, _submit, _submit_results


@pytest.fixture
def caught(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """A store with one node blacklisted for an impossible time."""
    clock = Clock()
    app = create_app(settings, clock_ms=clock, run_maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as api:
        mallory = make_user(api, "mallory")
        node = make_node(api, mallory, capacity_flops_per_s=1000)
        _submit(api, mallory, clock)
        (grant,) = _lease(api, node, clock, 1)
        refused = _submit_results(
            api, node, clock, [result_item(node, grant, _compute(api, grant))]
        )
        assert refused.json()["code"] == "mesh.result_implausible"
        yield settings, node.name


def test_list_show_and_lift(caught: tuple[Settings, str]) -> None:
    settings, node_id = caught
    store = ["--db", settings.resolved_database_url()]
    runner = CliRunner()
    listed = runner.invoke(cli, ["admin", "blacklist", "list", *store])
    assert listed.exit_code == 0, listed.output
    assert "implausible_time" in listed.output and "mallory" in listed.output
    shown = runner.invoke(cli, ["admin", "blacklist", "show", "1", *store])
    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.output)
    assert entry["node_id"] == node_id and entry["active"] is True
    assert entry["evidence"]["capacity_flops_per_s"] == 1000
    lifted = runner.invoke(
        cli, ["admin", "blacklist", "lift", "1", "--reason", "capacity re-measured", *store]
    )
    assert lifted.exit_code == 0, lifted.output
    assert "lifted entry 1" in lifted.output
    again = runner.invoke(cli, ["admin", "blacklist", "lift", "1", "--reason", "twice", *store])
    assert again.exit_code != 0
    assert "already lifted" in again.output
    unknown = runner.invoke(cli, ["admin", "blacklist", "show", "99", *store])
    assert unknown.exit_code != 0 and "no blacklist entry 99" in unknown.output
    active = runner.invoke(cli, ["admin", "blacklist", "list", *store])
    assert "no entries" in active.output
    history = runner.invoke(cli, ["admin", "blacklist", "list", "--all", *store])
    assert "implausible_time" in history.output
