"""Benchmark of the atlas kernel against the bare matmul and faiss, on one BLAS thread.

    python bench/kernel.py [--block-size 2048 --dim 1024 --k 16 --repeats 15]
                           [--sizes 2048,4096,8192 --calls 3]

Part 1, in this process, on the same two blocks of synthetic spectra (unit vectors):

    kernel       compute_unit on an off-diagonal unit (matmul + top-k both ways)
    kernel/diag  compute_unit on a diagonal unit (matmul + top-k of rows)
    matmul       the bare numpy product block_row @ block_col.T (the baseline)
    faiss        IndexFlatIP exact search of block_row against block_col, k results
    ref          the one-matmul kernel compute_unit replaced (_compute_unit_reference)
    ref/diag     the same on the diagonal unit

Every figure counts the same FLOPs, unit_flops = 2 * n_rows * n_cols * dim, so FLOP/s
compare directly. The calls are interleaved (round-robin) so that a slow spell of the
machine hits all of them, and each figure is the best of ``repeats`` (the median is
shown too). Targets: kernel >= 0.70 x matmul, and not slower than faiss.

"Not slower than faiss" is judged on the same output. A unit's result holds both
directions (each row's top-k among the columns, and each column's among the rows); one
IndexFlatIP search gives one direction, so faiss makes a unit's result in two searches,
and the figure is kernel / (2 x faiss). The one-direction ratio is printed beside it.
Then the whole graph (--graph-blocks blocks): the kernel over every unit of the job's
plan, merged into the kNN graph, against faiss searching every spectrum among all of
them (k + 1, the spectrum itself dropped), both on one thread, both checked to give the
same graph (up to ties); time against time, since the plan computes each block pair once
and faiss the full square.

Part 2, in fresh processes as a node runs units (one process per unit, one BLAS thread
each), for each of ``--sizes`` and for compute_unit and the reference: two processes,
each pinned to its own CPU with its own off-diagonal unit, first each alone, then both
released together (a 2-core node running two units); each is compared with itself alone
on the same CPU, as a VM's two CPUs need not be equally fast. Each process makes
``calls`` calls: ``first`` is the fresh process's first call (page faults included:
what a node sees, as it starts one process per unit), ``warm`` the median of the others
(in a pair, only calls made while the other process was still timing). pair / solo is
how much two concurrent units slow each other down. ``peak MiB`` is the most memory
numpy held during one unit (tracemalloc, in one more untimed call). ``other load`` is
the CPU, in cores, that processes other than the benchmark's used meanwhile; above 0.1
the figures are flagged as unreliable (the machine is shared).

Always exits 0: it reports, CI does not gate on a shared machine's timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_info, threadpool_limits

from nexapod.workloads.atlas import (
    AtlasParams,
    KnnGraph,
    UnitShape,
    compute_unit,
    job_flops,
    merge_unit_results,
    plan_units,
    unit_flops,
)
from nexapod.workloads.atlas._kernel import (
    _STRIP_BYTES_MAX,
    _compute_unit_reference,
    _strip_bounds,
    _strip_rows,
)
from nexapod.workloads.atlas._synthetic import synthetic_embeddings

TARGET_KERNEL_OVER_MATMUL = 0.70
TARGET_KERNEL_OVER_FAISS = 1.0
REPEATS_MAX = 1000
CALLS_MAX = 20
SIZES_DEFAULT = "2048,4096,8192"
WORKER_TIMEOUT_S = 300
# Part 2 flags a measurement during which other processes used more than this many cores.
OTHER_LOAD_MAX = 0.1
KERNELS: dict[str, Callable[..., object]] = {
    "kernel": compute_unit,
    "ref": _compute_unit_reference,
}
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
Float32Array = npt.NDArray[np.float32]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--graph-blocks", type=int, default=4, help="blocks of the graph run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sizes", default=SIZES_DEFAULT, help="part 2 block sizes ('' skips)")
    parser.add_argument("--calls", type=int, default=3, help="part 2 calls per process")
    parser.add_argument("--worker", choices=sorted(KERNELS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-blocks", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-peak", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.repeats <= REPEATS_MAX:
        parser.error(f"--repeats must be in [1, {REPEATS_MAX}]")
    if not 1 <= args.calls <= CALLS_MAX:
        parser.error(f"--calls must be in [1, {CALLS_MAX}]")
    return args


def _blocks(block_size: int, dim: int, seed: int, n_blocks: int = 2) -> list[Float32Array]:
    params = AtlasParams(embedding_dim=dim, mz_min=0.0, mz_max=1024.0, block_size=block_size)
    embeddings = synthetic_embeddings(n_blocks * block_size, seed, params)
    return [embeddings[i * block_size : (i + 1) * block_size].copy() for i in range(n_blocks)]


def _off_diagonal(n: int) -> UnitShape:
    return UnitShape(block_row=0, block_col=1, row_start=0, row_stop=n, col_start=n, col_stop=2 * n)


def _time_round_robin(
    calls: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, run in turn ``repeats`` times after a warm-up."""
    for call in calls.values():
        call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started_s = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - started_s)
    return seconds


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else "MISS"


