"""The node agent's run loop: lease units, run each in the sandbox, sign and upload.

The loop keeps one unit running and the next one's inputs downloading, and uploads
results in the background, so the CPU stays on science while the network works.
Each unit gets its own scratch directory, removed when the unit is over. Beside the loop,
a thread answers the coordinator's liveness challenges (``challenges``). With a
verified release (``release_check``), the files a unit runs are checked against it just
before the unit starts; a change stops the node, and the unit goes back to the queue.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from nexapod.crypto import SigningKey, b64encode, sha256_hex, sign_document
from nexapod.errors import NexaPodError, NodeError, WorkloadError
from nexapod.logs import log_event
from nexapod.node.cache import BlockCache
from nexapod.node.challenges import POLL_S_MIN, ChallengeCounts, ChallengeResponder
from nexapod.node.client import CoordinatorClient, RemoteError
from nexapod.node.executors import ExecutionOutcome, Executor, SandboxLimits
from nexapod.node.release_check import RunnerRelease
from nexapod.protocol.v1 import (
    PURPOSE_CHECKPOINT,
    PURPOSE_RESULT,
    CheckpointDocument,
    CheckpointUpload,
    InputRef,
    LeaseGrant,
    LeaseResponse,
    ResultDocument,
)
from nexapod.workloads import unit_module

__all__ = ["AgentConfig", "AgentSummary", "NodeAgent", "UnitEvent"]

logger = logging.getLogger("nexapod.node")
GIB = 1 << 30
DEADLINE_MARGIN_S = 1.0
RESULT_FILE = "result.bin"
CHECKPOINT_FILE = "checkpoint.bin"  # in/: the state to resume from; out/: the latest
CHECKPOINT_INPUT = "checkpoint"  # the grant's input that names it
CHECKPOINT_HEADER_BYTES = 28
CHECKPOINT_POLL_S = 0.05
EVENTS_KEPT_MAX = 1000


@dataclass(frozen=True)
class AgentConfig:
    units_max: int | None = None  # stop after this many units (None: run until stopped)
    prefetch_units: int = 1  # leases held beyond the running unit
    idle_exit_s: float | None = None  # stop after this long with no work (None: wait forever)
    poll_s_max: float = 5.0
    memory_bytes_max: int = 4 * GIB
    unit_threads: int = 1
    cache_bytes_max: int = 2 * GIB
    checkpoint_interval_s: float = 30.0  # upload a long unit's state at most this often
    challenges: bool = True  # answer liveness challenges (cold pool)
    challenge_poll_s_max: float = 60.0  # ask for them at least this often, whatever the pace

    def __post_init__(self) -> None:
        assert self.units_max is None or self.units_max >= 1
        assert self.challenge_poll_s_max >= POLL_S_MIN
        assert 0 <= self.prefetch_units <= 16
        assert self.memory_bytes_max > 0
        assert self.unit_threads >= 1
        assert self.checkpoint_interval_s >= 0


@dataclass(frozen=True)
class UnitEvent:
    """What happened to one unit, for the operator's screen."""

    kind: str  # "done" | "failed" | "refused"
    lease_id: str
    job_id: str
    unit_id: int
    work_flops: int
    wall_s: float
    detail: str


@dataclass
class AgentSummary:
    units_done: int = 0
    units_failed: int = 0
    units_refused: int = 0
    verified_flops: int = 0
    events: deque[UnitEvent] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT_MAX))
    challenges: ChallengeCounts = field(default_factory=ChallengeCounts)


# A granted unit, the preparation of its scratch directory, and when it was received.
_Pending = tuple[LeaseGrant, "Future[Path]", float]
_Leased = tuple[LeaseResponse, list[_Pending]]


