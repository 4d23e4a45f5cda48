"""A long-lived unit runner inside one sandbox: ``python -m nexapod.workloads.worker MODULE``.

Starting a fresh sandboxed Python for every unit costs about a quarter of a second
(interpreter, numpy and OpenBLAS, the first touch of the kernel's buffers), which is half
the work of a 4096 x 4096 atlas unit. A node therefore keeps one sandbox per executor
configuration and sends it units one at a time; the sandbox itself (namespaces, read-only
code, no network, rlimits) is unchanged, see ``docs/sandbox.md``.

Protocol (one JSON object per line, each at most ``LINE_BYTES_MAX``):

- after importing MODULE and calling its ``preload()``, the worker writes ``{"ready": true}``;
- request on stdin: ``{"scratch_dir": "/abs/dir", "cpu_s_max": N}``;
- reply: ``{"exit_code": C, "cpu_s": S, "stderr_tail": "..."}``, where C follows the unit
  exit-code contract of MODULE's ``main([scratch_dir])`` (0 ok, 2 bad input, 3 memory).

Replies go to a private copy of the original stdout; fd 1 is pointed at stderr so that
nothing a unit prints can be read as a reply. The CPU-time limit is per unit: before each
unit the soft RLIMIT_CPU is set to the CPU time used so far plus ``cpu_s_max`` (never
above the hard limit the sandbox set), so a runaway unit gets SIGXCPU like a fresh one.
The node retires the worker after any unit that did not end with exit code 0.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import resource
import sys
import traceback
from typing import Any, BinaryIO

__all__ = ["LINE_BYTES_MAX", "main"]

LINE_BYTES_MAX = 64 * 1024
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
STDERR_TAIL_CHARS = 4096
EXIT_FAILED = 1
EXIT_USAGE = 64


class _TailText(io.TextIOBase):
    """A text stream keeping only its last ``chars_max`` characters."""

    def __init__(self, chars_max: int) -> None:
        self.chars_max = chars_max
        self.text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text = (self.text + text)[-self.chars_max :]
        return len(text)


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    line = json.dumps(message, sort_keys=True).encode() + b"\n"
    assert len(line) <= LINE_BYTES_MAX
    out.write(line)
    out.flush()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit_cpu(cpu_s_max: int) -> None:
    """Soft RLIMIT_CPU = used + cpu_s_max (whole seconds, capped at the hard limit)."""
    soft = int(_cpu_s()) + 1 + cpu_s_max
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _parse_request(line: bytes) -> tuple[str, int]:
    request = json.loads(line)
    if not isinstance(request, dict) or set(request) != {"scratch_dir", "cpu_s_max"}:
        raise ValueError("a request is {scratch_dir, cpu_s_max}")
    scratch_dir, cpu_s_max = request["scratch_dir"], request["cpu_s_max"]
    if not isinstance(scratch_dir, str) or not os.path.isabs(scratch_dir):
        raise ValueError("scratch_dir must be an absolute path")
    if isinstance(cpu_s_max, bool) or not isinstance(cpu_s_max, int) or cpu_s_max <= 0:
        raise ValueError("cpu_s_max must be a positive integer")
    return scratch_dir, cpu_s_max


def _run_unit(unit_main: Any, scratch_dir: str) -> tuple[int, str]:
    """The unit's exit code and the tail of what it wrote to sys.stderr."""
    tail = _TailText(STDERR_TAIL_CHARS)
    with contextlib.redirect_stderr(tail):
        try:
            os.chdir(scratch_dir)
            code = unit_main([scratch_dir])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        except BaseException:  # any failure is the unit's, reported as such
            traceback.print_exc(file=tail)
            code = EXIT_FAILED
    return int(code), tail.text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not _MODULE_NAME.fullmatch(args[0]):
        print("usage: python -m nexapod.workloads.worker UNIT_MODULE", file=sys.stderr)
        return EXIT_USAGE
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    module = importlib.import_module(args[0])
    preload = getattr(module, "preload", None)
    if preload is not None:
        preload()
    _send(replies, {"ready": True})
    requests = sys.stdin.buffer
    while True:
        line = requests.readline(LINE_BYTES_MAX + 1)
        if not line:
            return 0  # the node closed our stdin: retire
        if len(line) > LINE_BYTES_MAX or not line.endswith(b"\n"):
            print("nexapod worker: request line too long", file=sys.stderr)
            return EXIT_USAGE
        try:
            scratch_dir, cpu_s_max = _parse_request(line)
        except ValueError as exc:
            print(f"nexapod worker: bad request: {exc}", file=sys.stderr)
            return EXIT_USAGE
        _limit_cpu(cpu_s_max)
        code, stderr_tail = _run_unit(module.main, scratch_dir)
        _send(replies, {"exit_code": code, "cpu_s": _cpu_s(), "stderr_tail": stderr_tail})


if __name__ == "__main__":
    sys.exit(main())