def _in_process(args: argparse.Namespace) -> None:
    """Part 1: the in-process figures at --block-size."""
    n, dim, k = args.block_size, args.dim, args.k
    block_row, block_col = _blocks(n, dim, args.seed)
    off_diagonal = _off_diagonal(n)
    diagonal = UnitShape(block_row=0, block_col=0, row_start=0, row_stop=n, col_start=0, col_stop=n)
    index = faiss.IndexFlatIP(dim)
    index.add(block_col)
    faiss.omp_set_num_threads(1)
    calls: dict[str, Callable[[], object]] = {
        "kernel": lambda: compute_unit(block_row, block_col, off_diagonal, k),
        "kernel/diag": lambda: compute_unit(block_row, block_row, diagonal, k),
        "matmul": lambda: np.matmul(block_row, block_col.T),
        "faiss": lambda: index.search(block_row, k),
        "ref": lambda: _compute_unit_reference(block_row, block_col, off_diagonal, k),
        "ref/diag": lambda: _compute_unit_reference(block_row, block_row, diagonal, k),
    }
    with threadpool_limits(limits=1):
        libraries = ", ".join(
            f"{info['internal_api']} {info.get('version') or ''} x{info['num_threads']}".strip()
            for info in threadpool_info()
        )
        seconds = _time_round_robin(calls, args.repeats)
    flops = unit_flops(n, n, dim)
    best = {name: flops / min(times) for name, times in seconds.items()}
    median = {name: flops / statistics.median(times) for name, times in seconds.items()}
    print(f"atlas kernel benchmark: {n} x {n} x {dim}, k={k}, best of {args.repeats}, 1 thread")
    print(f"thread pools: {libraries}")
    print(f"FLOPs per call: {flops:,} (2 * n_rows * n_cols * dim)")
    print()
    print(f"{'':12} {'best ms':>9} {'GFLOP/s':>9} {'median ms':>10} {'GFLOP/s':>9}")
    for name, times in seconds.items():
        print(
            f"{name:12} {min(times) * 1e3:9.2f} {best[name] / 1e9:9.2f} "
            f"{statistics.median(times) * 1e3:10.2f} {median[name] / 1e9:9.2f}"
        )
    print()
    over_matmul = best["kernel"] / best["matmul"]
    over_faiss = best["kernel"] / best["faiss"]
    selection_ms = (min(seconds["kernel"]) - min(seconds["matmul"])) * 1e3
    print(f"selection overhead (kernel - matmul): {selection_ms:.2f} ms")
    print(
        f"kernel / matmul = {over_matmul:.3f}  (target >= {TARGET_KERNEL_OVER_MATMUL:.2f})  "
        f"{_verdict(over_matmul, TARGET_KERNEL_OVER_MATMUL)}"
    )
    # faiss returns one direction; a unit's result holds both: two searches.
    over_faiss_both = best["kernel"] / (best["faiss"] / 2)
    print(
        f"kernel / (2 x faiss) = {over_faiss_both:.3f}  (a unit's output, both directions; "
        f"target >= {TARGET_KERNEL_OVER_FAISS:.2f})  "
        f"{_verdict(over_faiss_both, TARGET_KERNEL_OVER_FAISS)}"
    )
    print(f"kernel / faiss  = {over_faiss:.3f}  (one direction only: half a unit's output)")
    print(
        f"kernel / ref = {best['kernel'] / best['ref']:.3f}, kernel/diag / ref/diag = "
        f"{best['kernel/diag'] / best['ref/diag']:.3f}  (FLOP/s; > 1 is faster than the old kernel)"
    )
    print("kernel/diag: numpy computes A @ A.T with syrk (half the multiplies), rows only")
    print("             compute_unit computes the upper triangle in strips (see _kernel.py)")


