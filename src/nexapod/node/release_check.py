"""The node's own check of its runner against a signed release (docs/releases.md).

Before running anything, ``nexapod node run`` obtains the release manifest of the runner
tree it registered (a file the operator gives, else the coordinator's copy), checks the
manifest's signature against the release keys it trusts, and hashes its installed tree:
a tree that differs from the release in one byte, one file more or one file less does
not run. Before every unit it hashes again the files that unit runs in the sandbox (the
workload's package, the worker module and the modules they import from ``nexapod``), so
a workload changed while the node runs stops the node instead of running.

Every function takes the tree's root, so tests check any directory, not only the
installed package.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from nexapod.crypto import (
    MANIFEST_BYTES_MAX,
    ManifestVerdict,
    ReleaseManifest,
    TreeDiff,
    diff_tree,
    key_id,
    parse_manifest_json,
    verify_manifest,
)
from nexapod.errors import NodeError
from nexapod.node.client import CoordinatorClient, RemoteError

__all__ = [
    "SANDBOX_FILES",
    "ReleaseSetup",
    "RunnerRelease",
    "load_manifest_file",
    "obtain_release",
    "verify_release_manifest",
    "workload_scope",
]

# The modules of ``nexapod`` outside a workload's own package that a unit imports in the
# sandbox (see tests/test_architecture.py: sandboxed code imports only these areas).
SANDBOX_FILES = ("__init__.py", "errors.py", "workloads/__init__.py", "workloads/worker.py")


@dataclass(frozen=True)
class RunnerRelease:
    """A verified release manifest and the tree it must describe."""

    root: Path
    manifest: ReleaseManifest

    def check_tree(self) -> None:
        """Refuse a tree that differs from the release in any file (the whole tree)."""
        diff = self._diff(None)
        if not diff.clean:
            raise NodeError(
                "runner_modified",
                f"the runner in {self.root} is not release {self.manifest.version} "
                f"(runner tree {self.manifest.tree_hash[:16]}…): {diff.describe()}; "
                "reinstall the release and run again",
            )

    def check_workload(self, unit_module: str) -> None:
        """Refuse to run ``unit_module`` when a file it runs differs from the release."""
        diff = self._diff(workload_scope(unit_module))
        if not diff.clean:
            raise NodeError(
                "workload_modified",
                f"the workload {unit_module} changed since this node started and no longer "
                f"matches release {self.manifest.version}: {diff.describe()}; the node stopped "
                "without running it; reinstall the release and run again",
            )

    def _diff(self, scope: list[str] | None) -> TreeDiff:
        try:
            return diff_tree(self.root, self.manifest.files, scope=scope)
        except ValueError as exc:  # a symlink or a special file where a file should be
            raise NodeError(
                "runner_modified", f"the runner tree cannot be checked against its release: {exc}"
            ) from exc


@dataclass(frozen=True)
class ReleaseSetup:
    """What ``obtain_release`` settled: a release to check against, or why there is none."""

    release: RunnerRelease | None
    warning: str | None

    def __post_init__(self) -> None:
        assert (self.release is None) != (self.warning is None)


def workload_scope(unit_module: str) -> list[str]:
    """The paths, relative to the package root, that running ``unit_module`` executes."""
    parts = unit_module.split(".")
    if len(parts) < 3 or parts[0] != "nexapod" or not all(parts):
        raise NodeError("workload_unknown", f"not a module of a nexapod workload: {unit_module}")
    package_dir = "/".join(parts[1:-1]) + "/"
    scope = [*SANDBOX_FILES, package_dir]
    assert all(not path.startswith("/") for path in scope)
    return scope


def load_manifest_file(path: Path) -> ReleaseManifest:
    """Read a manifest file; a malformed one is a NodeError naming the file."""
    try:
        with path.open("rb") as file:
            data = file.read(MANIFEST_BYTES_MAX + 1)
    except OSError as exc:
        raise NodeError(
            "release_manifest_invalid", f"cannot read the release manifest {path}: {exc}"
        ) from exc
    try:
        return parse_manifest_json(data)
    except ValueError as exc:
        raise NodeError("release_manifest_invalid", f"{path}: {exc}") from exc


def verify_release_manifest(manifest: ReleaseManifest, trusted_keys: Collection[str]) -> None:
    """Refuse a manifest that no trusted release key vouches for, with what to do."""
    verdict = verify_manifest(manifest, trusted_keys)
    if verdict is ManifestVerdict.KEY_UNKNOWN:
        raise NodeError(
            "release_key_unknown",
            f"the release manifest is signed by key {key_id(manifest.release_public_key)[:16]}…, "
            "which is not among the release keys trusted here (--release-key)",
        )
    if verdict is ManifestVerdict.SIGNATURE_INVALID:
        raise NodeError(
            "release_signature_invalid",
            "the release manifest's signature does not verify: it was changed after signing",
        )
    if verdict is ManifestVerdict.TREE_HASH_MISMATCH:
        raise NodeError(
            "release_tree_hash_mismatch",
            "the release manifest's tree hash does not match the files it lists",
        )
    assert verdict is ManifestVerdict.OK


def obtain_release(
    client: CoordinatorClient,
    *,
    root: Path,
    runner_tree_hash: str,
    manifest_path: Path | None = None,
    release_keys: Collection[str] = (),
) -> ReleaseSetup:
    """Find, verify and check the release of this node's runner, before it runs anything.

    ``release_keys`` are the keys the operator trusts; when none is given, the keys the
    coordinator lists are trusted, which trusts the coordinator to name them. Without any
    key or manifest (a coordinator that does not enforce releases) the node runs, with a
    warning; with a key but no manifest it refuses.
    """
    listing = client.list_releases(limit=1)
    keys = frozenset(release_keys) or frozenset(listing.release_public_keys)
    if manifest_path is not None:
        manifest: ReleaseManifest | None = load_manifest_file(manifest_path)
    else:
        manifest = _fetch_manifest(client, runner_tree_hash)
    if manifest is None:
        if listing.enforced or release_keys:
            raise NodeError(
                "runner_not_released",
                f"no signed release of this node's runner tree {runner_tree_hash[:16]}… is "
                "published: install a signed release of nexapod (then run `nexapod node "
                "register` again), or ask the coordinator's operator to publish this one",
            )
        return ReleaseSetup(
            None,
            "the coordinator does not enforce signed releases and has no release of this "
            "runner: running without checking the runner tree",
        )
    if not keys:
        if manifest_path is not None:
            raise NodeError(
                "release_keys_missing",
                "no release key to check the manifest with: pass --release-key",
            )
        return ReleaseSetup(
            None, "no release key is configured anywhere: running without checking the runner"
        )
    verify_release_manifest(manifest, keys)
    if manifest.tree_hash != runner_tree_hash:
        raise NodeError(
            "release_mismatch",
            f"the release manifest is for runner tree {manifest.tree_hash[:16]}…, but this node "
            f"registered runner tree {runner_tree_hash[:16]}…: after installing a release, "
            "run `nexapod node register` again",
        )
    release = RunnerRelease(root, manifest)
    release.check_tree()
    return ReleaseSetup(release, None)


def _fetch_manifest(client: CoordinatorClient, runner_tree_hash: str) -> ReleaseManifest | None:
    try:
        published = client.get_release(runner_tree_hash)
    except RemoteError as exc:
        if exc.code == "registry.release_unknown":
            return None
        raise
    try:
        return parse_manifest_json(published.model_dump_json())
    except ValueError as exc:
        raise NodeError(
            "release_manifest_invalid", f"the coordinator's release manifest is malformed: {exc}"
        ) from exc
