"""The global kNN graph: merging unit results, its bytes, and a brute-force reference.

The merge streams over unit results and keeps only the current top-k of every spectrum
(O(n_spectra * k) memory): each unit offers, for its spectra, k candidates from the other
block, and a spectrum's candidates from different units are disjoint because every
unordered block pair is one unit. Order within a row is the kernel's: similarity
descending, ties by smaller global id.

The graph's bytes are an .npz (a ZIP of ``ids.npy`` and ``sims.npy``) written with stored
entries and a fixed timestamp, so the same graph always gives the same bytes, and
``numpy.load`` opens it.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._codec import parse_npy
from nexapod.workloads.atlas._kernel import UnitResult, desc_key, from_desc_key
from nexapod.workloads.atlas._lists import check_neighbour_lists
from nexapod.workloads.atlas._params import K_MAX, K_MIN, SPECTRA_MAX, require_int
from nexapod.workloads.atlas._plan import UNITS_MAX, UnitShape

__all__ = [
    "GRAPH_BYTES_MAX",
    "KnnGraph",
    "brute_force_knn",
    "decode_graph",
    "encode_graph",
    "merge_unit_results",
]

GRAPH_BYTES_MAX = 16 << 30
_ENTRIES = ("ids.npy", "sims.npy")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ID_MASK = np.uint64(0xFFFFFFFF)
_PADDING_ID = np.uint64(0xFFFFFFFF)  # -1 as uint32: sorts after every real id
_BRUTE_FORCE_CHUNK_ROWS = 256

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """ids int64 [n_spectra, k] (-1 pads) and float32 sims (-inf pads), best first."""

    ids: Int64Array
    sims: Float32Array

    def __post_init__(self) -> None:
        assert self.ids.dtype == np.int64
        assert self.sims.dtype == np.float32
        assert self.ids.ndim == 2
        assert self.ids.shape == self.sims.shape

    @property
    def n_spectra(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])


def merge_unit_results(
    n_spectra: int, k: int, items: Iterable[tuple[UnitShape, UnitResult]]
) -> KnnGraph:
    """The global top-k of every spectrum from all units' results (streamed, each once)."""
    require_int(n_spectra, "n_spectra", 1, SPECTRA_MAX, "params_invalid")
    require_int(k, "k", K_MIN, K_MAX, "params_invalid")
    ids = np.full((n_spectra, k), -1, dtype=np.int64)
    sims = np.full((n_spectra, k), -np.inf, dtype=np.float32)
    seen: set[tuple[int, int]] = set()
    for shape, result in items:
        _check_item(shape, result, n_spectra, k)
        pair = (shape.row_start, shape.col_start)
        if len(seen) >= UNITS_MAX:
            raise WorkloadError("merge_invalid", f"more than {UNITS_MAX} units")
        if pair in seen:
            raise WorkloadError("merge_invalid", f"unit {shape.block_row, shape.block_col} twice")
        seen.add(pair)
        _merge_rows(ids, sims, shape.row_start, result.row_ids, result.row_sims)
        if not shape.is_diagonal:
            _merge_rows(ids, sims, shape.col_start, result.col_ids, result.col_sims)
    graph = KnnGraph(ids, sims)
    _check_graph(graph, "merged graph", "merge_invalid")
    return graph


def _check_item(shape: UnitShape, result: UnitResult, n_spectra: int, k: int) -> None:
    if shape.col_stop > n_spectra:
        raise WorkloadError("merge_invalid", f"unit reaches spectrum {shape.col_stop - 1}")
    n_cols_listed = 0 if shape.is_diagonal else shape.n_cols
    if result.row_ids.shape != (shape.n_rows, k) or result.col_ids.shape != (n_cols_listed, k):
        raise WorkloadError("merge_invalid", "a unit result does not match its shape or k")


