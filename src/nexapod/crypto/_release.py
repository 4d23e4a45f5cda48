"""Signed release manifests: which runner trees an operator vouches for.

An operator signs, with an offline release key, the SHA-256 of every file of a runner
tree and the tree hash over them (``_tree``); nodes and the coordinator check a tree
against the manifest. The manifest file (docs/releases.md) is JSON::

    {"document": {"v": 1, "version": "0.1.0", "tree_hash": HEX64,
                  "files": {"relative/path.py": HEX64, ...}, "signed_at_s": INT},
     "signature": B64, "release_public_key": B64}

where ``signature`` is ``sign_document(key, PURPOSE_RELEASE, document)``. Parsing is
strict (exact keys, types and bounds, no duplicate names); verification returns a named
verdict, since a missing key, a bad signature and a self-contradicting manifest are
expected failures that callers answer differently.
"""

from __future__ import annotations

import enum
import json
import re
import stat
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nexapod.crypto._documents import sign_document, verify_document
from nexapod.crypto._keys import SigningKey, load_public_key
from nexapod.crypto._tree import FILES_MAX_DEFAULT, file_sha256_hex, tree_file_hashes, tree_hash

__all__ = [
    "DIFFERENCES_REPORTED_MAX",
    "MANIFEST_BYTES_MAX",
    "PURPOSE_RELEASE",
    "RELEASE_FILES_MAX",
    "RELEASE_VERSION_PATTERN",
    "ManifestVerdict",
    "ReleaseManifest",
    "TreeDiff",
    "diff_files",
    "diff_tree",
    "format_manifest",
    "parse_manifest",
    "parse_manifest_json",
    "sign_manifest",
    "verify_manifest",
]

PURPOSE_RELEASE = "nexapod.release.v1"
MANIFEST_FORMAT_VERSION = 1
RELEASE_FILES_MAX = FILES_MAX_DEFAULT
RELEASE_VERSION_PATTERN = r"^[!-~]{1,64}$"  # printable ASCII without spaces, as "0.1.0"
PATH_BYTES_MAX = 4096
# A manifest of RELEASE_FILES_MAX files, each with a long path, stays well under this.
MANIFEST_BYTES_MAX = 64 << 20
SIGNED_AT_S_MAX = 10**11
DIFFERENCES_REPORTED_MAX = 20

_VERSION = re.compile(RELEASE_VERSION_PATTERN)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_B64 = re.compile(r"[A-Za-z0-9_-]{86}")
_DOCUMENT_KEYS = frozenset({"v", "version", "tree_hash", "files", "signed_at_s"})
_FILE_KEYS = frozenset({"document", "signature", "release_public_key"})


class ManifestVerdict(enum.StrEnum):
    """What :func:`verify_manifest` found; only ``OK`` may be trusted."""

    OK = "ok"
    KEY_UNKNOWN = "key_unknown"
    SIGNATURE_INVALID = "signature_invalid"
    TREE_HASH_MISMATCH = "tree_hash_mismatch"


@dataclass(frozen=True)
class ReleaseManifest:
    """A parsed manifest file (not yet verified: see :func:`verify_manifest`)."""

    version: str
    tree_hash: str
    files: Mapping[str, str]
    signed_at_s: int
    signature: str
    release_public_key: str

    def document(self) -> dict[str, Any]:
        """The signed document, exactly as signed."""
        return {
            "v": MANIFEST_FORMAT_VERSION,
            "version": self.version,
            "tree_hash": self.tree_hash,
            "files": dict(self.files),
            "signed_at_s": self.signed_at_s,
        }

    def to_json(self) -> dict[str, Any]:
        """The manifest file's JSON object (what :func:`parse_manifest` reads back)."""
        return {
            "document": self.document(),
            "signature": self.signature,
            "release_public_key": self.release_public_key,
        }


def sign_manifest(
    key: SigningKey, version: str, files: Mapping[str, str], signed_at_s: int
) -> ReleaseManifest:
    """Sign the release of the tree whose file hashes are ``files`` (from ``tree_file_hashes``)."""
    document = {
        "v": MANIFEST_FORMAT_VERSION,
        "version": version,
        "tree_hash": tree_hash(files),
        "files": dict(files),
        "signed_at_s": signed_at_s,
    }
    _check_document(document)  # refuse to sign what no parser would accept
    signature = sign_document(key, PURPOSE_RELEASE, document)
    manifest = _manifest(document, signature, key.public_key_b64)
    assert verify_manifest(manifest, {key.public_key_b64}) is ManifestVerdict.OK
    return manifest


