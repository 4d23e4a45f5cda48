"""`nexapod demo` as a user runs it: real processes, the sandbox, and what it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_an_atlas_job_and_reports_who_computed_what(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nexapod",
            "demo",
            "--nodes",
            "3",
            "--spectra",
            "5000",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "coordinator up at http://127.0.0.1:" in out
    assert re.search(r"release enforcement on: runner release [^ ]+ \(tree [0-9a-f]{16}…", out)
    assert out.count("GFLOP/s") >= 3, "each node reports its measured capacity"
    assert "job " in out
    assert "6 work units" in out
    assert {"alice", "bob", "carol"} <= set(re.findall(r"for (\w+):", out))
    assert "verified work per node" in out
    assert re.search(r"job wall time [\d.]+ s, [\d,]+ FLOPs verified, achieved", out)
    # three new nodes of three users: every unit confirmed by a second user's node
    assert "validation: 12 valid results for 6 units (2.00 per unit" in out
    assert "atlas sample: spectrum 2500 and its nearest neighbours" in out
    assert len(re.findall(r"spectrum +\d+ +cosine 0\.\d{6}", out)) == 8
    assert re.search(
        r"ledger checkpoint \(verifier key localhost/nexapod-ledger\+[0-9a-f]{8}\+", out
    )
    assert re.search(r"ledger verifier: OK: tree size \d+, root [A-Za-z0-9+/]{43}=", out)
    assert (tmp_path / "demo" / "coordinator" / "coordinator.sqlite3").exists()
    node_logs = sorted((tmp_path / "demo" / "logs").glob("node*.log"))
    assert len(node_logs) == 3
    assert all("with the bwrap sandbox" in log.read_text() for log in node_logs)
    assert all("checked against its signed manifest" in log.read_text() for log in node_logs)
    releases = (tmp_path / "demo" / "release").iterdir()
    assert sorted(path.name for path in releases) == ["manifest.json", "release.key"]


def test_demo_refuses_an_unknown_sandbox_with_its_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nexapod", "demo", "--executor", "nosuch"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "node.executor_unknown" in result.stderr
