"""``nexapod release``: make a release key, sign a runner tree, check it, publish it.

The release key signs offline: ``keygen`` and ``sign`` need no network, and the key never
goes near the coordinator, which holds only the public key (``release_public_keys``).
See docs/releases.md.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from nexapod.cli._common import CoordinatorOption, console, fail, reporting_errors
from nexapod.crypto import (
    ReleaseManifest,
    SigningKey,
    diff_tree,
    format_manifest,
    key_id,
    load_public_key,
    package_root,
    sign_manifest,
    tree_file_hashes,
)

__all__ = ["app", "sign_release_tree"]

app = typer.Typer(
    help="Make, sign, check and publish signed runner releases.", no_args_is_help=True
)

DirArgument = Annotated[
    Path | None,
    typer.Argument(
        help="The runner tree (default: the installed nexapod package).",
        file_okay=False,
        exists=True,
    ),
]
ReleaseKeyOption = Annotated[
    list[str],
    typer.Option("--release-key", help="A trusted release public key, base64 (repeatable)."),
]


@app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the release key.")],
    force: Annotated[bool, typer.Option(help="Replace an existing key file.")] = False,
) -> None:
    """Make an Ed25519 release key (keep it offline) and print its public key."""
    with reporting_errors():
        if out.exists() or out.is_symlink():
            if not force:
                fail(
                    f"{out} already exists; use --force to replace it (releases signed with "
                    "the old key stay valid only while coordinators trust its public key)"
                )
            out.unlink()
        key = SigningKey.generate()
        key.save(out)
        assert os.stat(out).st_mode & 0o077 == 0
        console.print(f"release key written to {out} (mode 0600): keep it offline")
        console.print(f"release public key: {key.public_key_b64}", highlight=False)


@app.command("sign")
def sign(
    key: Annotated[Path, typer.Option("--key", help="The release key file (from keygen).")],
    version: Annotated[str, typer.Option("--version", help="The release's version, as 0.1.0.")],
    directory: DirArgument = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The manifest file (default: nexapod-release-VERSION.json)."),
    ] = None,
) -> None:
    """Sign a runner tree: write its release manifest (every file's SHA-256, the tree hash)."""
    with reporting_errors():
        root = (directory or package_root()).resolve()
        target = out or Path(f"nexapod-release-{re.sub(r'[^A-Za-z0-9._-]', '_', version)}.json")
        signing_key = _load_key(key)
        manifest = sign_release_tree(signing_key, root, version, target, int(time.time()))
        console.print(
            f"signed release {manifest.version} of {root}: {len(manifest.files)} files, "
            f"tree hash {manifest.tree_hash}",
            highlight=False,
        )
        console.print(f"wrote {target}", highlight=False)


def sign_release_tree(
    key: SigningKey, root: Path, version: str, out: Path, signed_at_s: int
) -> ReleaseManifest:
    """Hash ``root``, sign its manifest and write it to ``out`` (never inside ``root``)."""
    root = root.resolve()
    target = out.resolve()
    if target.is_relative_to(root):
        fail(
            f"{out} is inside the tree being signed ({root}): the manifest would change the "
            "tree it describes; write it elsewhere with --out"
        )
    try:
        manifest = sign_manifest(key, version, tree_file_hashes(root), signed_at_s)
    except ValueError as exc:
        fail(f"cannot sign {root}: {exc}")
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_bytes(format_manifest(manifest))
    os.replace(temporary, target)
    return manifest


@app.command("verify")
def verify(
    manifest: Annotated[Path, typer.Argument(help="The manifest file.", dir_okay=False)],
    release_key: ReleaseKeyOption,
    directory: DirArgument = None,
) -> None:
    """Check a manifest's signature and that a tree is exactly the release it describes."""
    from nexapod.node.release_check import (
        RunnerRelease,
        load_manifest_file,
        verify_release_manifest,
    )

    with reporting_errors():
        for trusted in release_key:
            _check_public_key(trusted)
        signed = load_manifest_file(manifest)
        verify_release_manifest(signed, set(release_key))
        root = (directory or package_root()).resolve()
        RunnerRelease(root, signed).check_tree()
        assert diff_tree(root, signed.files).clean
        console.print(
            f"OK: {root} is release {signed.version} ({len(signed.files)} files, tree hash "
            f"{signed.tree_hash}), signed by release key {key_id(signed.release_public_key)[:16]}…",
            highlight=False,
        )


@app.command("publish")
def publish(
    manifest: Annotated[Path, typer.Argument(help="The manifest file.", dir_okay=False)],
    coordinator: CoordinatorOption,
) -> None:
    """Publish a signed manifest on a coordinator, which admits nodes running that tree."""
    from nexapod.node.client import CoordinatorClient
    from nexapod.node.release_check import load_manifest_file
    from nexapod.protocol.v1 import ReleaseManifestFile

    with reporting_errors():
        signed = load_manifest_file(manifest)
        body = ReleaseManifestFile.model_validate(signed.to_json())
        with CoordinatorClient(coordinator) as client:
            view, created = client.publish_release(body)
        state = "published" if created else "already published:"
        console.print(
            f"{state} release {view.version} (runner tree {view.tree_hash}) at {coordinator}",
            highlight=False,
        )


def _load_key(path: Path) -> SigningKey:
    try:
        return SigningKey.load(path)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the release key {path}: {exc}")


def _check_public_key(text: str) -> None:
    try:
        load_public_key(text)
    except ValueError as exc:
        fail(f"--release-key {text!r} is not a base64 Ed25519 public key: {exc}")