def _merge_rows(
    ids: Int64Array, sims: Float32Array, start: int, new_ids: Int64Array, new_sims: Float32Array
) -> None:
    """Replace rows start.. of (ids, sims) by the top-k of their union with the new lists."""
    stop = start + new_ids.shape[0]
    k = ids.shape[1]
    both_ids = np.concatenate((ids[start:stop], new_ids), axis=1)
    both_sims = np.concatenate((sims[start:stop], new_sims), axis=1) + np.float32(0.0)
    keys = desc_key(both_sims).astype(np.uint64) << np.uint64(32)
    keys |= both_ids.astype(np.uint64) & _ID_MASK
    keys.sort(axis=1)
    best = keys[:, :k]
    low = best & _ID_MASK
    ids[start:stop] = np.where(low == _PADDING_ID, -1, low.astype(np.int64))
    sims[start:stop] = from_desc_key((best >> np.uint64(32)).astype(np.uint32))


def _check_graph(graph: KnnGraph, what: str, code: str) -> None:
    check_neighbour_lists(
        graph.ids,
        graph.sims,
        owner_start=0,
        id_start=0,
        id_stop=graph.n_spectra,
        valid_count=None,
        what=what,
        code=code,
    )


def encode_graph(graph: KnnGraph) -> bytes:
    """Deterministic .npz bytes (stored entries, fixed timestamps, no pickle)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        arrays: tuple[npt.NDArray[np.generic], ...] = (graph.ids, graph.sims)
        for name, array in zip(_ENTRIES, arrays, strict=True):
            entry = io.BytesIO()
            np.lib.format.write_array(entry, array, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def decode_graph(data: bytes, bytes_max: int = GRAPH_BYTES_MAX) -> KnnGraph:
    """Parse and check graph bytes; any defect raises ``workload.graph_malformed``."""
    if len(data) > bytes_max:
        raise WorkloadError("graph_malformed", f"{len(data)} bytes, more than {bytes_max}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if tuple(info.filename for info in infos) != _ENTRIES:
                raise WorkloadError("graph_malformed", f"entries must be exactly {_ENTRIES}")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(data):
                    raise WorkloadError("graph_malformed", f"{info.filename} is not stored")
            ids_bytes, sims_bytes = archive.read(_ENTRIES[0]), archive.read(_ENTRIES[1])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise WorkloadError("graph_malformed", f"not an .npz archive: {exc}") from exc
    ids = parse_npy(ids_bytes, "<i8", "graph ids", "graph_malformed")
    sims = parse_npy(sims_bytes, "<f4", "graph sims", "graph_malformed")
    if ids.ndim != 2 or ids.shape != sims.shape or ids.shape[0] < 1:
        raise WorkloadError("graph_malformed", f"ids {ids.shape} and sims {sims.shape} differ")
    if not K_MIN <= ids.shape[1] <= K_MAX:
        raise WorkloadError("graph_malformed", f"k={ids.shape[1]} outside [{K_MIN}, {K_MAX}]")
    graph = KnnGraph(ids.astype(np.int64), sims.astype(np.float32))
    _check_graph(graph, "graph", "graph_malformed")
    return graph


def brute_force_knn(embeddings: Float32Array, k: int) -> KnnGraph:
    """Reference top-k by float64 dot products and full sorts (slow; for tests)."""
    require_int(k, "k", K_MIN, K_MAX, "params_invalid")
    n_spectra = embeddings.shape[0]
    assert embeddings.ndim == 2
    assert n_spectra >= 1
    vectors = embeddings.astype(np.float64)
    k_eff = min(k, n_spectra - 1)
    ids = np.full((n_spectra, k), -1, dtype=np.int64)
    sims = np.full((n_spectra, k), -np.inf, dtype=np.float32)
    every_id = np.arange(n_spectra, dtype=np.int64)
    for start in range(0, n_spectra, _BRUTE_FORCE_CHUNK_ROWS):
        stop = min(start + _BRUTE_FORCE_CHUNK_ROWS, n_spectra)
        products = vectors[start:stop] @ vectors.T
        rows = np.arange(stop - start)
        products[rows, start + rows] = -np.inf
        tie_ids = np.broadcast_to(every_id, products.shape)
        order = np.lexsort((tie_ids, -products), axis=-1)[:, :k_eff]
        ids[start:stop, :k_eff] = order
        sims[start:stop, :k_eff] = np.take_along_axis(products, order, axis=1)
    return KnnGraph(ids, sims)
