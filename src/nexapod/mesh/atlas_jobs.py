"""The atlas workload seen from the coordinator: plan a job, check results, merge them.

This is the only coordinator module that knows the atlas's shapes; the service calls
it through three functions (plan, check, merge).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nexapod.crypto import b64decode, sha256_hex
from nexapod.errors import WorkloadError
from nexapod.protocol.v1 import SubmitJobRequest, SyntheticDataset
from nexapod.workloads import atlas

__all__ = [
    "JobPlan",
    "PlannedBlock",
    "PlannedUnit",
    "check_result",
    "merge_results",
    "neighbours_of",
    "plan_job",
    "results_agree",
]

MGF_B64_CHARS_MAX = 1 << 30


@dataclass(frozen=True)
class PlannedBlock:
    block_index: int
    n_rows: int
    data: bytes
    sha256: str


@dataclass(frozen=True)
class PlannedUnit:
    unit_index: int
    spec: dict[str, Any]
    input_blocks: tuple[int, ...]
    work_flops: int


@dataclass(frozen=True)
class JobPlan:
    params: dict[str, int | str]
    dataset: dict[str, Any]
    n_items: int
    blocks: list[PlannedBlock]
    units: list[PlannedUnit]

    @property
    def work_flops_total(self) -> int:
        return sum(unit.work_flops for unit in self.units)


def plan_job(request: SubmitJobRequest, spectra_max: int, chunk_flops: int = 0) -> JobPlan:
    """Embed the dataset, cut it into blocks and list one unit per block pair; units of
    more than ``chunk_flops`` run in chunks of about that much work, with a checkpoint
    after each (``atlas.chunk_rows``; 0: every unit runs whole)."""
    params = atlas.AtlasParams.from_dict({**atlas.AtlasParams().to_dict(), **request.params})
    dataset = request.dataset
    if isinstance(dataset, SyntheticDataset):
        if dataset.n_spectra > spectra_max:
            raise _too_many(dataset.n_spectra, spectra_max)
        embeddings = atlas.synthetic_embeddings(dataset.n_spectra, dataset.seed, params)
        dataset_record: dict[str, Any] = dataset.model_dump()
    else:
        try:
            mgf_bytes = b64decode(dataset.mgf_b64, length_max=MGF_B64_CHARS_MAX)
        except ValueError as exc:
            raise WorkloadError("dataset_invalid", "mgf_b64 is not URL-safe base64") from exc
        spectra = atlas.read_mgf(mgf_bytes, spectra_max)
        embeddings = atlas.embed_spectra(spectra, params)
        dataset_record = {
            "kind": "mgf",
            "name": dataset.name,
            "sha256": sha256_hex(mgf_bytes),
            "identifiers": [spectrum.identifier for spectrum in spectra][:100_000],
        }
    n_items = int(embeddings.shape[0])
    if n_items < 2:
        raise WorkloadError("dataset_invalid", "an atlas needs at least 2 spectra")
    blocks = []
    for index, (start, stop) in enumerate(atlas.block_ranges(n_items, params.block_size)):
        data = atlas.encode_block(embeddings[start:stop])
        blocks.append(PlannedBlock(index, stop - start, data, sha256_hex(data)))
    units = []
    params_dict = params.to_dict()
    for index, shape in enumerate(atlas.plan_units(n_items, params.block_size)):
        spec = {
            "workload": "atlas",
            "version": 1,
            "shape": shape.to_dict(),
            "params": params_dict,
            "n_spectra": n_items,
        }
        rows = atlas.chunk_rows(shape, params.embedding_dim, chunk_flops)
        if rows:
            spec["chunk_rows"] = rows  # long enough to checkpoint (docs/validation.md)
        inputs = (shape.block_row,) if shape.is_diagonal else (shape.block_row, shape.block_col)
        flops = atlas.unit_flops(shape.n_rows, shape.n_cols, params.embedding_dim)
        units.append(PlannedUnit(index, spec, inputs, flops))
    return JobPlan(params_dict, dataset_record, n_items, blocks, units)


def _too_many(count: int, count_max: int) -> WorkloadError:
    return WorkloadError(
        "dataset_too_large", f"{count} spectra; this coordinator accepts at most {count_max}"
    )


def check_result(spec_json: str, data: bytes) -> None:
    """Refuse a result whose bytes do not decode to the unit's exact shape."""
    _decode(spec_json, data)


def _decode(spec_json: str, data: bytes) -> atlas.UnitResult:
    spec = json.loads(spec_json)
    shape = atlas.UnitShape.from_dict(spec["shape"])
    return atlas.decode_unit_result(
        data, shape, _job_k(json.dumps(spec["params"], sort_keys=True)), spec["n_spectra"]
    )


def results_agree(spec_json: str, data_a: bytes, data_b: bytes) -> bool:
    """Whether two checked results of one unit agree within the atlas's tolerance
    (identical bytes, the usual case, without decoding)."""
    if data_a == data_b:
        return True
    return atlas.results_agree(_decode(spec_json, data_a), _decode(spec_json, data_b))


@functools.lru_cache(maxsize=1024)
def _job_k(params_json: str) -> int:
    """k of a job's params (every unit of a job shares them: parse them once)."""
    return atlas.AtlasParams.from_dict(json.loads(params_json)).k


def merge_results(
    n_items: int, params: dict[str, int | str], results: Iterable[tuple[str, bytes]]
) -> bytes:
    """Merge every unit's result (spec JSON, bytes) into the global kNN graph's bytes."""
    k = atlas.AtlasParams.from_dict(params).k

    def decoded() -> Iterable[tuple[atlas.UnitShape, atlas.UnitResult]]:
        for spec_json, data in results:
            spec = json.loads(spec_json)
            shape = atlas.UnitShape.from_dict(spec["shape"])
            yield shape, atlas.decode_unit_result(data, shape, k, n_items)

    graph = atlas.merge_unit_results(n_items, k, decoded())
    return atlas.encode_graph(graph)


def neighbours_of(product: bytes, spectrum_index: int) -> list[tuple[int, float]]:
    """The neighbours of one spectrum in a merged graph, best first (padding dropped)."""
    graph = atlas.decode_graph(product)
    ids = graph.ids[spectrum_index]
    sims = graph.sims[spectrum_index]
    return [(int(i), float(s)) for i, s in zip(ids, sims, strict=True) if i >= 0]
