"""nexapod.workloads: the registry, the public names, and what importing loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nexapod.workloads
from nexapod.errors import WorkloadError
from nexapod.workloads import WORKLOADS, atlas, unit_module


def test_unit_module_of_atlas() -> None:
    assert unit_module("atlas") == "nexapod.workloads.atlas.unit"
    assert WORKLOADS["atlas"].unit_version == 1


def test_unknown_workload_is_refused() -> None:
    with pytest.raises(WorkloadError) as caught:
        unit_module("folding")
    assert caught.value.code == "workload.unknown_workload"


@pytest.mark.parametrize("module", [nexapod.workloads, atlas])
def test_all_lists_exactly_the_public_names(module: object) -> None:
    exported = list(module.__all__)  # type: ignore[attr-defined]
    assert exported == sorted(exported)
    public = {name for name in dir(module) if not name.startswith("_")}
    assert set(exported) <= public
    for name in exported:
        assert getattr(module, name) is not None


def test_atlas_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        atlas.no_such_name  # noqa: B018


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_importing_the_packages_loads_no_numpy() -> None:
    loaded = _modules_after("import nexapod.workloads.atlas, nexapod.workloads.atlas.unit")
    assert "numpy" not in loaded


def test_the_sandbox_unit_imports_only_stdlib_and_numpy() -> None:
    loaded = _modules_after("from nexapod.workloads.atlas import _codec, _kernel, _unitio, unit")
    assert "numpy" in loaded
    forbidden = ("pydantic", "fastapi", "httpx", "pyteomics", "sqlalchemy", "matchms")
    assert not [name for name in loaded if name.split(".")[0] in forbidden]
    ours = {name for name in loaded if name.startswith("nexapod.")}
    allowed = ("nexapod.errors", "nexapod.workloads")
    assert all(name.startswith(allowed) for name in ours), ours