def verify_manifest(manifest: ReleaseManifest, trusted_keys: Collection[str]) -> ManifestVerdict:
    """Is ``manifest`` signed by one of ``trusted_keys``, and do its files give its tree hash?"""
    if manifest.release_public_key not in trusted_keys:
        return ManifestVerdict.KEY_UNKNOWN
    if not verify_document(
        manifest.release_public_key, manifest.signature, PURPOSE_RELEASE, manifest.document()
    ):
        return ManifestVerdict.SIGNATURE_INVALID
    if tree_hash(manifest.files) != manifest.tree_hash:
        return ManifestVerdict.TREE_HASH_MISMATCH
    return ManifestVerdict.OK


def format_manifest(manifest: ReleaseManifest) -> bytes:
    """The manifest file's bytes: JSON, keys sorted, one file per line for reading diffs."""
    return (json.dumps(manifest.to_json(), indent=1, sort_keys=True) + "\n").encode()


def parse_manifest_json(data: bytes | str) -> ReleaseManifest:
    """Parse a manifest file's bytes; ValueError says what is wrong."""
    if len(data) > MANIFEST_BYTES_MAX:
        raise ValueError(f"a release manifest is at most {MANIFEST_BYTES_MAX} bytes")
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicate_names)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a release manifest is JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError("a release manifest is not nested this deep") from exc
    return parse_manifest(value)


def parse_manifest(value: object) -> ReleaseManifest:
    """Parse a manifest file's JSON object strictly; ValueError says what is wrong.

    Structure only: the signature and the tree hash are checked by :func:`verify_manifest`.
    """
    if not isinstance(value, dict):
        raise ValueError("a release manifest is a JSON object")
    _exact_keys(value, _FILE_KEYS, "the release manifest")
    document = value["document"]
    _check_document(document)
    signature = value["signature"]
    if not isinstance(signature, str) or not _SIGNATURE_B64.fullmatch(signature):
        raise ValueError("signature: not a base64 Ed25519 signature")
    public_key = value["release_public_key"]
    if not isinstance(public_key, str):
        raise ValueError("release_public_key: not a base64 Ed25519 public key")
    try:
        load_public_key(public_key)
    except ValueError as exc:
        raise ValueError(f"release_public_key: {exc}") from exc
    return _manifest(document, signature, public_key)


@dataclass(frozen=True)
class TreeDiff:
    """How a tree differs from a manifest: paths sorted, at most a bounded number of each."""

    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    changed_count: int
    missing_count: int
    extra_count: int

    @property
    def clean(self) -> bool:
        return self.changed_count == self.missing_count == self.extra_count == 0

    def describe(self) -> str:
        """One line naming the first differences, as an operator reads them."""
        parts = []
        for label, paths, count in (
            ("changed", self.changed, self.changed_count),
            ("missing", self.missing, self.missing_count),
            ("not in the release", self.extra, self.extra_count),
        ):
            if count:
                more = f" and {count - len(paths)} more" if count > len(paths) else ""
                parts.append(f"{label}: {', '.join(paths)}{more}")
        return "; ".join(parts) if parts else "no differences"


def diff_files(
    actual: Mapping[str, str],
    expected: Mapping[str, str],
    reported_max: int = DIFFERENCES_REPORTED_MAX,
) -> TreeDiff:
    """Compare file hashes found (``actual``) with those a manifest lists (``expected``)."""
    assert reported_max > 0
    changed = sorted(p for p in actual.keys() & expected.keys() if actual[p] != expected[p])
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    diff = TreeDiff(
        changed=tuple(changed[:reported_max]),
        missing=tuple(missing[:reported_max]),
        extra=tuple(extra[:reported_max]),
        changed_count=len(changed),
        missing_count=len(missing),
        extra_count=len(extra),
    )
    assert diff.clean == (dict(actual) == dict(expected))
    return diff


