"""``nexapod node``: create, register and run a node agent."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nexapod.cli._common import (
    CoordinatorOption,
    KeysDirOption,
    NodeHomeOption,
    console,
    err_console,
    fail,
    reporting_errors,
)
from nexapod.crypto import SigningKey, load_public_key, package_root, package_tree_hash
from nexapod.node.home import (
    NodeHome,
    default_keys_dir,
    default_node_home,
    load_or_create_user_key,
    node_registration,
    user_registration,
)

if TYPE_CHECKING:
    from nexapod.node.client import CoordinatorClient
    from nexapod.node.release_check import RunnerRelease

__all__ = ["app", "init_node", "register_node"]

app = typer.Typer(help="Create, register and run a node agent.", no_args_is_help=True)
MIB = 1 << 20


def _home(home: Path | None) -> NodeHome:
    return NodeHome(home if home is not None else default_node_home())


@app.command("init")
def init(
    home: NodeHomeOption = None,
    force: Annotated[bool, typer.Option(help="Replace an existing node key.")] = False,
    fingerprint_salt: Annotated[
        str, typer.Option(help="Simulate a distinct machine (demos and tests only).")
    ] = "",
) -> None:
    """Create this node's Ed25519 key and record its hardware profile."""
    with reporting_errors():
        state = init_node(_home(home), force=force, fingerprint_salt=fingerprint_salt)
        profile = state["profile"]
        console.print(
            f"node key created in {_home(home).root}\n"
            f"  cpu: {profile['cpu_model']} ({profile['cpu_cores']} cores), "
            f"memory: {profile['memory_bytes'] // MIB} MiB, gpus: {len(profile['gpus'])}\n"
            f"  fingerprint: {state['fingerprint'][:16]}…  "
            f"runner: {state['runner_tree_hash'][:16]}…",
            highlight=False,
        )


def init_node(home: NodeHome, *, force: bool = False, fingerprint_salt: str = "") -> dict[str, Any]:
    return home.init(force=force, fingerprint_salt=fingerprint_salt)


@app.command("register")
def register(
    coordinator: CoordinatorOption,
    user: Annotated[str, typer.Option("--user", help="The contributor who owns this node.")],
    home: NodeHomeOption = None,
    keys_dir: KeysDirOption = None,
    benchmark_s: Annotated[
        float, typer.Option(help="Seconds of the capacity benchmark.", min=0.1, max=60)
    ] = 1.0,
) -> None:
    """Register the user (on first use) and this node, after measuring its capacity."""
    with reporting_errors():
        console.print(f"measuring capacity with the atlas kernel ({benchmark_s:g} s)…")
        node_id, capacity = register_node(
            _home(home), coordinator, user, keys_dir or default_keys_dir(), benchmark_s
        )
        console.print(
            f"node {node_id} registered for {user} at {coordinator}: {capacity / 1e9:.1f} GFLOP/s",
            highlight=False,
        )


def register_node(
    home: NodeHome,
    coordinator: str,
    username: str,
    keys_dir: Path,
    benchmark_s: float,
    capacity_flops_per_s: int | None = None,
) -> tuple[str, int]:
    """Measure capacity, register the user if new, register the node; returns (id, FLOP/s).

    The runner tree hash is taken again: registering after installing a new release
    reports the new runner. ``capacity_flops_per_s`` skips the benchmark (tests that
    play a node lying about its speed).
    """
    from threadpoolctl import threadpool_limits

    from nexapod.node.client import CoordinatorClient
    from nexapod.workloads.atlas import measure_capacity_flops_per_s

    state = home.state()
    state["runner_tree_hash"] = package_tree_hash()
    node_key = home.key()
    user_key, _ = load_or_create_user_key(keys_dir, username)
    # Units run with one BLAS thread each (the agent's default); measure the same way.
    capacity = capacity_flops_per_s
    if capacity is None:
        with threadpool_limits(limits=1):
            capacity = measure_capacity_flops_per_s(duration_s=benchmark_s)
    with CoordinatorClient(coordinator) as client:
        client.register_user(user_registration(username, user_key))
        view = client.register_node(
            node_registration(state, node_key, username, user_key, capacity)
        )
    state.update(
        {
            "coordinator": coordinator,
            "node_id": view.node_id,
            "username": username,
            "capacity_flops_per_s": capacity,
        }
    )
    home.save_state(state)
    return view.node_id, capacity


