"""The hash of a directory tree: what a node reports as the runner it runs.

Format (what a signed release manifest lists, and what ``tree_hash`` hashes): one line per
regular file, sorted by path in byte order,

    <sha256 of the file, 64 lower-case hex>  <path relative to the root, '/'-separated>\\n

which is exactly what ``sha256sum`` prints, so ``(cd ROOT && find . -type f ! -path
'*/__pycache__/*' ! -name '*.pyc' -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum)``
reproduces the listing and ``... | sha256sum`` the tree hash. ``__pycache__`` directories
and ``*.pyc`` files are skipped: Python writes them as it runs, so they differ between two
installs of the same release. Symlinks are refused: they could point outside the tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import nexapod

__all__ = [
    "FILES_MAX_DEFAULT",
    "file_sha256_hex",
    "package_root",
    "package_tree_hash",
    "tree_file_hashes",
    "tree_hash",
]

FILES_MAX_DEFAULT = 100_000
_SKIPPED_DIR_NAMES = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc",)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def tree_file_hashes(root: Path, files_max: int = FILES_MAX_DEFAULT) -> dict[str, str]:
    """Relative POSIX path -> hex SHA-256 of every regular file under ``root``.

    Raises ValueError naming the path for a symlink or any other non-regular file, and
    when there are more than ``files_max`` files (or directories) under ``root``.
    """
    assert files_max > 0
    if not root.is_dir():
        raise ValueError(f"not a directory: {root}")
    hashes: dict[str, str] = {}
    pending = [root]
    dirs_seen = 0
    while pending:  # bounded: each directory is visited once, at most files_max of them
        directory = pending.pop()
        dirs_seen += 1
        if dirs_seen > files_max:
            raise ValueError(f"more than {files_max} directories under {root}")
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                kind = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(kind):
                    raise ValueError(f"symlink in the tree: {path}")
                if stat.S_ISDIR(kind):
                    if entry.name not in _SKIPPED_DIR_NAMES:
                        pending.append(path)
                elif not stat.S_ISREG(kind):
                    raise ValueError(f"not a regular file: {path}")
                elif not entry.name.endswith(_SKIPPED_SUFFIXES):
                    if len(hashes) >= files_max:
                        raise ValueError(f"more than {files_max} files under {root}")
                    hashes[_relative(path, root)] = file_sha256_hex(path)
    assert len(hashes) <= files_max
    return hashes


def tree_hash(file_hashes: Mapping[str, str]) -> str:
    """Hex SHA-256 over ``f"{sha256}  {path}\\n"`` for each file, sorted by path (see above)."""
    listing = hashlib.sha256()
    for path in sorted(file_hashes, key=lambda p: p.encode()):
        digest = file_hashes[path]
        if not _SHA256_HEX.fullmatch(digest):
            raise ValueError(f"not a lower-case hex SHA-256 for {path!r}: {digest!r}")
        if not path or "\n" in path or "\\" in path or path.startswith("/"):
            raise ValueError(f"not a relative POSIX path: {path!r}")
        listing.update(f"{digest}  {path}\n".encode())
    return listing.hexdigest()


def package_root() -> Path:
    """The installed ``nexapod`` package directory: the runner tree a release covers."""
    return Path(nexapod.__file__).resolve().parent


def package_tree_hash() -> str:
    """The runner tree hash: ``tree_hash`` of the installed ``nexapod`` package directory."""
    return tree_hash(tree_file_hashes(package_root()))


def _relative(path: Path, root: Path) -> str:
    relative = path.relative_to(root).as_posix()
    try:
        relative.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"file name is not valid UTF-8: {path}") from exc
    if "\n" in relative or "\\" in relative:
        raise ValueError(f"file name cannot be listed in a manifest: {path}")
    return relative


def file_sha256_hex(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
