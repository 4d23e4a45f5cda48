"""The atlas workload: exact top-k cosine neighbours of MS/MS spectra (docs/atlas.md).

A job embeds every spectrum (binned, sqrt-intensity, L2-normalised), cuts the spectra
into blocks, and runs one unit per unordered block pair; each unit finds, with one
float32 matmul, every spectrum's top-k among the other block; the coordinator merges
the units into one kNN graph.

    _params     AtlasParams and the limits
    _spectra    Spectrum, embed_spectra          _synthetic  seeded synthetic spectra
    _mgf        read_mgf, read_mgf_matchms       _plan       blocks, units, FLOP counts
    _kernel     compute_unit (the hot kernel)    _codec      block and result bytes
    _graph      merge, graph bytes, reference    _unitio     the sandbox scratch dir
    _capacity   the node's capacity benchmark    unit        the sandbox entry point

Names are loaded on first use (PEP 562): ``python -m nexapod.workloads.atlas.unit``
imports this package first, and numpy must not be loaded before the unit has limited
the BLAS threads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexapod.workloads.atlas._agree import SIM_TOLERANCE, results_agree
    from nexapod.workloads.atlas._capacity import measure_capacity_flops_per_s
    from nexapod.workloads.atlas._checkpoint import Checkpoint, decode_checkpoint
    from nexapod.workloads.atlas._codec import (
        decode_block,
        decode_unit_result,
        encode_block,
        encode_unit_result,
    )
    from nexapod.workloads.atlas._graph import (
        KnnGraph,
        brute_force_knn,
        decode_graph,
        encode_graph,
        merge_unit_results,
    )
    from nexapod.workloads.atlas._kernel import UnitResult, compute_unit
    from nexapod.workloads.atlas._mgf import read_mgf, read_mgf_matchms
    from nexapod.workloads.atlas._params import AtlasParams
    from nexapod.workloads.atlas._plan import (
        UnitShape,
        block_ranges,
        chunk_rows,
        job_flops,
        plan_units,
        unit_flops,
        unit_shape,
    )
    from nexapod.workloads.atlas._spectra import Spectrum, embed_spectra
    from nexapod.workloads.atlas._synthetic import synthetic_embeddings, synthetic_spectra
    from nexapod.workloads.atlas._unitio import (
        UnitInput,
        read_unit_input,
        read_unit_output,
        write_unit_input,
    )

__all__ = [
    "AtlasParams",
    "Checkpoint",
    "KnnGraph",
    "SIM_TOLERANCE",
    "Spectrum",
    "UnitInput",
    "UnitResult",
    "UnitShape",
    "block_ranges",
    "brute_force_knn",
    "chunk_rows",
    "compute_unit",
    "decode_block",
    "decode_checkpoint",
    "decode_graph",
    "decode_unit_result",
    "embed_spectra",
    "encode_block",
    "encode_graph",
    "encode_unit_result",
    "job_flops",
    "measure_capacity_flops_per_s",
    "merge_unit_results",
    "plan_units",
    "read_mgf",
    "read_mgf_matchms",
    "read_unit_input",
    "read_unit_output",
    "results_agree",
    "synthetic_embeddings",
    "synthetic_spectra",
    "unit_flops",
    "unit_shape",
    "write_unit_input",
]

_MODULE_OF = {
    "AtlasParams": "_params",
    "KnnGraph": "_graph",
    "Spectrum": "_spectra",
    "UnitInput": "_unitio",
    "Checkpoint": "_checkpoint",
    "SIM_TOLERANCE": "_agree",
    "decode_checkpoint": "_checkpoint",
    "UnitResult": "_kernel",
    "UnitShape": "_plan",
    "block_ranges": "_plan",
    "chunk_rows": "_plan",
    "brute_force_knn": "_graph",
    "compute_unit": "_kernel",
    "results_agree": "_agree",
    "decode_block": "_codec",
    "decode_graph": "_graph",
    "decode_unit_result": "_codec",
    "embed_spectra": "_spectra",
    "encode_block": "_codec",
    "encode_graph": "_graph",
    "encode_unit_result": "_codec",
    "job_flops": "_plan",
    "measure_capacity_flops_per_s": "_capacity",
    "merge_unit_results": "_graph",
    "plan_units": "_plan",
    "read_mgf": "_mgf",
    "read_mgf_matchms": "_mgf",
    "read_unit_input": "_unitio",
    "read_unit_output": "_unitio",
    "synthetic_embeddings": "_synthetic",
    "synthetic_spectra": "_synthetic",
    "unit_flops": "_plan",
    "unit_shape": "_plan",
    "write_unit_input": "_unitio",
}
assert sorted(_MODULE_OF) == sorted(__all__)


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