def _graph(args: argparse.Namespace) -> None:
    """The whole kNN graph of --graph-blocks blocks: the plan's units merged, against
    faiss searching all spectra among all; one thread each, the better of two runs
    after a warm-up."""
    n_blocks, n, dim, k = args.graph_blocks, args.block_size, args.dim, args.k
    embeddings = np.concatenate(_blocks(n, dim, args.seed, n_blocks))
    n_spectra = n_blocks * n
    shapes = plan_units(n_spectra, n)

    def kernel() -> KnnGraph:
        results = (
            (
                shape,
                compute_unit(
                    embeddings[shape.row_start : shape.row_stop],
                    embeddings[shape.col_start : shape.col_stop],
                    shape,
                    k,
                ),
            )
            for shape in shapes
        )
        return merge_unit_results(n_spectra, k, results)

    def search() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        index = faiss.IndexFlatIP(dim)
        index.add(embeddings)
        sims, ids = index.search(embeddings, k + 1)
        return sims, ids

    faiss.omp_set_num_threads(1)
    with threadpool_limits(limits=1):
        seconds = _time_round_robin({"kernel": kernel, "faiss": search}, 2)
        graph = kernel()
        sims, ids = search()
    own = ids == np.arange(n_spectra)[:, None]
    faiss_ids = np.where(own.any(axis=1)[:, None], ids[~own].reshape(n_spectra, k), ids[:, :k])
    faiss_sims = np.where(own.any(axis=1)[:, None], sims[~own].reshape(n_spectra, k), sims[:, :k])
    same_ids = float(np.mean(np.sort(graph.ids, axis=1) == np.sort(faiss_ids, axis=1)))
    sims_error = float(np.max(np.abs(graph.sims - faiss_sims)))
    kernel_s, faiss_s = min(seconds["kernel"]), min(seconds["faiss"])
    flops = job_flops(n_spectra, AtlasParams(embedding_dim=dim, block_size=n, k=k))
    print()
    print(
        f"whole graph: {n_spectra} spectra ({len(shapes)} units of {n}), k={k}, 1 thread, best of 2"
    )
    print(
        f"  kernel over the plan, merged: {kernel_s:7.2f} s  ({flops / kernel_s / 1e9:.1f} "
        f"GFLOP/s of the plan's {flops / 1e9:.0f} GFLOP)"
    )
    print(
        f"  faiss, all against all:       {faiss_s:7.2f} s  "
        f"({2 * n_spectra * n_spectra * dim / faiss_s / 1e9:.1f} GFLOP/s of its "
        f"{2 * n_spectra * n_spectra * dim / 1e9:.0f} GFLOP)"
    )
    print(
        f"  same graph: {same_ids:.4%} of neighbour slots equal (ties may order apart), "
        f"similarities within {sims_error:.1e}"
    )
    ratio = faiss_s / kernel_s
    print(
        f"  kernel / faiss, time to the graph = {ratio:.3f}  (target >= "
        f"{TARGET_KERNEL_OVER_FAISS:.2f})  {_verdict(ratio, TARGET_KERNEL_OVER_FAISS)}"
    )


