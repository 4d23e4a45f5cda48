"""Recording the active policy is an event in the ledger's log, once per change; a bad
policy stops the coordinator from starting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nexapod.coordinator.app import create_app
from nexapod.ledger import log_store
from nexapod.policy import PolicyError, default_policy, load_policy
from nexapod.policy.service import record_active_policy
from nexapod.settings import Settings

DEFAULT_TOML = (Path(__file__).parents[2] / "src/nexapod/policy/default.toml").read_text()


def _activations(settings: Settings) -> list[dict[str, object]]:
    """Start a coordinator with these settings and record its policy as settlement will."""
    app = create_app(settings, run_maintenance=False)
    with TestClient(app) as client:
        uow_factory = client.app.state.context.uow_factory  # type: ignore[attr-defined]
        record_active_policy(uow_factory, load_policy(settings.policy_file), 1_000)
        with uow_factory() as uow:
            size = log_store.read_tree_size(uow.session)
            entries = [json.loads(e) for _, e, _ in log_store.read_entries(uow.session, 0, size)]
    return [e for e in entries if e["kind"] == "policy_activated"]


def test_the_active_policy_is_logged_once_per_change(settings: Settings, tmp_path: Path) -> None:
    first = _activations(settings)
    assert [e["policy_sha256"] for e in first] == [default_policy().sha256]
    assert first[0]["policy"]["flops_per_nxc"] == "1000"  # type: ignore[index]
    assert _activations(settings) == first, "a restart with the same policy logs nothing"
    changed = tmp_path / "policy.toml"
    changed.write_text(DEFAULT_TOML.replace("epoch_s = 3600", "epoch_s = 1800"))
    after = _activations(settings.with_overrides(policy_file=changed))
    assert [e["policy_sha256"] for e in after] == [
        default_policy().sha256,
        load_policy(changed).sha256,
    ]


def test_a_policy_out_of_range_stops_the_start(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(DEFAULT_TOML.replace('max_user_share = "0.35"', 'max_user_share = "0.5"'))
    with pytest.raises(PolicyError, match=r"max_user_share = 0\.5 is outside its range"):
        create_app(settings.with_overrides(policy_file=bad), run_maintenance=False)
