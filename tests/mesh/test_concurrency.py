"""Nodes racing on one job over one database: nothing lost, nothing counted twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from nexapod.coordinator.context import Context
from nexapod.mesh import service
from nexapod.protocol.v1 import LeaseGrant, ResultItem
from nexapod.workloads import atlas
from tests.factories import Actor, make_node, make_user, result_item, signed
from tests.mesh.test_mesh_api import JOB, N_SPECTRA

NODES = 4
ROUNDS = 3


def _compute(grant: LeaseGrant, embeddings: object) -> bytes:
    assert hasattr(embeddings, "shape")
    spec = grant.unit_spec
    shape = atlas.UnitShape.from_dict(spec["shape"])
    row = embeddings[shape.row_start : shape.row_stop]  # type: ignore[index]
    col = embeddings[shape.col_start : shape.col_stop]  # type: ignore[index]
    return atlas.encode_unit_result(atlas.compute_unit(row, col, shape, spec["params"]["k"]), shape)


def test_concurrent_results_and_expiry_lose_no_update(api: TestClient) -> None:
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    alice = make_user(api, "alice")
    nodes = [make_node(api, alice, fingerprint=f"{i:064x}") for i in range(NODES)]
    job = signed(api, alice, "POST", "/v1/jobs", JOB).json()
    params = atlas.AtlasParams(**JOB["params"])
    embeddings = atlas.synthetic_embeddings(N_SPECTRA, 3, params)
    start = threading.Barrier(NODES + 1)

    def node_loop(node: Actor) -> int:
        start.wait()
        accepted = 0
        for _ in range(ROUNDS):
            with ctx.uow() as uow:
                grants = service.lease_units(uow, node.name, 1, ctx.clock_ms(), ctx.limits).leases
            for grant in grants:
                item = ResultItem.model_validate(
                    result_item(node, grant, _compute(grant, embeddings))
                )
                uploads = service.decode_result_items([item], ctx.limits)
                with ctx.read_uow() as uow:
                    checked = service.check_results(uow, node.name, uploads, ctx.limits)
                # submit twice, concurrently with everyone else: counted once
                for _ in range(2):
                    with ctx.uow() as uow:
                        acks, _ = service.record_results(uow, node.name, checked, ctx.clock_ms())
                    accepted += sum(ack.status == "accepted" for ack in acks)
        return accepted

    def expirer() -> None:
        start.wait()
        for _ in range(20):
            with ctx.uow() as uow:
                service.expire_overdue_leases(uow, ctx.clock_ms(), ctx.limits.unit_attempts_max)
                uow.commit()

    with ThreadPoolExecutor(NODES + 1) as pool:
        expiring = pool.submit(expirer)
        accepted = sum(pool.map(node_loop, nodes))
        expiring.result()
    view = api.get(f"/v1/jobs/{job['job_id']}").json()
    assert accepted == view["units_done"] == 10
    assert view["status"] == "merging"
    assert view["work_flops_done"] == view["work_flops_total"]
    assert sum(n["units_done"] for n in view["nodes"]) == 10