def diff_tree(
    root: Path,
    files: Mapping[str, str],
    *,
    scope: Sequence[str] | None = None,
    reported_max: int = DIFFERENCES_REPORTED_MAX,
) -> TreeDiff:
    """Compare the tree under ``root`` with a manifest's ``files``.

    ``scope`` narrows the check to some paths, each a file (``workloads/worker.py``) or a
    directory ending in ``/`` (``workloads/atlas/``): only those files are hashed, which
    keeps a check before every unit cheap. ``None`` hashes the whole tree.
    """
    if scope is None:
        return diff_files(tree_file_hashes(root, RELEASE_FILES_MAX), files, reported_max)
    assert len(scope) <= RELEASE_FILES_MAX
    actual: dict[str, str] = {}
    expected: dict[str, str] = {}
    for entry in scope:
        _check_path(entry.rstrip("/"))
        if entry.endswith("/"):
            directory = root / entry
            if directory.is_dir():
                found = tree_file_hashes(directory, RELEASE_FILES_MAX)
                actual.update((entry + path, digest) for path, digest in found.items())
            expected.update((p, d) for p, d in files.items() if p.startswith(entry))
        else:
            digest = _regular_file_sha256_hex(root / entry)
            if digest is not None:
                actual[entry] = digest
            if entry in files:
                expected[entry] = files[entry]
    return diff_files(actual, expected, reported_max)


def _regular_file_sha256_hex(path: Path) -> str | None:
    """A file's hash by the rules of a whole tree: absent is None, a symlink is refused."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        raise ValueError(f"symlink in the tree: {path}")
    if not stat.S_ISREG(mode):
        raise ValueError(f"not a regular file: {path}")
    return file_sha256_hex(path)


def _manifest(document: dict[str, Any], signature: str, public_key: str) -> ReleaseManifest:
    return ReleaseManifest(
        version=document["version"],
        tree_hash=document["tree_hash"],
        files=MappingProxyType(dict(document["files"])),
        signed_at_s=document["signed_at_s"],
        signature=signature,
        release_public_key=public_key,
    )


def _check_document(document: object) -> None:
    if not isinstance(document, dict):
        raise ValueError("document: not a JSON object")
    _exact_keys(document, _DOCUMENT_KEYS, "document")
    if type(document["v"]) is not int or document["v"] != MANIFEST_FORMAT_VERSION:
        raise ValueError(f"document.v: this parser reads version {MANIFEST_FORMAT_VERSION} only")
    version = document["version"]
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(
            "document.version: 1 to 64 printable ASCII characters without spaces (as 0.1.0)"
        )
    if not isinstance(document["tree_hash"], str) or not _HEX64.fullmatch(document["tree_hash"]):
        raise ValueError("document.tree_hash: not 64 lower-case hex digits")
    signed_at_s = document["signed_at_s"]
    if type(signed_at_s) is not int or not 0 <= signed_at_s <= SIGNED_AT_S_MAX:
        raise ValueError(f"document.signed_at_s: not whole seconds from 0 to {SIGNED_AT_S_MAX}")
    files = document["files"]
    if not isinstance(files, dict) or not files:
        raise ValueError("document.files: not a non-empty JSON object of path -> SHA-256")
    if len(files) > RELEASE_FILES_MAX:
        raise ValueError(f"document.files: more than {RELEASE_FILES_MAX} files")
    for path, digest in files.items():
        _check_path(path)
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ValueError(f"document.files[{path!r}]: not 64 lower-case hex digits")


def _check_path(path: object) -> None:
    """A path ``tree_file_hashes`` could list: relative, '/'-separated, nothing to escape by."""
    if not isinstance(path, str) or not path:
        raise ValueError("a file path in a release is a non-empty string")
    if len(path.encode("utf-8", "surrogatepass")) > PATH_BYTES_MAX:
        raise ValueError(f"file path longer than {PATH_BYTES_MAX} bytes: {path[:64]!r}…")
    if any(c in path for c in "\n\\\x00") or not path.isprintable():
        raise ValueError(f"file path with a character a tree never lists: {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"not a relative path inside the tree: {path!r}")
    try:
        path.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"file path is not valid UTF-8: {path!r}") from exc


def _exact_keys(value: dict[str, Any], keys: frozenset[str], what: str) -> None:
    missing = sorted(keys - value.keys())
    unknown = sorted(value.keys() - keys)
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    if unknown:
        raise ValueError(f"{what} has unknown field(s) {', '.join(map(repr, unknown[:5]))}")


def _no_duplicate_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for name, item in pairs:
        if name in value:
            raise ValueError(f"a release manifest names {name!r} twice")
        value[name] = item
    return value
