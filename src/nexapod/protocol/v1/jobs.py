"""Jobs: submission, progress and the atlas product."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nexapod.protocol.v1._base import WireModel

__all__ = [
    "JOB_STATUSES",
    "JobList",
    "JobView",
    "MgfDataset",
    "NeighbourView",
    "NodeContribution",
    "SpectrumNeighbours",
    "SubmitJobRequest",
    "SyntheticDataset",
    "UnitFailure",
]

JOB_STATUSES = ("running", "merging", "done", "failed")
JobStatus = Literal["running", "merging", "done", "failed"]
# A capacity in FLOP/s passes 2^53 (a network of capped nodes): decimal text, canonical.
CapacityText = Annotated[
    str, Field(pattern=r"^(0|[1-9][0-9]{0,29})$", examples=["2000000000000000"])
]


class SyntheticDataset(WireModel):
    """A seeded synthetic set of spectra, regenerated identically anywhere."""

    kind: Literal["synthetic"]
    n_spectra: Annotated[int, Field(ge=2, le=50_000_000)]
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)]


class MgfDataset(WireModel):
    """Real MS/MS spectra in MGF, sent inline as base64."""

    kind: Literal["mgf"]
    name: Annotated[str, Field(min_length=1, max_length=256)]
    mgf_b64: Annotated[str, Field(min_length=1)]


class SubmitJobRequest(WireModel):
    """A job to run. ``capacity_flops_per_s_min``, when given, is the hot capacity the job
    needs while it runs: below it, cold nodes are promoted to make it up (docs/pools.md)."""

    workload: Literal["atlas"]
    params: dict[str, int | str] = Field(default_factory=dict, max_length=32)
    dataset: Annotated[SyntheticDataset | MgfDataset, Field(discriminator="kind")]
    capacity_flops_per_s_min: CapacityText | None = None


class NodeContribution(WireModel):
    node_id: str
    username: str
    units_done: int
    verified_flops: int
    compute_ms: int


class UnitFailure(WireModel):
    """A unit that failed on a node, as the node reported it."""

    unit_id: int
    node_id: str
    code: str
    detail: str
    at_ms: int


class JobView(WireModel):
    job_id: str
    workload: str
    status: JobStatus
    n_items: int
    submitted_by: str
    params: dict[str, int | str]
    units_total: int
    units_done: int
    units_leased: int
    units_failed: int
    work_flops_total: int
    work_flops_done: int
    created_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None
    product_sha256: str | None
    capacity_flops_per_s_min: str | None  # the hot capacity it needs while it runs, if stated
    nodes: list[NodeContribution]
    recent_failures: list[UnitFailure]


class JobList(WireModel):
    jobs: list[JobView]
    next_cursor: str | None


class NeighbourView(WireModel):
    spectrum_index: int
    similarity: str  # decimal text of a float32, so the view can be signed or compared exactly


class SpectrumNeighbours(WireModel):
    job_id: str
    spectrum_index: int
    neighbours: list[NeighbourView]


class UnitLease(WireModel):
    """One lease of a unit, and what became of it."""

    lease_id: str
    node_id: str
    username: str | None
    status: str  # active | completed | expired | failed | revoked
    spot_check: bool
    resumed_from: str | None
    granted_at_ms: int
    ended_at_ms: int | None
    failure_code: str | None
    failure_detail: str | None
    result_status: str | None  # valid | pending | invalid | forfeited | void, if any


class UnitView(WireModel):
    """A unit's history: every lease, its result's fate, and the unit's state now."""

    job_id: str
    unit_id: int
    unit_index: int
    status: str
    work_flops: int
    quorum: int
    canonical_lease_id: str | None
    leases: list[UnitLease]
