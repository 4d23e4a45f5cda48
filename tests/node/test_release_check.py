"""The node's check of its runner against a signed release, on copies of the real package."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexapod.crypto import (
    PURPOSE_RELEASE,
    SigningKey,
    format_manifest,
    package_root,
    parse_manifest,
    sign_document,
)
from nexapod.errors import NodeError
from nexapod.node.release_check import (
    SANDBOX_FILES,
    RunnerRelease,
    load_manifest_file,
    verify_release_manifest,
    workload_scope,
)
from nexapod.workloads import unit_module
from tests.factories import copy_package, sign_tree

ATLAS = unit_module("atlas")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    return copy_package(tmp_path / "nexapod")


def test_an_untouched_copy_is_its_release(key: SigningKey, runner: Path) -> None:
    release = RunnerRelease(runner, sign_tree(key, runner))
    release.check_tree()
    release.check_workload(ATLAS)


def test_a_modified_tree_is_refused_naming_the_file(key: SigningKey, runner: Path) -> None:
    release = RunnerRelease(runner, sign_tree(key, runner))
    with (runner / "node" / "agent.py").open("a") as file:
        file.write("\n# patched\n")
    with pytest.raises(NodeError) as refused:
        release.check_tree()
    assert refused.value.code == "node.runner_modified"
    assert "changed: node/agent.py" in refused.value.detail
    assert "release 1.0.0" in refused.value.detail
    release.check_workload(ATLAS)  # the agent's own code is not what a unit runs


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("modify", "changed: workloads/atlas/_kernel.py"),
        ("add", "not in the release: workloads/atlas/extra.py"),
        ("remove", "missing: workloads/atlas/_kernel.py"),
        ("worker", "changed: workloads/worker.py"),
    ],
)
def test_a_modified_workload_is_refused(
    key: SigningKey, runner: Path, change: str, named: str
) -> None:
    release = RunnerRelease(runner, sign_tree(key, runner))
    atlas = runner / "workloads" / "atlas"
    if change == "modify":
        (atlas / "_kernel.py").write_bytes((atlas / "_kernel.py").read_bytes() + b" ")
    elif change == "add":
        (atlas / "extra.py").write_text("")
    elif change == "remove":
        (atlas / "_kernel.py").unlink()
    else:
        (runner / "workloads" / "worker.py").write_text("")
    with pytest.raises(NodeError) as refused:
        release.check_workload(ATLAS)
    assert refused.value.code == "node.workload_modified"
    assert named in refused.value.detail


def test_a_symlink_in_the_tree_is_refused(key: SigningKey, runner: Path, tmp_path: Path) -> None:
    release = RunnerRelease(runner, sign_tree(key, runner))
    (tmp_path / "elsewhere.py").write_text("")
    (runner / "workloads" / "atlas" / "link.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(NodeError, match="symlink") as refused:
        release.check_workload(ATLAS)
    assert refused.value.code == "node.runner_modified"


def test_the_workload_scope_is_the_workload_package_and_what_it_imports() -> None:
    scope = workload_scope(ATLAS)
    assert scope == [*SANDBOX_FILES, "workloads/atlas/"]
    for path in scope:
        assert (package_root() / path).exists(), path
    with pytest.raises(NodeError):
        workload_scope("os.path")


def test_the_manifest_must_be_signed_by_a_trusted_key(key: SigningKey, runner: Path) -> None:
    manifest = sign_tree(key, runner)
    verify_release_manifest(manifest, {key.public_key_b64})
    with pytest.raises(NodeError) as unknown:
        verify_release_manifest(manifest, {SigningKey.generate().public_key_b64})
    assert unknown.value.code == "node.release_key_unknown"

    forged = sign_tree(SigningKey.generate(), runner).to_json()
    forged["release_public_key"] = key.public_key_b64
    with pytest.raises(NodeError) as invalid:
        verify_release_manifest(parse_manifest(forged), {key.public_key_b64})
    assert invalid.value.code == "node.release_signature_invalid"

    document = manifest.document()
    document["tree_hash"] = "0" * 64
    lying = parse_manifest(
        {
            "document": document,
            "signature": sign_document(key, PURPOSE_RELEASE, document),
            "release_public_key": key.public_key_b64,
        }
    )
    with pytest.raises(NodeError) as mismatch:
        verify_release_manifest(lying, {key.public_key_b64})
    assert mismatch.value.code == "node.release_tree_hash_mismatch"


def test_a_manifest_file_is_read_strictly(key: SigningKey, runner: Path, tmp_path: Path) -> None:
    path = tmp_path / "release.json"
    manifest = sign_tree(key, runner)
    path.write_bytes(format_manifest(manifest))
    assert load_manifest_file(path) == manifest
    path.write_text('{"document": {}}')
    with pytest.raises(NodeError, match=r"release\.json") as malformed:
        load_manifest_file(path)
    assert malformed.value.code == "node.release_manifest_invalid"
    with pytest.raises(NodeError) as absent:
        load_manifest_file(tmp_path / "absent.json")
    assert absent.value.code == "node.release_manifest_invalid"
