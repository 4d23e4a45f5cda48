"""`nexapod release`: keygen, sign, verify and publish as an operator types them."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nexapod.cli.main import app
from nexapod.crypto import (
    ManifestVerdict,
    SigningKey,
    package_root,
    package_tree_hash,
    parse_manifest_json,
    tree_file_hashes,
    tree_hash,
    verify_manifest,
)
from tests.factories import copy_package
from tests.processes import CoordinatorProcess

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _keygen(path: Path) -> str:
    code, out = _invoke("release", "keygen", "--out", str(path))
    assert code == 0, out
    match = re.search(r"release public key: ([A-Za-z0-9_-]{43})", out)
    assert match is not None, out
    return match.group(1)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "runner"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "sub" / "b.py").write_text("B = 2\n")
    return root


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "release.key"
    public_key = _keygen(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).public_key_b64 == public_key
    code, out = _invoke("release", "keygen", "--out", str(path))
    assert code == 1
    assert "already exists" in out
    assert SigningKey.load(path).public_key_b64 == public_key, "the key was not replaced"
    code, out = _invoke("release", "keygen", "--out", str(path), "--force")
    assert code == 0, out
    assert SigningKey.load(path).public_key_b64 != public_key


def test_sign_then_verify_a_tree(tmp_path: Path, tree: Path) -> None:
    public_key = _keygen(tmp_path / "release.key")
    manifest_path = tmp_path / "release.json"
    code, out = _invoke(
        "release", "sign", str(tree), "--key", str(tmp_path / "release.key"),
        "--version", "2.0.0", "--out", str(manifest_path),
    )  # fmt: skip
    assert code == 0, out
    expected_hash = tree_hash(tree_file_hashes(tree))
    assert f"2 files, tree hash {expected_hash}" in out
    manifest = parse_manifest_json(manifest_path.read_bytes())
    assert manifest.version == "2.0.0"
    assert manifest.tree_hash == expected_hash
    assert verify_manifest(manifest, {public_key}) is ManifestVerdict.OK

    code, out = _invoke(
        "release", "verify", str(manifest_path), str(tree), "--release-key", public_key
    )
    assert code == 0, out
    assert "OK:" in out
    assert "release 2.0.0" in out

    (tree / "sub" / "b.py").write_text("B = 3\n")
    (tree / "c.py").write_text("")
    code, out = _invoke(
        "release", "verify", str(manifest_path), str(tree), "--release-key", public_key
    )
    assert code == 1
    assert "node.runner_modified" in out
    assert "changed: sub/b.py" in out
    assert "not in the release: c.py" in out


def test_verify_refuses_a_manifest_of_another_key(tmp_path: Path, tree: Path) -> None:
    _keygen(tmp_path / "release.key")
    other = _keygen(tmp_path / "other.key")
    manifest_path = tmp_path / "release.json"
    code, out = _invoke(
        "release", "sign", str(tree), "--key", str(tmp_path / "release.key"),
        "--version", "1", "--out", str(manifest_path),
    )  # fmt: skip
    assert code == 0, out
    code, out = _invoke("release", "verify", str(manifest_path), str(tree), "--release-key", other)
    assert code == 1
    assert "node.release_key_unknown" in out
    code, out = _invoke(
        "release", "verify", str(manifest_path), str(tree), "--release-key", "not-a-key"
    )
    assert code == 1
    assert "not a base64 Ed25519 public key" in out


def test_verify_refuses_an_edited_manifest(tmp_path: Path, tree: Path) -> None:
    public_key = _keygen(tmp_path / "release.key")
    manifest_path = tmp_path / "release.json"
    code, out = _invoke(
        "release", "sign", str(tree), "--key", str(tmp_path / "release.key"),
        "--version", "1", "--out", str(manifest_path),
    )  # fmt: skip
    assert code == 0, out
    obj = json.loads(manifest_path.read_text())
    (tree / "a.py").write_text("evil\n")
    obj["document"]["files"] = tree_file_hashes(tree)
    obj["document"]["tree_hash"] = tree_hash(obj["document"]["files"])
    manifest_path.write_text(json.dumps(obj))
    code, out = _invoke(
        "release", "verify", str(manifest_path), str(tree), "--release-key", public_key
    )
    assert code == 1
    assert "node.release_signature_invalid" in out


def test_sign_defaults_to_the_installed_package_and_never_writes_into_it(tmp_path: Path) -> None:
    _keygen(tmp_path / "release.key")
    inside = package_root() / "release.json"
    code, out = _invoke(
        "release", "sign", "--key", str(tmp_path / "release.key"), "--version", "1",
        "--out", str(inside),
    )  # fmt: skip
    assert code == 1
    assert "inside the tree being signed" in out
    assert not inside.exists()
    outside = tmp_path / "installed.json"
    code, out = _invoke(
        "release", "sign", "--key", str(tmp_path / "release.key"), "--version", "1",
        "--out", str(outside),
    )  # fmt: skip
    assert code == 0, out
    assert parse_manifest_json(outside.read_bytes()).tree_hash == package_tree_hash()


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[CoordinatorProcess, str]]:
    public_key = _keygen(tmp_path / "release.key")
    process = CoordinatorProcess(
        f"sqlite:///{tmp_path}/c.sqlite3",
        tmp_path / "coordinator",
        extra_args=["--release-key", public_key],
    )
    try:
        yield process, public_key
    finally:
        process.stop()


@pytest.mark.slow
def test_publish_to_a_coordinator(
    coordinator: tuple[CoordinatorProcess, str], tmp_path: Path
) -> None:
    process, _ = coordinator
    copy = copy_package(tmp_path / "nexapod")
    manifest_path = tmp_path / "release.json"
    code, out = _invoke(
        "release", "sign", str(copy), "--key", str(tmp_path / "release.key"),
        "--version", "0.9", "--out", str(manifest_path),
    )  # fmt: skip
    assert code == 0, out
    code, out = _invoke("release", "publish", str(manifest_path), "--coordinator", process.url)
    assert code == 0, out
    assert out.startswith("published release 0.9")
    code, out = _invoke("release", "publish", str(manifest_path), "--coordinator", process.url)
    assert code == 0, out
    assert out.startswith("already published: release 0.9")
    tree_hash_hex = parse_manifest_json(manifest_path.read_bytes()).tree_hash
    fetched = httpx.get(f"{process.url}/v1/releases/{tree_hash_hex}", timeout=10)
    assert fetched.json() == json.loads(manifest_path.read_text())

    stranger = tmp_path / "stranger.json"
    _keygen(tmp_path / "stranger.key")
    code, out = _invoke(
        "release", "sign", str(copy), "--key", str(tmp_path / "stranger.key"),
        "--version", "0.9", "--out", str(stranger),
    )  # fmt: skip
    assert code == 0, out
    code, out = _invoke("release", "publish", str(stranger), "--coordinator", process.url)
    assert code == 1
    assert "registry.release_key_unknown" in out
