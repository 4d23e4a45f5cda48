"""A third party agrees with our log: Go's sumdb note and tlog packages check what we write.

We write a log directory (C2SP tiles, entry bundles, a signed checkpoint, proofs) with
our code only, then run ``tools/tlogcheck``, built on golang.org/x/mod/sumdb/note and
golang.org/x/mod/sumdb/tlog. It must accept the log and reject a tampered tile, a
tampered entry, a tampered proof and a checkpoint signed by another key.

Needs Go: Debian's ``golang-go`` and ``golang-golang-x-mod-dev`` (the module's source, so
no module proxy is needed). Without Go the test is skipped, or fails when CI is set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from nexapod.ledger.checkpoint import Checkpoint, sign_checkpoint
from nexapod.ledger.merkle import leaf_hash, prove_consistency, prove_inclusion, tree_hash
from nexapod.ledger.note import NoteSigner
from nexapod.ledger.tiles import (
    TileHashReader,
    TileId,
    append_entry_bundles,
    integrate,
    tile_width,
)

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "tlogcheck"
DEBIAN_X_MOD = Path("/usr/share/gocode/src/golang.org/x/mod")
INSTALL_HINT = "install Go: apt-get install -y golang-go golang-golang-x-mod-dev"
BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120
ORIGIN = "nexapod.test/ledger"


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must {INSTALL_HINT}")
    pytest.skip(f"{reason}; to run this test, {INSTALL_HINT}")


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go tool, built once per source version into a cache under the temp directory."""
    go = shutil.which("go")
    if go is None:
        _missing("the go command is not installed")
    sources = [TOOL_DIR / "go.mod", TOOL_DIR / "main.go"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"nexapod-tlogcheck-{digest}"
    binary = cache / "tlogcheck"
    if binary.exists():
        return binary
    cache.mkdir(exist_ok=True)
    build = tmp_path_factory.mktemp("tlogcheck-src")
    for source in sources:
        shutil.copy(source, build / source.name)
    env = {
        **os.environ,
        "GOPATH": str(cache / "gopath"),
        "GOCACHE": str(cache / "gocache"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    if DEBIAN_X_MOD.is_dir():
        env["GOPROXY"] = "off"
        replace = f"-replace=golang.org/x/mod={DEBIAN_X_MOD}"
        subprocess.run([go, "mod", "edit", replace], cwd=build, env=env, check=True)
    built = build / "tlogcheck"
    result = subprocess.run(
        [go, "build", "-o", str(built), "."],
        check=False,
        cwd=build,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if result.returncode != 0:
        if not DEBIAN_X_MOD.is_dir():
            _missing(f"golang.org/x/mod is unavailable to go build: {result.stderr.strip()}")
        pytest.fail(f"go build of tools/tlogcheck failed:\n{result.stderr}")
    os.replace(built, binary)
    return binary


def _write(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_log(root: Path, entries: Sequence[bytes], checkpoint_sizes: Sequence[int]) -> NoteSigner:
    """Append ``entries`` the way the sequencer will, one batch per checkpoint size."""
    assert checkpoint_sizes
    signer = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"log key").digest())
    size, root_hash, edge_bundle = 0, b"", b""
    edge: Mapping[int, bytes] = {}
    for target in checkpoint_sizes:
        batch = entries[size:target]
        result = integrate(size, edge, [leaf_hash(entry) for entry in batch])
        for tile, data in result.tiles:
            _write(root, tile.path, data)
        for tile, data in append_entry_bundles(size, edge_bundle, batch):
            _write(root, tile.path, data)
            edge_bundle = data if tile.is_partial else b""
        size, root_hash, edge = result.tree_size, result.root_hash, result.edge
    checkpoint = Checkpoint(ORIGIN, size, root_hash)
    (root / "checkpoint").write_text(sign_checkpoint(checkpoint, signer))
    (root / "vkey").write_text(signer.vkey + "\n")
    return signer


def write_proofs(root: Path, tree_size: int, checkpoint_sizes: Sequence[int], seed: int) -> None:
    """Proofs from our code, reading the tiles back from the directory like a server."""

    def read_tiles(wanted: Sequence[TileId]) -> list[bytes]:
        latest = [TileId(t.level, t.index, tile_width(tree_size, t.level, t.index)) for t in wanted]
        return [(root / tile.path).read_bytes() for tile in latest]

    rng = random.Random(seed)
    sizes = sorted({*checkpoint_sizes, *(rng.randint(1, tree_size) for _ in range(20))})
    inclusion = []
    for size in sizes:
        reader = TileHashReader(size, read_tiles)
        for leaf_index in {0, size - 1, rng.randrange(size)}:
            proof = prove_inclusion(leaf_index, size, reader)
            inclusion.append({"leaf_index": leaf_index, "tree_size": size, "proof": proof})
    consistency = []
    reader = TileHashReader(tree_size, read_tiles)
    for old_size in sizes:
        for new_size in {old_size, tree_size, rng.randint(old_size, tree_size)}:
            proof = prove_consistency(old_size, new_size, reader)
            consistency.append({"old_size": old_size, "new_size": new_size, "proof": proof})
    assert tree_hash(tree_size, reader)
    document = {"inclusion": inclusion, "consistency": consistency}
    (root / "proofs.json").write_text(json.dumps(document, default=_b64))


def _b64(value: object) -> str:
    assert isinstance(value, bytes)
    return base64.b64encode(value).decode()


def run(binary: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "-dir", str(root), "-origin", ORIGIN],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def good_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """700 random entries: two full level-0 tiles, partials at levels 0 and 1."""
    rng = random.Random(9162)
    entries = [rng.randbytes(rng.randint(0, 300)) for _ in range(700)]
    root = tmp_path_factory.mktemp("log")
    sizes = [1, 200, 256, 257, 511, 600, 700]
    write_log(root, entries, sizes)
    write_proofs(root, 700, sizes, seed=1)
    return root


def test_go_accepts_our_log(tlogcheck: Path, good_log: Path) -> None:
    result = run(tlogcheck, good_log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"OK origin={ORIGIN} size=700 ")
    assert (good_log / "tile/0/001").stat().st_size == 8192
    assert (good_log / "tile/0/002.p/188").exists()
    assert (good_log / "tile/1/000.p/2").exists()
    assert (good_log / "tile/entries/002.p/188").exists()


def test_go_accepts_a_log_with_a_level_two_tile(tlogcheck: Path, tmp_path: Path) -> None:
    rng = random.Random(6962)
    entries = [rng.randbytes(rng.randint(0, 24)) for _ in range(70_000)]
    sizes = [65_535, 65_536, 65_537, 70_000]
    write_log(tmp_path, entries, sizes)
    write_proofs(tmp_path, 70_000, sizes, seed=2)
    result = run(tlogcheck, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "tile/2/000.p/1").exists()
    assert (tmp_path / "tile/1/001.p/17").exists()


def tampered(good_log: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "log"
    shutil.copytree(good_log, copy)
    return copy


@pytest.mark.parametrize(
    ("relative", "offset", "message"),
    [
        ("tile/0/000", 100, "tile tile/0/000 does not match"),
        ("tile/0/002.p/188", 32 * 187, "tile tile/0/002.p/188 does not match"),
        ("tile/1/000.p/2", 5, "tile tile/1/000.p/2 does not match"),
    ],
)
def test_go_rejects_a_tampered_tile(
    tlogcheck: Path, good_log: Path, tmp_path: Path, relative: str, offset: int, message: str
) -> None:
    log = tampered(good_log, tmp_path)
    flip_byte(log / relative, offset)
    result = run(tlogcheck, log)
    assert result.returncode == 1
    assert message in result.stdout


def test_go_rejects_a_tampered_entry(tlogcheck: Path, good_log: Path, tmp_path: Path) -> None:
    log = tampered(good_log, tmp_path)
    bundle = log / "tile/entries/001"
    first_length = int.from_bytes(bundle.read_bytes()[:2], "big")
    assert first_length > 0
    flip_byte(bundle, 2)
    result = run(tlogcheck, log)
    assert result.returncode == 1
    assert "the entry bundles give root" in result.stdout


def test_go_rejects_a_tampered_proof(tlogcheck: Path, good_log: Path, tmp_path: Path) -> None:
    log = tampered(good_log, tmp_path)
    document = json.loads((log / "proofs.json").read_text())
    victim = next(p for p in document["inclusion"] if len(p["proof"]) > 2)
    victim["proof"][1], victim["proof"][2] = victim["proof"][2], victim["proof"][1]
    (log / "proofs.json").write_text(json.dumps(document))
    result = run(tlogcheck, log)
    assert result.returncode == 1
    assert "inclusion proof of" in result.stdout


def test_go_rejects_a_checkpoint_signed_by_another_key(
    tlogcheck: Path, good_log: Path, tmp_path: Path
) -> None:
    log = tampered(good_log, tmp_path)
    body = (log / "checkpoint").read_text().split("\n\n")[0] + "\n"
    impostor = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"another key").digest())
    (log / "checkpoint").write_text(sign_checkpoint(Checkpoint.parse(body), impostor))
    result = run(tlogcheck, log)
    assert result.returncode == 1
    assert "checkpoint signature" in result.stdout
