"""``nexapod job``: submit jobs, follow them, and fetch their products."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nexapod.cli._common import CoordinatorOption, KeysDirOption, console, fail, reporting_errors
from nexapod.crypto import SigningKey, b64encode
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.home import default_keys_dir
from nexapod.protocol.v1 import JobView, MgfDataset, SubmitJobRequest, SyntheticDataset

__all__ = ["app", "job_table", "wait_for_job"]

app = typer.Typer(help="Submit jobs and fetch their results.", no_args_is_help=True)
MGF_BYTES_MAX = 256 << 20


def _user_signer(keys_dir: Path, user: str | None) -> Signer:
    users_dir = keys_dir / "users"
    if user is None:
        names = sorted(p.stem for p in users_dir.glob("*.key")) if users_dir.is_dir() else []
        if len(names) != 1:
            fail(
                f"name the submitting user with --user ({len(names)} user keys in {users_dir}); "
                "a user key is made by `nexapod node register --user NAME`"
            )
        user = names[0]
    path = users_dir / f"{user}.key"
    if not path.exists():
        fail(f"no key for user {user!r} in {users_dir}: register it with `nexapod node register`")
    return Signer(SigningKey.load(path), f"user:{user}")


@app.command("submit")
def submit(
    workload: Annotated[str, typer.Argument(help="The workload: atlas.")],
    coordinator: CoordinatorOption,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="An MGF file of MS/MS spectra.")
    ] = None,
    synthetic: Annotated[
        int | None, typer.Option("--synthetic", min=2, help="N seeded synthetic spectra.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic spectra.", min=0)] = 1,
    block_size: Annotated[int | None, typer.Option(help="Spectra per block.")] = None,
    k: Annotated[int | None, typer.Option("-k", help="Neighbours per spectrum.")] = None,
    user: Annotated[str | None, typer.Option(help="The submitting user.")] = None,
    capacity_min: Annotated[
        int | None,
        typer.Option(
            "--capacity-min",
            min=1,
            help="The hot capacity (FLOP/s) the job needs while it runs: below it, cold "
            "nodes are promoted to make it up.",
        ),
    ] = None,
    keys_dir: KeysDirOption = None,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
) -> None:
    """Submit an atlas job over an MGF file or a synthetic set."""
    if workload != "atlas":
        fail(f"unknown workload {workload!r}: the available workload is 'atlas'")
    if (dataset is None) == (synthetic is None):
        fail("give exactly one of --dataset PATH or --synthetic N")
    with reporting_errors():
        signer = _user_signer(keys_dir or default_keys_dir(), user)
        params: dict[str, int | str] = {}
        if block_size is not None:
            params["block_size"] = block_size
        if k is not None:
            params["k"] = k
        source: SyntheticDataset | MgfDataset
        if dataset is not None:
            if not dataset.is_file():
                fail(f"{dataset} is not a file")
            if dataset.stat().st_size > MGF_BYTES_MAX:
                fail(f"{dataset} is larger than {MGF_BYTES_MAX >> 20} MiB")
            source = MgfDataset(
                kind="mgf", name=dataset.name, mgf_b64=b64encode(dataset.read_bytes())
            )
        else:
            assert synthetic is not None
            source = SyntheticDataset(kind="synthetic", n_spectra=synthetic, seed=seed)
        request = SubmitJobRequest(
            workload="atlas",
            params=params,
            dataset=source,
            capacity_flops_per_s_min=None if capacity_min is None else str(capacity_min),
        )
        with CoordinatorClient(coordinator, signer) as client:
            job = client.submit_job(request)
            need = job.capacity_flops_per_s_min
            console.print(
                f"job {job.job_id}: {job.n_items} spectra, {job.units_total} units, "
                f"{job.work_flops_total / 1e9:.1f} GFLOP"
                + ("" if need is None else f", needs {int(need) / 1e12:,.3f} TFLOP/s of hot"),
                highlight=False,
            )
            if wait:
                job = wait_for_job(client, job.job_id)
                console.print(job_table(job))


def wait_for_job(
    client: CoordinatorClient, job_id: str, poll_s: float = 0.3, timeout_s: float | None = None
) -> JobView:
    """Show a progress bar until the job is done or failed."""
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[flops]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        job = client.get_job(job_id)
        task = progress.add_task(f"job {job_id[:8]}", total=job.units_total, flops="")
        while True:
            job = client.get_job(job_id)
            progress.update(
                task,
                completed=job.units_done,
                flops=f"{job.work_flops_done / 1e9:,.0f}/{job.work_flops_total / 1e9:,.0f} GFLOP",
            )
            if job.status in ("done", "failed"):
                return job
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                fail(f"job {job_id} did not finish in {timeout_s:g} s (status {job.status})")
            time.sleep(poll_s)


def job_table(job: JobView) -> Table:
    table = Table(title=f"job {job.job_id} ({job.status})")
    table.add_column("node")
    table.add_column("user")
    table.add_column("units", justify="right")
    table.add_column("verified GFLOP", justify="right")
    table.add_column("compute s", justify="right")
    for node in job.nodes:
        table.add_row(
            node.node_id[:12],
            node.username,
            str(node.units_done),
            f"{node.verified_flops / 1e9:,.1f}",
            f"{node.compute_ms / 1000:.1f}",
        )
    return table


@app.command("status")
def status(
    job_id: str,
    coordinator: CoordinatorOption,
    watch: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
) -> None:
    """A job's progress and each node's verified work."""
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        job = wait_for_job(client, job_id) if watch else client.get_job(job_id)
        console.print(
            f"job {job.job_id}: {job.status}, {job.units_done}/{job.units_total} units done, "
            f"{job.units_leased} leased, {job.units_failed} failed; "
            f"{job.work_flops_done / 1e9:,.1f} of {job.work_flops_total / 1e9:,.1f} GFLOP",
            highlight=False,
        )
        if job.nodes:
            console.print(job_table(job))


@app.command("list")
def list_jobs(coordinator: CoordinatorOption) -> None:
    """The newest jobs."""
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        for job in client.list_jobs().jobs:
            console.print(
                f"{job.job_id}  {job.status:8} {job.units_done}/{job.units_total} units  "
                f"{job.n_items} spectra",
                highlight=False,
            )


@app.command("result")
def result(
    job_id: str,
    coordinator: CoordinatorOption,
    out: Annotated[Path, typer.Option("--out", help="File to write the product to.")],
) -> None:
    """Download a finished job's product (the atlas kNN graph, .npz)."""
    from nexapod.crypto import sha256_hex

    with reporting_errors(), CoordinatorClient(coordinator) as client:
        job = client.get_job(job_id)
        data = client.get_bytes(f"/v1/jobs/{job_id}/product")
        if sha256_hex(data) != job.product_sha256:
            fail("the downloaded product does not match the job's SHA-256; try again")
        out.write_bytes(data)
        console.print(f"wrote {len(data)} bytes to {out} (sha256 {job.product_sha256})")


