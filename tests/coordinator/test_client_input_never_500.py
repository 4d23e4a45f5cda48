"""Whatever a client sends, the coordinator answers with a problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexapod.coordinator.app import create_app
from nexapod.settings import Settings
from tests.factories import Actor, make_node, make_user, signed

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KNOWN_KEYS = st.sampled_from(
    [
        "units_max",
        "results",
        "document",
        "signature",
        "workload",
        "dataset",
        "params",
        "code",
        "detail",
        "kind",
        "n_spectra",
        "seed",
        "result_b64",
        "lease_id",
        "username",
    ]
)
BODIES = JSON_VALUES | st.dictionaries(KNOWN_KEYS, JSON_VALUES, max_size=5)
SIGNED_PATHS = [
    "/v1/leases",
    "/v1/results",
    "/v1/jobs",
    "/v1/leases/" + "a" * 32 + "/failure",
    "/v1/challenges/" + "a" * 32,
]
UNSIGNED_PATHS = ["/v1/users", "/v1/nodes", "/v1/releases"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Actor, Actor]]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(data_dir=root, database_url=f"sqlite:///{root}/c.sqlite3"), run_maintenance=False
    )
    with TestClient(app, raise_server_exceptions=False) as api:
        user = make_user(api, "fuzzer")
        yield api, user, make_node(api, user)


def _assert_problem(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert "." in response.json()["code"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, path=st.sampled_from(SIGNED_PATHS), as_user=st.booleans())
def test_signed_routes_refuse_junk_cleanly(
    world: tuple[TestClient, Actor, Actor], body: Any, path: str, as_user: bool
) -> None:
    api, user, node = world
    _assert_problem(signed(api, user if as_user else node, "POST", path, body))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, path=st.sampled_from(UNSIGNED_PATHS + SIGNED_PATHS))
def test_unsigned_junk_is_refused_cleanly(
    world: tuple[TestClient, Actor, Actor], body: Any, path: str
) -> None:
    api, _, _ = world
    _assert_problem(
        api.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=64), path=st.sampled_from(UNSIGNED_PATHS + SIGNED_PATHS))
def test_raw_bytes_are_refused_cleanly(
    world: tuple[TestClient, Actor, Actor], raw: bytes, path: str
) -> None:
    api, _, node = world
    _assert_problem(signed(api, node, "POST", path, raw=raw))
    _assert_problem(api.post(path, content=raw))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/zzz",
        "/v1/jobs/" + "0" * 32,
        "/v1/jobs/" + "0" * 32 + "/blocks/-1",
        "/v1/jobs/" + "0" * 32 + "/product",
        "/v1/jobs/" + "0" * 32 + "/atlas/99",
        "/v1/nodes/x",
        "/v1/users/nobody",
        "/v1/jobs?limit=0",
        "/v1/jobs?cursor=nope",
    ],
)
def test_bad_reads_are_problems(world: tuple[TestClient, Actor, Actor], path: str) -> None:
    api, _, _ = world
    response = api.get(path)
    assert 400 <= response.status_code < 500
    _assert_problem(response)