class NodeAgent:
    """Runs units for one coordinator as one registered node."""

    def __init__(
        self,
        *,
        node_id: str,
        key: SigningKey,
        runner_tree_hash: str,
        client: CoordinatorClient,
        executor: Executor,
        scratch_root: Path,
        cache: BlockCache,
        config: AgentConfig,
        on_event: Callable[[UnitEvent], None] | None = None,
        unit_command: Callable[[LeaseGrant, Path], list[str]] | None = None,
        release: RunnerRelease | None = None,
        inputs_root: Path | None = None,
    ) -> None:
        """``inputs_root``: where each unit's input blocks are linked from the cache, when
        the executor binds it read-only into its sandboxes (``Executor.readable_dirs``);
        otherwise, or without it, the blocks are copied into each unit's scratch."""
        self.node_id = node_id
        self.key = key
        self.runner_tree_hash = runner_tree_hash
        self.client = client
        self.executor = executor
        self.scratch_root = scratch_root
        self.cache = cache
        self.config = config
        self.on_event = on_event
        self.unit_command = unit_command
        self.release = release
        self.inputs_root = inputs_root
        self._link_inputs = (
            inputs_root is not None and inputs_root.resolve() in executor.readable_dirs
        )
        self.summary = AgentSummary()
        self._stopping = False
        self._refusal: NodeError | None = None

    def stop(self) -> None:
        """Finish the running unit, then return from :meth:`run`."""
        self._stopping = True

    def run(self) -> AgentSummary:
        """Run units until stopped, out of work (``idle_exit_s``) or at ``units_max``.

        Lease requests run on their own thread, so asking for the next units never
        delays starting the one already downloaded; the thread starts downloading a
        granted unit's inputs as soon as the grant arrives, while a unit is running.
        Raises the NodeError that stopped it when a workload no longer matches the release.
        """
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        if self.inputs_root is not None:  # what a stopped run left is nobody's now
            shutil.rmtree(self.inputs_root, ignore_errors=True)
            self.inputs_root.mkdir(parents=True)
        responder = None
        if self.config.challenges:
            responder = ChallengeResponder(
                node_id=self.node_id,
                key=self.key,
                client=self.client,
                poll_s_max=self.config.challenge_poll_s_max,
            )
            self.summary.challenges = responder.counts
            responder.start()
        try:
            self._loop()
        finally:
            if responder is not None:
                responder.stop()
        if self._refusal is not None:
            raise self._refusal
        return self.summary

    def _loop(self) -> None:
        """The run loop proper (see :meth:`run`)."""
        pending: deque[_Pending] = deque()
        uploads: list[Future[None]] = []
        leased_total = 0
        idle_since = time.monotonic()
        next_lease_at = 0.0
        asking: Future[_Leased] | None = None
        with (
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="nexapod-io") as io,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexapod-lease") as leaser,
        ):
            while not self._stopping:
                if asking is not None and asking.done():
                    granted = self._take_grants(self._lease_answer(asking), pending)
                    leased_total += granted
                    asking = None
                    if not granted:
                        idle_s = time.monotonic() - idle_since
                        next_lease_at = time.monotonic() + min(
                            self.config.poll_s_max, 0.5 + idle_s / 10
                        )
                want = self._wanted(len(pending), leased_total)
                if asking is None and want > 0 and time.monotonic() >= next_lease_at:
                    asking = leaser.submit(self._lease, want, io)
                if pending:
                    grant, prepared, received_at = pending.popleft()
                    if not self._workload_intact(grant, prepared):
                        break
                    self._run_one(grant, prepared, received_at, io, uploads)
                    idle_since = time.monotonic()
                    if not pending:  # out of work now: ask at once, whatever the backoff
                        next_lease_at = 0.0
                    uploads = [u for u in uploads if not u.done()]
                    continue
                if asking is None and self._finished(leased_total):
                    break
                idle_s = time.monotonic() - idle_since
                if (
                    asking is None
                    and self.config.idle_exit_s is not None
                    and idle_s >= self.config.idle_exit_s
                ):
                    break
                if asking is not None:
                    wait([asking], timeout=self.config.poll_s_max)
                else:
                    time.sleep(max(0.0, min(0.5, next_lease_at - time.monotonic())))
            for upload in uploads:
                upload.result()
            if asking is not None:
                self._take_grants(self._lease_answer(asking), pending)
            for grant, prepared, _ in pending:  # stopped early: give the work back
                if not prepared.cancel():
                    wait([prepared])
                self._discard(grant)
                self._report_failure(grant, "node_stopping", "the node stopped before this unit")

    def _workload_intact(self, grant: LeaseGrant, prepared: Future[Path]) -> bool:
        """Check the files this unit runs against the release; a change stops the node.

        The unit is given back to the coordinator unrun, so another node computes it.
        """
        if self.release is None:
            return True
        try:
            module = unit_module(grant.workload)
        except WorkloadError:
            return True  # _run_one reports the unknown workload as it always has
        try:
            self.release.check_workload(module)
        except NodeError as exc:
            if not prepared.cancel():  # already downloading: let it finish, then tidy up
                wait([prepared])
            self._discard(grant)
            self._report_failure(grant, exc.code.split(".")[-1], exc.detail)
            log_event(logger, "unit.not_run", lease_id=grant.lease_id, code=exc.code)
            self._refusal = exc
            self._stopping = True
            return False
        return True

    def _finished(self, leased_total: int) -> bool:
        return self.config.units_max is not None and leased_total >= self.config.units_max

    def _wanted(self, pending_count: int, leased_total: int) -> int:
        want = 1 + self.config.prefetch_units - pending_count
        if self.config.units_max is not None:
            want = min(want, self.config.units_max - leased_total)
        return want

    def _lease(self, want: int, io: ThreadPoolExecutor) -> _Leased:
        """Ask for ``want`` units and start preparing each grant at once (lease thread)."""
        response = self.client.lease(want)
        now = time.monotonic()
        return response, [
            (grant, io.submit(self._prepare, grant), now) for grant in response.leases
        ]

    def _lease_answer(self, asking: Future[_Leased]) -> _Leased:
        """The lease response; a coordinator failure (5xx, unreachable) is waited out.

        A refusal (4xx: unknown node, bad signature, clock skew) needs the operator, so it
        stops the agent with the coordinator's message.
        """
        try:
            return asking.result()
        except RemoteError as exc:
            if exc.http_status < 500:
                raise
            log_event(logger, "lease.failed", status=exc.http_status, code=exc.code)
        except NexaPodError as exc:
            if exc.code != "nexapod.unreachable":
                raise
            log_event(logger, "lease.failed", code=exc.code)
        return LeaseResponse(leases=[], retry_after_s=int(self.config.poll_s_max)), []

    def _take_grants(self, leased: _Leased, pending: deque[_Pending]) -> int:
        _, prepared = leased
        for item in prepared:
            pending.append(item)
            log_event(logger, "lease.received", lease_id=item[0].lease_id, unit_id=item[0].unit_id)
        return len(prepared)

    def _prepare(self, grant: LeaseGrant) -> Path:
        """Fetch and check the unit's inputs, and lay out its scratch directory.

        Blocks come from the cache: linked into the unit's read-only inputs directory, and
        named in the scratch by a symbolic link (no copy), or copied where the executor
        cannot bind that directory.
        """
        self._discard(grant)
        scratch = self.scratch_root / grant.lease_id
        (scratch / "in").mkdir(parents=True)
        (scratch / "out").mkdir()
        inputs = self._inputs_dir(grant)
        if inputs is not None:
            inputs.mkdir()
        for ref in grant.inputs:
            if ref.name == CHECKPOINT_INPUT:
                self._fetch_checkpoint(grant, ref, scratch)
                continue
            name = f"{ref.name}.npy"
            if inputs is not None:
                if not self.cache.link_into(ref.sha256, inputs / name):
                    data = self._download(grant, ref)
                    if not self.cache.link_into(ref.sha256, inputs / name):
                        (inputs / name).write_bytes(data)  # larger than the whole cache
                (scratch / "in" / name).symlink_to(inputs / name)
                continue
            cached = self.cache.get(ref.sha256)
            data = cached if cached is not None else self._download(grant, ref)
            (scratch / "in" / name).write_bytes(data)
        (scratch / "unit.json").write_text(json.dumps(grant.unit_spec, sort_keys=True))
        log_event(logger, "unit.prepared", lease_id=grant.lease_id, unit_id=grant.unit_id)
        return scratch

    def _download(self, grant: LeaseGrant, ref: InputRef) -> bytes:
        """An input block from the coordinator, checked against its SHA-256, then cached."""
        data = self.client.get_bytes(ref.path)
        if sha256_hex(data) != ref.sha256:
            raise NodeError(
                "input_corrupt",
                f"input {ref.name} of unit {grant.unit_id} does not match its SHA-256",
            )
        self.cache.put_verified(ref.sha256, data)
        return data

    def _inputs_dir(self, grant: LeaseGrant) -> Path | None:
        if not self._link_inputs:
            return None
        assert self.inputs_root is not None
        return self.inputs_root / grant.lease_id

    def _discard(self, grant: LeaseGrant) -> None:
        """Remove a unit's scratch and inputs directories (whatever of them exists)."""
        shutil.rmtree(self.scratch_root / grant.lease_id, ignore_errors=True)
        inputs = self._inputs_dir(grant)
        if inputs is not None:
            shutil.rmtree(inputs, ignore_errors=True)

    def _fetch_checkpoint(self, grant: LeaseGrant, ref: InputRef, scratch: Path) -> None:
        """Resume from the checkpoint the grant names; one that cannot be fetched or does
        not match its hash is discarded, and the unit starts from its first row."""
        try:
            data = self.client.get_bytes(ref.path)
        except NexaPodError as exc:
            log_event(logger, "checkpoint.discarded", lease_id=grant.lease_id, error=str(exc))
            return
        if sha256_hex(data) != ref.sha256:
            log_event(logger, "checkpoint.discarded", lease_id=grant.lease_id, error="sha256")
            return
        (scratch / "in" / CHECKPOINT_FILE).write_bytes(data)
        log_event(logger, "checkpoint.resumed", lease_id=grant.lease_id, unit_id=grant.unit_id)

    def _watch_checkpoints(self, grant: LeaseGrant, scratch: Path, done: threading.Event) -> None:
        """While a unit runs, upload its latest checkpoint (signed) every interval.

        The first waits an interval too (as BOINC's checkpoint period does): a unit shorter
        than the interval uploads none, since redoing it costs less than saving it.
        """
        path = scratch / "out" / CHECKPOINT_FILE
        sent_mtime_ns = 0
        last_sent = time.monotonic()
        while not done.wait(CHECKPOINT_POLL_S):
            if time.monotonic() - last_sent < self.config.checkpoint_interval_s:
                continue
            try:
                mtime_ns = path.stat().st_mtime_ns
                if mtime_ns == sent_mtime_ns:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if len(data) < CHECKPOINT_HEADER_BYTES:
                continue
            rows_done = int.from_bytes(data[8:12], "little")
            document = CheckpointDocument(
                node_id=self.node_id,
                job_id=grant.job_id,
                unit_id=grant.unit_id,
                lease_id=grant.lease_id,
                rows_done=max(rows_done, 1),
                checkpoint_sha256=sha256_hex(data),
                runner_tree_hash=self.runner_tree_hash,
            )
            upload = CheckpointUpload(
                document=document,
                signature=sign_document(self.key, PURPOSE_CHECKPOINT, document.model_dump()),
                checkpoint_b64=b64encode(data),
            )
            try:
                self.client.submit_checkpoint(grant.lease_id, upload)
            except NexaPodError as exc:
                log_event(logger, "checkpoint.unsent", lease_id=grant.lease_id, error=str(exc))
                continue
            sent_mtime_ns, last_sent = mtime_ns, time.monotonic()
            log_event(logger, "checkpoint.sent", lease_id=grant.lease_id, rows_done=rows_done)

    def _run_one(
        self,
        grant: LeaseGrant,
        prepared: Future[Path],
        received_at: float,
        io: ThreadPoolExecutor,
        uploads: list[Future[None]],
    ) -> None:
        try:
            scratch = prepared.result()
        except NexaPodError as exc:
            self._discard(grant)
            self._fail(grant, exc.code.split(".")[-1], str(exc), 0.0, io)
            return
        try:
            lease_s = (grant.deadline_at_ms - grant.granted_at_ms) / 1000
            wall_s_max = lease_s - (time.monotonic() - received_at) - DEADLINE_MARGIN_S
            if wall_s_max <= 0:
                self._fail(
                    grant, "deadline_passed", "the lease ran out before the unit began", 0.0, io
                )
                return
            limits = SandboxLimits(
                memory_bytes_max=self.config.memory_bytes_max,
                cpu_s_max=max(1, int(wall_s_max * self.config.unit_threads) + 1),
                wall_s_max=wall_s_max,
            )
            env = {"NEXAPOD_UNIT_THREADS": str(self.config.unit_threads)}
            log_event(logger, "unit.started", lease_id=grant.lease_id, unit_id=grant.unit_id)
            done = threading.Event()
            watcher = threading.Thread(
                target=self._watch_checkpoints, args=(grant, scratch, done), daemon=True
            )
            watcher.start()
            try:
                if self.unit_command is None:
                    module = unit_module(grant.workload)
                    result = self.executor.run_module(module, scratch, limits, env)
                else:
                    command = self.unit_command(grant, scratch)
                    result = self.executor.run(command, scratch, limits, env)
            finally:
                done.set()
                watcher.join()
            if result.outcome != ExecutionOutcome.OK:
                self._fail(grant, result.outcome.value, result.describe(), result.wall_s, io)
                return
            output = scratch / "out" / RESULT_FILE
            if not output.is_file():
                self._fail(
                    grant, "no_result", "the unit exited 0 without a result", result.wall_s, io
                )
                return
            data = output.read_bytes()
        finally:
            self._discard(grant)
        uploads.append(io.submit(self._upload, grant, data, result.wall_s))

    def _result_document(self, grant: LeaseGrant, data: bytes, wall_s: float) -> ResultDocument:
        """What the node signs: node, job, unit, lease, result hash and runner, bound."""
        return ResultDocument(
            node_id=self.node_id,
            job_id=grant.job_id,
            unit_id=grant.unit_id,
            lease_id=grant.lease_id,
            result_sha256=sha256_hex(data),
            runner_tree_hash=self.runner_tree_hash,
            compute_ms=int(wall_s * 1000),
        )

    def _upload(self, grant: LeaseGrant, data: bytes, wall_s: float) -> None:
        document = self._result_document(grant, data, wall_s)
        signature = sign_document(self.key, PURPOSE_RESULT, document.model_dump())
        try:
            response = self.client.upload_result(document, signature, data)
        except RemoteError as exc:
            self._event("refused", grant, wall_s, f"{exc.detail} [{exc.code}]")
            self.summary.units_refused += 1
            return
        except NexaPodError as exc:  # unreachable after the retries: the lease will expire
            self._event("failed", grant, wall_s, f"upload failed: {exc.detail} [{exc.code}]")
            self.summary.units_failed += 1
            return
        ack = response.acks[0]
        self.summary.units_done += 1
        self.summary.verified_flops += ack.verified_flops
        self._event("done", grant, wall_s, ack.status)

    def _fail(
        self, grant: LeaseGrant, code: str, detail: str, wall_s: float, io: ThreadPoolExecutor
    ) -> None:
        self.summary.units_failed += 1
        self._event("failed", grant, wall_s, f"{detail} [{code}]")
        io.submit(self._report_failure, grant, code, detail)

    def _report_failure(self, grant: LeaseGrant, code: str, detail: str) -> None:
        try:
            self.client.report_failure(grant.lease_id, code[:32], detail)
        except NexaPodError as exc:
            log_event(logger, "failure.unreported", lease_id=grant.lease_id, error=str(exc))

    def _event(self, kind: str, grant: LeaseGrant, wall_s: float, detail: str) -> None:
        event = UnitEvent(
            kind=kind,
            lease_id=grant.lease_id,
            job_id=grant.job_id,
            unit_id=grant.unit_id,
            work_flops=grant.work_flops,
            wall_s=wall_s,
            detail=detail,
        )
        self.summary.events.append(event)
        log_event(
            logger,
            f"unit.{kind}",
            lease_id=grant.lease_id,
            unit_id=grant.unit_id,
            detail=detail,
            wall_ms=int(wall_s * 1000),
        )
        if self.on_event is not None:
            self.on_event(event)
