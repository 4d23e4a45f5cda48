"""The tree hash: stable, sensitive to every file, blind to bytecode, strict about links."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import nexapod
from nexapod.crypto._tree import package_tree_hash, tree_file_hashes, tree_hash


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("A = 1\n")
    (root / "sub" / "b.txt").write_bytes(b"\x00\x01binary")
    (root / "sub" / "deeper" / "c.py").write_text("C = 3\n")
    return root


def test_file_hashes_list_every_regular_file_by_relative_posix_path(tree: Path) -> None:
    hashes = tree_file_hashes(tree)
    assert set(hashes) == {"__init__.py", "a.py", "sub/b.txt", "sub/deeper/c.py"}
    assert hashes["sub/b.txt"] == hashlib.sha256(b"\x00\x01binary").hexdigest()


def test_tree_hash_is_stable(tree: Path) -> None:
    assert tree_hash(tree_file_hashes(tree)) == tree_hash(tree_file_hashes(tree))


def test_tree_hash_changes_when_a_file_changes_is_added_or_renamed(tree: Path) -> None:
    original = tree_hash(tree_file_hashes(tree))
    (tree / "a.py").write_text("A = 2\n")
    changed = tree_hash(tree_file_hashes(tree))
    assert changed != original
    (tree / "new.py").write_text("")
    added = tree_hash(tree_file_hashes(tree))
    assert added not in {original, changed}
    (tree / "new.py").rename(tree / "renamed.py")
    renamed = tree_hash(tree_file_hashes(tree))
    assert renamed not in {original, changed, added}


def test_bytecode_is_ignored(tree: Path) -> None:
    original = tree_hash(tree_file_hashes(tree))
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")
    (tree / "sub" / "stray.pyc").write_bytes(b"bytecode")
    assert tree_hash(tree_file_hashes(tree)) == original


def test_symlinks_are_refused_naming_the_path(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.py").write_text("")
    (tree / "sub" / "link.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ValueError, match=r"symlink in the tree: .*sub/link\.py"):
        tree_file_hashes(tree)


def test_directory_symlinks_are_refused(tree: Path, tmp_path: Path) -> None:
    (tree / "loop").symlink_to(tree)
    with pytest.raises(ValueError, match="symlink"):
        tree_file_hashes(tree)


def test_more_files_than_the_bound_is_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match="more than 3 files"):
        tree_file_hashes(tree, files_max=3)
    assert len(tree_file_hashes(tree, files_max=4)) == 4


def test_format_matches_an_independently_computed_listing() -> None:
    hashes = {
        "b/z.txt": hashlib.sha256(b"z").hexdigest(),
        "a.txt": hashlib.sha256(b"a").hexdigest(),
        "B.txt": hashlib.sha256(b"B").hexdigest(),
    }
    listing = (
        f"{hashlib.sha256(b'B').hexdigest()}  B.txt\n"
        f"{hashlib.sha256(b'a').hexdigest()}  a.txt\n"
        f"{hashlib.sha256(b'z').hexdigest()}  b/z.txt\n"
    )
    assert tree_hash(hashes) == hashlib.sha256(listing.encode()).hexdigest()


def test_format_is_what_sha256sum_prints_in_byte_order(tree: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("coreutils sha256sum is not installed")
    paths = sorted(tree_file_hashes(tree), key=str.encode)
    listing = subprocess.run(
        ["sha256sum", "--", *paths],
        cwd=tree,
        capture_output=True,
        check=True,
        timeout=30,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    assert tree_hash(tree_file_hashes(tree)) == hashlib.sha256(listing).hexdigest()


def test_tree_hash_refuses_malformed_entries() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        tree_hash({"a.py": "ABC"})
    with pytest.raises(ValueError, match="relative POSIX path"):
        tree_hash({"/etc/passwd": hashlib.sha256(b"").hexdigest()})


def test_package_tree_hash_is_the_hash_of_the_installed_package() -> None:
    package_dir = Path(nexapod.__file__).resolve().parent
    expected = tree_hash(tree_file_hashes(package_dir))
    assert package_tree_hash() == expected
    assert "crypto/_tree.py" in tree_file_hashes(package_dir)