@dataclass(frozen=True)
class _Run:
    """One worker process: each call's start and end and its unit's peak traced bytes.

    The times are perf_counter, CLOCK_MONOTONIC on Linux: one clock for all processes.
    """

    calls: list[tuple[float, float]]
    peak_bytes: int

    @property
    def first_s(self) -> float:
        return self.calls[0][1] - self.calls[0][0]

    def warm_s(self, window: tuple[float, float]) -> list[float]:
        """Seconds of the calls after the first that lie entirely inside ``window``."""
        return [
            end - start for start, end in self.calls[1:] if window[0] <= start and end <= window[1]
        ]


def _worker(args: argparse.Namespace) -> int:
    """Part 2's child: load two blocks, wait for 'go' on stdin, time ``calls`` units."""
    assert args.worker_blocks is not None
    if args.worker_cpu is not None:
        os.sched_setaffinity(0, {args.worker_cpu})
    kernel = KERNELS[args.worker]
    block_row = np.load(args.worker_blocks / "row.npy")
    block_col = np.load(args.worker_blocks / "col.npy")
    shape = _off_diagonal(block_row.shape[0])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    calls = []
    peak_bytes = 0
    with threadpool_limits(limits=1):
        for _ in range(args.calls):
            started = time.perf_counter()
            kernel(block_row, block_col, shape, args.k)
            calls.append((started, time.perf_counter()))
        if args.worker_peak:
            tracemalloc.start()  # one more, untimed call: tracing slows Python down
            kernel(block_row, block_col, shape, args.k)
            _, peak_bytes = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    print(json.dumps({"calls": calls, "peak_bytes": peak_bytes}))
    return 0