@app.command("run")
def run(
    coordinator: CoordinatorOption,
    home: NodeHomeOption = None,
    executor: Annotated[
        str, typer.Option(help="Sandbox: bwrap (default), docker, or process (no isolation).")
    ] = "bwrap",
    max_units: Annotated[
        int | None, typer.Option("--max-units", min=1, help="Stop after this many units.")
    ] = None,
    idle_exit_s: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without work.", min=0)
    ] = None,
    memory_mb: Annotated[int, typer.Option(help="Memory limit of one unit, MiB.", min=64)] = 4096,
    checkpoint_interval_s: Annotated[
        float,
        typer.Option(
            help="Upload a long unit's checkpoint at most this often (seconds).", min=0, max=86400
        ),
    ] = 30.0,
    prefetch: Annotated[int, typer.Option(help="Units leased ahead.", min=0, max=16)] = 1,
    docker_image: Annotated[str | None, typer.Option(help="Image for --executor docker.")] = None,
    fresh_sandbox: Annotated[
        bool,
        typer.Option(
            "--fresh-sandbox",
            help="Start a new bwrap sandbox for every unit instead of keeping one warm "
            "(slower; see docs/sandbox.md).",
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="Level of the JSON event log on stderr (INFO, WARNING…).")
    ] = "WARNING",
    release_manifest: Annotated[
        Path | None,
        typer.Option(
            "--release-manifest",
            help="The signed release manifest of this runner (default: the coordinator's).",
            dir_okay=False,
        ),
    ] = None,
    release_key: Annotated[
        list[str] | None,
        typer.Option(
            "--release-key",
            help="A release public key to trust (repeatable; default: the keys the "
            "coordinator lists, which trusts the coordinator).",
        ),
    ] = None,
) -> None:
    """Check the runner against its signed release, then lease, run and upload units."""
    from nexapod.logs import configure_logging
    from nexapod.node.agent import AgentConfig, NodeAgent, UnitEvent
    from nexapod.node.cache import BlockCache
    from nexapod.node.client import CoordinatorClient, Signer
    from nexapod.node.executors import make_executor

    with reporting_errors():
        configure_logging(log_level)
        node_home = _home(home)
        registered_at, node_id = node_home.registration()
        node_home.inputs_dir.mkdir(parents=True, exist_ok=True)
        sandbox = make_executor(
            executor,
            docker_image=docker_image,
            sandbox_reuse=not fresh_sandbox,
            readable_dirs=[node_home.inputs_dir],
        )
        warning = getattr(sandbox, "warning", None)
        if warning:
            err_console.print(f"[bold yellow]warning:[/bold yellow] {warning}")
        if registered_at.rstrip("/") != coordinator.rstrip("/"):
            err_console.print(
                f"[yellow]note:[/yellow] this node registered with {registered_at}, "
                f"now running for {coordinator}"
            )
        key: SigningKey = node_home.key()
        state = node_home.state()

        def show(event: UnitEvent) -> None:
            style = {"done": "green", "failed": "red", "refused": "red"}[event.kind]
            console.print(
                f"[{style}]{event.kind:>7}[/{style}] unit {event.unit_id} of job "
                f"{event.job_id[:8]}: {event.work_flops / 1e9:.2f} GFLOP in {event.wall_s:.2f} s"
                f" ({event.detail})",
                highlight=False,
            )

        with CoordinatorClient(coordinator, Signer(key, f"node:{node_id}")) as client:
            release = _check_release(
                client, state["runner_tree_hash"], release_manifest, release_key or []
            )
            agent = NodeAgent(
                node_id=node_id,
                key=key,
                runner_tree_hash=state["runner_tree_hash"],
                client=client,
                executor=sandbox,
                scratch_root=node_home.scratch_dir,
                cache=BlockCache(node_home.block_cache_dir, 2048 * MIB),
                inputs_root=node_home.inputs_dir,
                config=AgentConfig(
                    units_max=max_units,
                    prefetch_units=prefetch,
                    idle_exit_s=idle_exit_s,
                    memory_bytes_max=memory_mb * MIB,
                    checkpoint_interval_s=checkpoint_interval_s,
                ),
                on_event=show,
                release=release,
            )

            def on_signal(_signum: int, _frame: FrameType | None) -> None:
                agent.stop()

            signal.signal(signal.SIGTERM, on_signal)
            console.print(
                f"node {node_id} running for {coordinator} with the {sandbox.name} sandbox"
            )
            started = time.monotonic()
            try:
                summary = agent.run()
            finally:
                sandbox.close()
        console.print(
            f"stopped after {time.monotonic() - started:.1f} s: {summary.units_done} units done, "
            f"{summary.units_failed} failed, {summary.units_refused} refused, "
            f"{summary.verified_flops / 1e9:.2f} GFLOP verified; "
            f"{summary.challenges.answered} liveness challenges answered "
            f"({summary.challenges.passed} passed)",
            highlight=False,
        )