RECORD_PAGES_MAX = 100_000  # 200 records a page: far beyond any job's results


@app.command("records")
def records(
    job_id: str,
    coordinator: CoordinatorOption,
    out: Annotated[
        Path | None, typer.Option(help="Also write every record as JSON lines here.")
    ] = None,
) -> None:
    """Check a job's signed compute records: every result's signature, with its node's key.

    Exits 1 naming the first record whose signature does not verify or whose document
    does not belong to this job.
    """
    from nexapod.crypto import verify_document
    from nexapod.protocol.v1 import PURPOSE_RESULT, ComputeRecordPage

    checked = valid = valid_flops = 0
    cursor: str | None = None
    lines: list[str] = []
    with reporting_errors(), CoordinatorClient(coordinator) as client:
        for _ in range(RECORD_PAGES_MAX):
            query = f"?limit=200&cursor={cursor}" if cursor else "?limit=200"
            page = ComputeRecordPage.model_validate_json(
                client.get_bytes(f"/v1/jobs/{job_id}/records{query}")
            )
            for record in page.records:
                document = record.document
                signed = verify_document(
                    record.node_public_key, record.signature, PURPOSE_RESULT, document.model_dump()
                )
                if not signed or document.job_id != job_id or document.node_id != record.node_id:
                    fail(
                        f"record of unit {record.unit_id} by node {record.node_id}: the "
                        "signature does not verify with the node's key, or the document "
                        "belongs elsewhere",
                        "job.record_invalid",
                    )
                checked += 1
                if record.status == "valid":
                    valid += 1
                    valid_flops += record.work_flops
                lines.append(record.model_dump_json())
            cursor = page.next_cursor
            if cursor is None:
                break
    if out is not None:
        out.write_text("".join(f"{line}\n" for line in lines))
    console.print(
        f"job {job_id}: {checked} signed records verified, {valid} valid "
        f"({valid_flops:,} FLOPs credited)",
        highlight=False,
    )