def _busy_s() -> float:
    """CPU seconds all processes of the machine have used (Linux /proc/stat), or 0."""
    try:
        fields = [int(field) for field in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _own_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class _Job:
    """One worker to start: its blocks, its CPU (None: unpinned), whether to trace memory."""

    blocks: Path
    cpu: int | None
    peak: bool = False


def _run_workers(
    kernel: str, jobs: list[_Job], args: argparse.Namespace
) -> tuple[list[_Run], float]:
    """One fresh process per job, released together: their runs and the other load.

    The other load is the CPU (in cores) that processes other than ours used meanwhile:
    on a shared machine, a figure taken beside someone's job is not a figure.
    """
    env = {**os.environ, **dict.fromkeys(_THREAD_VARIABLES, "1")}
    command = [sys.executable, __file__, "--worker", kernel, "--k", str(args.k)]
    command += ["--calls", str(args.calls)]
    busy_s, own_s, started = _busy_s(), _own_s(), time.perf_counter()
    processes = []
    for job in jobs:
        options = ["--worker-blocks", str(job.blocks)]
        options += [] if job.cpu is None else ["--worker-cpu", str(job.cpu)]
        options += ["--worker-peak"] if job.peak else []
        processes.append(
            subprocess.Popen(
                [*command, *options],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # the barrier: all have loaded their blocks
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        runs = []
        for process in processes:
            out, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
            report = json.loads(out.strip().splitlines()[-1])
            runs.append(_Run([tuple(call) for call in report["calls"]], report["peak_bytes"]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    other_s = max(0.0, (_busy_s() - busy_s) - (_own_s() - own_s))
    return runs, other_s / (time.perf_counter() - started)


def _diagonal_share(n: int) -> float:
    """The share of S a diagonal unit's strips compute (syrk: about a half)."""
    rows = _strip_rows(n, n, _STRIP_BYTES_MAX)
    computed = 0
    for start, stop in _strip_bounds(n, rows):
        square = stop - start
        computed += square * (square + 1) // 2 + square * (n - stop)  # syrk + gemm
    return computed / (n * n)


@dataclass(frozen=True)
class _Figures:
    """Seconds per unit of one process (one CPU): alone and beside the other, first and warm."""

    solo_first_s: float
    solo_warm_s: float
    pair_first_s: float
    pair_warm_s: float


def _measure(
    kernel: str, n: int, block_dirs: list[Path], args: argparse.Namespace
) -> list[_Figures]:
    """Each process alone on its CPU, then both at once; figures per process.

    Each process is pinned to its own CPU, and compared with itself alone on that CPU:
    the two CPUs of a VM need not be equally fast.
    """
    pinned = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= len(block_dirs)
    cpus = sorted(os.sched_getaffinity(0))[: len(block_dirs)] if pinned else [None] * 2
    jobs = [_Job(block_dir, cpu) for block_dir, cpu in zip(block_dirs, cpus, strict=True)]
    solos, loads = [], []
    for i, job in enumerate(jobs):
        (solo,), load = _run_workers(kernel, [_Job(job.blocks, job.cpu, peak=i == 0)], args)
        solos.append(solo)
        loads.append(load)
    pair, load = _run_workers(kernel, jobs, args)
    loads.append(load)
    window = (max(run.calls[0][0] for run in pair), min(run.calls[-1][1] for run in pair))
    figures = []
    for i, (solo, run) in enumerate(zip(solos, pair, strict=True)):
        solo_warm = solo.warm_s((-math.inf, math.inf)) or [solo.first_s]
        pair_warm = run.warm_s(window) or [math.nan]
        figures.append(
            _Figures(
                solo.first_s,
                statistics.median(solo_warm),
                run.first_s,
                statistics.median(pair_warm),
            )
        )
        f = figures[-1]
        line = (
            f"{n:5} {kernel:6} {'-' if cpus[i] is None else cpus[i]:>3} "
            f"{f.solo_first_s:7.3f} {f.solo_warm_s:7.3f} "
            f"{f.pair_first_s:7.3f} {f.pair_warm_s:7.3f} "
            f"{f.pair_first_s / f.solo_first_s:9.2f} {f.pair_warm_s / f.solo_warm_s:6.2f} "
        )
        if i == 0:  # one peak and one load figure per kernel and size
            line += f"{solos[0].peak_bytes / 2**20:8.0f} {max(loads):10.2f}"
        print(line.rstrip())
    if max(loads) > OTHER_LOAD_MAX:
        print(f"      ({kernel} at {n}: other processes used {max(loads):.2f} cores: unreliable)")
    return figures


def _mean(figures: list[_Figures], field: str) -> float:
    return statistics.mean(float(getattr(figure, field)) for figure in figures)


def _concurrent(args: argparse.Namespace, sizes: list[int]) -> None:
    """Part 2: fresh processes, alone and two at once, for compute_unit and the reference."""
    print()
    print(
        f"fresh processes, 1 BLAS thread each, {args.calls} calls each; seconds per unit "
        "(first: the fresh process's first call; warm: median of the others, for a pair only "
        "those while the other process was still timing)"
    )
    print(
        f"{'size':>5} {'kernel':6} {'cpu':>3} {'solo':>7} {'warm':>7} {'pair':>7} {'warm':>7} "
        f"{'pair/solo':>7} {'warm':>6} {'peak MiB':>8} {'other load':>10}"
    )
    for n in sizes:
        blocks = _blocks(n, args.dim, args.seed, n_blocks=4)
        with tempfile.TemporaryDirectory(prefix="nexapod-bench-") as tmp:
            block_dirs = [Path(tmp) / "a", Path(tmp) / "b"]
            for i, block_dir in enumerate(block_dirs):
                block_dir.mkdir()
                np.save(block_dir / "row.npy", blocks[2 * i])
                np.save(block_dir / "col.npy", blocks[2 * i + 1])
            figures = {kernel: _measure(kernel, n, block_dirs, args) for kernel in KERNELS}

        ratios = [
            _mean(figures["kernel"], field) / _mean(figures["ref"], field)
            for field in ("solo_first_s", "solo_warm_s", "pair_first_s", "pair_warm_s")
        ]
        print(
            f"{n:5} kernel / ref time: solo {ratios[0]:.2f} first, {ratios[1]:.2f} warm; pair "
            f"{ratios[2]:.2f} first, {ratios[3]:.2f} warm (< 1: faster). Strips of "
            f"{_strip_rows(n, n, _STRIP_BYTES_MAX)} rows; a diagonal unit computes "
            f"{_diagonal_share(n):.1%} of S"
        )


def main() -> int:
    args = _arguments()
    if args.worker is not None:
        return _worker(args)
    _in_process(args)
    if args.graph_blocks > 0:
        _graph(args)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    if sizes:
        _concurrent(args, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