def _check_release(
    client: CoordinatorClient, runner_tree_hash: str, manifest: Path | None, keys: list[str]
) -> RunnerRelease | None:
    """Verify this runner against its signed release before anything runs (docs/releases.md)."""
    from nexapod.node.release_check import obtain_release

    for trusted in keys:
        try:
            load_public_key(trusted)
        except ValueError as exc:
            fail(f"--release-key {trusted!r} is not a base64 Ed25519 public key: {exc}")
    setup = obtain_release(
        client,
        root=package_root(),
        runner_tree_hash=runner_tree_hash,
        manifest_path=manifest,
        release_keys=keys,
    )
    if setup.release is None:
        err_console.print(f"[bold yellow]warning:[/bold yellow] {setup.warning}")
        return None
    signed = setup.release.manifest
    console.print(
        f"runner is release {signed.version} (tree {signed.tree_hash[:16]}…, "
        f"{len(signed.files)} files), checked against its signed manifest",
        highlight=False,
    )
    return setup.release


def _set_preference(home: Path | None, coordinator: str, **preference: bool) -> None:
    from nexapod.node.client import CoordinatorClient, Signer
    from nexapod.protocol.v1 import PoolPreferences

    node_home = _home(home)
    state = node_home.state()
    node_id = state.get("node_id")
    if not isinstance(node_id, str):
        fail("this node is not registered yet: run `nexapod node register` first")
    signer = Signer(node_home.key(), f"node:{node_id}")
    with CoordinatorClient(coordinator, signer) as client:
        view = client.set_pool_preferences(node_id, PoolPreferences(**preference))
    warm_text = "yes" if view.warm_opt_in else "no"
    cold_text = "yes" if view.cold_opt_in else "no"
    console.print(
        f"node {node_id}: pool {view.pool} ({view.reason}); warm opt-in {warm_text}, "
        f"cold volunteer {cold_text}",
        highlight=False,
    )


OptInOption = Annotated[
    bool, typer.Option("--opt-in/--opt-out", help="Join (or leave) the pool.", show_default=False)
]


@app.command("warm")
def warm(coordinator: CoordinatorOption, opt_in: OptInOption, home: NodeHomeOption = None) -> None:
    """Stay in the warm pool after jobs, to be leased on the marketplace (or stop)."""
    with reporting_errors():
        _set_preference(home, coordinator, warm_opt_in=opt_in)


@app.command("cold")
def cold(coordinator: CoordinatorOption, opt_in: OptInOption, home: NodeHomeOption = None) -> None:
    """Volunteer for the cold standby pool (weekly stipend; promoted when hot nodes fail)."""
    with reporting_errors():
        _set_preference(home, coordinator, cold_opt_in=opt_in)
