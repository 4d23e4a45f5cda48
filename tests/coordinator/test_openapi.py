"""The checked-in OpenAPI document is the contract: it must match the app exactly."""

from __future__ import annotations

import json
from pathlib import Path

from nexapod.coordinator.app import create_app
from nexapod.settings import Settings

CHECKED_IN = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_openapi_document_has_not_drifted(tmp_path: Path) -> None:
    current = create_app(Settings(data_dir=tmp_path), run_maintenance=False).openapi()
    checked_in = json.loads(CHECKED_IN.read_text())
    assert current == checked_in, (
        "the API changed: review the change, then run "
        "`nexapod coordinator openapi --out docs/openapi.json`"
    )


def test_every_route_documents_problem_responses(tmp_path: Path) -> None:
    document = create_app(Settings(data_dir=tmp_path), run_maintenance=False).openapi()
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/") or path == "/v1/health":
            continue
        for method, operation in operations.items():
            assert "422" in operation["responses"], (method, path)
            problem = operation["responses"]["404"]["content"]
            assert "application/problem+json" in problem, (method, path)
