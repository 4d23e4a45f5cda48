"""Real processes for integration tests: a coordinator server and node agents."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = ["CoordinatorProcess", "free_port", "wait_until"]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``condition`` until it returns a truthy value, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


class CoordinatorProcess:
    """``nexapod coordinator serve`` in its own process."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        workers: int = 1,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        """``env`` adds settings (``NEXAPOD_*``) to the coordinator's environment;
        ``port`` restarts a coordinator where its nodes expect it."""
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "coordinator.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nexapod",
                "coordinator",
                "serve",
                "--db",
                database_url,
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--workers",
                str(workers),
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        wait_until(self._healthy, 60, "the coordinator to answer /v1/health")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"coordinator exited:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a power cut or the OOM killer would do it."""
        self.process.kill()
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self._log.close()


NO_SHARE_CAP_POLICY = Path(__file__).parent / "policy_no_share_cap.toml"
"""The default policy with the share cap out of reach (``share_cap_min_users`` 1000):
for process tests about faults and cheaters among three users, where the cap would park
the largest honest node and leave units short of distinct users (tests/pools test it)."""
