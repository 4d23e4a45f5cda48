"""Release manifests: a round trip, and every way a tree or a manifest can be tampered with."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nexapod.crypto import (
    PURPOSE_RELEASE,
    ManifestVerdict,
    ReleaseManifest,
    SigningKey,
    diff_files,
    diff_tree,
    format_manifest,
    package_root,
    parse_manifest,
    parse_manifest_json,
    sign_document,
    sign_manifest,
    tree_file_hashes,
    tree_hash,
    verify_manifest,
)

SIGNED_AT_S = 1_790_000_000


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "runner"
    (root / "workloads" / "atlas").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "agent.py").write_text("RUN = True\n")
    (root / "workloads" / "__init__.py").write_text("")
    (root / "workloads" / "worker.py").write_text("WORKER = 1\n")
    (root / "workloads" / "atlas" / "unit.py").write_text("UNIT = 1\n")
    (root / "workloads" / "atlas" / "_kernel.py").write_bytes(b"\x00kernel")
    return root


@pytest.fixture()
def key() -> SigningKey:
    return SigningKey.generate()


def _manifest(key: SigningKey, tree: Path) -> ReleaseManifest:
    return sign_manifest(key, "1.2.3", tree_file_hashes(tree), SIGNED_AT_S)


def test_round_trip_through_the_file_format(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    assert manifest.tree_hash == tree_hash(tree_file_hashes(tree))
    assert set(manifest.files) == {
        "__init__.py",
        "agent.py",
        "workloads/__init__.py",
        "workloads/worker.py",
        "workloads/atlas/unit.py",
        "workloads/atlas/_kernel.py",
    }
    data = format_manifest(manifest)
    obj = json.loads(data)
    assert set(obj) == {"document", "signature", "release_public_key"}
    assert obj["document"]["v"] == 1
    assert obj["document"]["signed_at_s"] == SIGNED_AT_S
    assert obj["release_public_key"] == key.public_key_b64
    again = parse_manifest_json(data)
    assert again == manifest
    assert verify_manifest(again, {key.public_key_b64}) is ManifestVerdict.OK
    assert diff_tree(tree, again.files).clean


def test_the_signature_is_a_plain_signed_document(key: SigningKey, tree: Path) -> None:
    """Anyone with the documented purpose and canonical JSON can check a manifest."""
    manifest = _manifest(key, tree)
    assert manifest.signature == sign_document(key, PURPOSE_RELEASE, manifest.document())
    assert PURPOSE_RELEASE == "nexapod.release.v1"


def test_a_changed_byte_is_named(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    (tree / "agent.py").write_text("RUN = False\n")
    diff = diff_tree(tree, manifest.files)
    assert not diff.clean
    assert diff.changed == ("agent.py",)
    assert diff.missing == diff.extra == ()
    assert diff.describe() == "changed: agent.py"


def test_an_added_file_is_named(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    (tree / "workloads" / "atlas" / "backdoor.py").write_text("import os\n")
    diff = diff_tree(tree, manifest.files)
    assert diff.extra == ("workloads/atlas/backdoor.py",)
    assert diff.changed == diff.missing == ()
    assert "not in the release: workloads/atlas/backdoor.py" in diff.describe()


def test_a_removed_file_is_named(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    (tree / "workloads" / "worker.py").unlink()
    diff = diff_tree(tree, manifest.files)
    assert diff.missing == ("workloads/worker.py",)
    assert diff.describe() == "missing: workloads/worker.py"


def test_bytecode_does_not_count_as_a_difference(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"compiled")
    assert diff_tree(tree, manifest.files).clean


def test_a_scoped_check_hashes_only_its_paths(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    scope = ["workloads/atlas/", "workloads/worker.py"]
    (tree / "agent.py").write_text("outside the scope\n")
    assert diff_tree(tree, manifest.files, scope=scope).clean
    (tree / "workloads" / "atlas" / "unit.py").write_text("UNIT = 2\n")
    (tree / "workloads" / "atlas" / "new.py").write_text("")
    (tree / "workloads" / "worker.py").unlink()
    diff = diff_tree(tree, manifest.files, scope=scope)
    assert diff.changed == ("workloads/atlas/unit.py",)
    assert diff.extra == ("workloads/atlas/new.py",)
    assert diff.missing == ("workloads/worker.py",)


def test_a_scoped_check_refuses_a_symlinked_file(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    (tree / "workloads" / "worker.py").unlink()
    (tree / "workloads" / "worker.py").symlink_to(tree / "agent.py")
    with pytest.raises(ValueError, match="symlink"):
        diff_tree(tree, manifest.files, scope=["workloads/worker.py"])


def test_a_whole_directory_missing_is_every_file_missing(key: SigningKey, tree: Path) -> None:
    manifest = _manifest(key, tree)
    shutil.rmtree(tree / "workloads" / "atlas")
    diff = diff_tree(tree, manifest.files, scope=["workloads/atlas/"])
    assert diff.missing == ("workloads/atlas/_kernel.py", "workloads/atlas/unit.py")


def test_differences_reported_are_bounded_but_counted() -> None:
    expected = {f"f{i:03}.py": "00" * 32 for i in range(50)}
    actual = {path: "11" * 32 for path in expected}
    diff = diff_files(actual, expected, reported_max=3)
    assert diff.changed == ("f000.py", "f001.py", "f002.py")
    assert diff.changed_count == 50
    assert diff.describe() == "changed: f000.py, f001.py, f002.py and 47 more"


def test_a_manifest_signed_by_another_key_is_not_trusted(key: SigningKey, tree: Path) -> None:
    other = SigningKey.generate()
    manifest = _manifest(other, tree)
    assert verify_manifest(manifest, {key.public_key_b64}) is ManifestVerdict.KEY_UNKNOWN
    assert verify_manifest(manifest, set()) is ManifestVerdict.KEY_UNKNOWN


def test_a_manifest_claiming_a_trusted_key_it_was_not_signed_with(
    key: SigningKey, tree: Path
) -> None:
    forged = _manifest(SigningKey.generate(), tree).to_json()
    forged["release_public_key"] = key.public_key_b64
    manifest = parse_manifest(forged)
    assert verify_manifest(manifest, {key.public_key_b64}) is ManifestVerdict.SIGNATURE_INVALID


def test_an_edited_document_breaks_the_signature(key: SigningKey, tree: Path) -> None:
    obj = _manifest(key, tree).to_json()
    (tree / "agent.py").write_text("evil\n")
    obj["document"]["files"] = tree_file_hashes(tree)
    obj["document"]["tree_hash"] = tree_hash(obj["document"]["files"])
    manifest = parse_manifest(obj)
    assert verify_manifest(manifest, {key.public_key_b64}) is ManifestVerdict.SIGNATURE_INVALID


def test_a_tree_hash_that_disagrees_with_the_files_is_refused(key: SigningKey, tree: Path) -> None:
    document: dict[str, Any] = _manifest(key, tree).document()
    document["tree_hash"] = "0" * 64
    obj = {
        "document": document,
        "signature": sign_document(key, PURPOSE_RELEASE, document),
        "release_public_key": key.public_key_b64,
    }
    manifest = parse_manifest(obj)
    assert verify_manifest(manifest, {key.public_key_b64}) is ManifestVerdict.TREE_HASH_MISMATCH


def _mutated(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    target = result
    for name in path[:-1]:
        target = target[name]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("document", "v"), 2, "version 1 only"),
        (("document", "v"), True, "version 1 only"),
        (("document", "version"), "1.0 beta", "printable ASCII"),
        (("document", "version"), "x" * 65, "printable ASCII"),
        (("document", "version"), "", "printable ASCII"),
        (("document", "tree_hash"), "AB" * 32, "tree_hash"),
        (("document", "signed_at_s"), -1, "signed_at_s"),
        (("document", "signed_at_s"), 1.5, "signed_at_s"),
        (("document", "files"), {}, "non-empty"),
        (("document", "files"), [], "non-empty"),
        (("document", "files", "../escape.py"), "00" * 32, "relative path"),
        (("document", "files", "/etc/passwd"), "00" * 32, "relative path"),
        (("document", "files", "a//b.py"), "00" * 32, "relative path"),
        (("document", "files", "a\\b.py"), "00" * 32, "character"),
        (("document", "files", "agent.py"), "not hex", "hex"),
        (("document", "extra"), 1, "unknown field"),
        (("document", "files"), _DELETE, "lacks files"),
        (("signature",), "!" * 86, "signature"),
        (("signature",), 7, "signature"),
        (("release_public_key",), "AAAA", "release_public_key"),
        (("release_public_key",), None, "release_public_key"),
        (("comment",), "hello", "unknown field"),
    ],
)
def test_parse_is_strict(
    key: SigningKey, tree: Path, path: tuple[str, ...], value: Any, message: str
) -> None:
    obj = _mutated(_manifest(key, tree).to_json(), path, value)
    with pytest.raises(ValueError, match=message):
        parse_manifest(obj)


def test_parse_refuses_duplicate_names_and_non_json() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_manifest_json(b'{"document": {}, "document": {}}')
    with pytest.raises(ValueError, match="JSON"):
        parse_manifest_json(b"not json")
    with pytest.raises(ValueError, match="JSON object"):
        parse_manifest_json(b"[]")


def test_signing_refuses_what_no_parser_would_read(key: SigningKey, tree: Path) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        sign_manifest(key, "has space", tree_file_hashes(tree), SIGNED_AT_S)
    with pytest.raises(ValueError, match="non-empty"):
        sign_manifest(key, "1.0", {}, SIGNED_AT_S)


def test_the_installed_package_can_be_signed_and_checked(key: SigningKey) -> None:
    manifest = sign_manifest(key, "dev", tree_file_hashes(package_root()), SIGNED_AT_S)
    assert "crypto/_release.py" in manifest.files
    assert diff_tree(package_root(), manifest.files).clean
