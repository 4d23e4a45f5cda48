"""The merged graph against brute force and faiss, and the graph's bytes."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import (
    AtlasParams,
    KnnGraph,
    UnitResult,
    UnitShape,
    brute_force_knn,
    compute_unit,
    decode_graph,
    decode_unit_result,
    encode_graph,
    encode_unit_result,
    merge_unit_results,
    plan_units,
    synthetic_embeddings,
)

Float32Array = npt.NDArray[np.float32]
CompareKnn = Callable[..., None]  # the same_knn fixture of conftest.py


def _all_units(
    embeddings: Float32Array, block_size: int, k: int
) -> list[tuple[UnitShape, UnitResult]]:
    """Every unit computed and sent through its bytes, as the coordinator receives it."""
    n_spectra = embeddings.shape[0]
    items = []
    for shape in plan_units(n_spectra, block_size):
        block_row = embeddings[shape.row_start : shape.row_stop]
        block_col = embeddings[shape.col_start : shape.col_stop]
        data = encode_unit_result(compute_unit(block_row, block_col, shape, k), shape)
        items.append((shape, decode_unit_result(data, shape, k, n_spectra)))
    return items


@pytest.fixture(scope="module")
def small() -> tuple[Float32Array, KnnGraph]:
    embeddings = synthetic_embeddings(300, 21, AtlasParams())
    return embeddings, merge_unit_results(300, 5, iter(_all_units(embeddings, 64, 5)))


def test_merged_graph_equals_brute_force(
    small: tuple[Float32Array, KnnGraph], same_knn: CompareKnn
) -> None:
    embeddings, graph = small
    reference = brute_force_knn(embeddings, 6)
    same_knn(graph.ids, graph.sims, reference.ids, reference.sims)
    assert not np.any(graph.ids == np.arange(300)[:, None])
    assert np.all(graph.ids >= 0)


def test_merge_does_not_depend_on_unit_order(small: tuple[Float32Array, KnnGraph]) -> None:
    embeddings, graph = small
    items = _all_units(embeddings, 64, 5)
    random.Random(4).shuffle(items)
    assert encode_graph(merge_unit_results(300, 5, items)) == encode_graph(graph)


def test_merged_graph_equals_faiss_exact_search(same_knn: CompareKnn) -> None:
    faiss = pytest.importorskip("faiss")
    n_spectra, k = 6000, 10
    embeddings = synthetic_embeddings(n_spectra, 33, AtlasParams())
    graph = merge_unit_results(n_spectra, k, _all_units(embeddings, 1024, k))
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    found_sims, found_ids = index.search(embeddings, k + 2)
    # Drop each spectrum's self-match (or, if ties hid it, the last entry): k + 1 remain.
    ref_ids = np.empty((n_spectra, k + 1), dtype=np.int64)
    ref_sims = np.empty((n_spectra, k + 1), dtype=np.float32)
    for row in range(n_spectra):
        keep = np.flatnonzero(found_ids[row] != row)[: k + 1]
        ref_ids[row], ref_sims[row] = found_ids[row, keep], found_sims[row, keep]
    same_knn(graph.ids, graph.sims, ref_ids, ref_sims)


def test_one_spectrum_gives_an_empty_graph() -> None:
    embeddings = synthetic_embeddings(1, 2, AtlasParams(embedding_dim=64))
    graph = merge_unit_results(1, 3, _all_units(embeddings, 16, 3))
    assert graph.ids.tolist() == [[-1, -1, -1]]
    assert decode_graph(encode_graph(graph)).ids.tolist() == [[-1, -1, -1]]


def test_a_unit_given_twice_is_refused(small: tuple[Float32Array, KnnGraph]) -> None:
    embeddings, _ = small
    items = _all_units(embeddings, 64, 5)
    with pytest.raises(WorkloadError, match="twice") as caught:
        merge_unit_results(300, 5, [*items, items[3]])
    assert caught.value.code == "workload.merge_invalid"


def test_a_result_of_another_k_is_refused(small: tuple[Float32Array, KnnGraph]) -> None:
    embeddings, _ = small
    with pytest.raises(WorkloadError, match="does not match"):
        merge_unit_results(300, 4, _all_units(embeddings, 64, 5))


def test_graph_bytes_round_trip(small: tuple[Float32Array, KnnGraph]) -> None:
    _, graph = small
    data = encode_graph(graph)
    assert data == encode_graph(KnnGraph(graph.ids.copy(), graph.sims.copy()))
    decoded = decode_graph(data)
    assert np.array_equal(decoded.ids, graph.ids)
    assert np.array_equal(decoded.sims, graph.sims)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:  # a plain .npz
        assert np.array_equal(archive["ids"], graph.ids)


def _npz(compress: bool = False, **arrays: npt.NDArray[np.generic]) -> bytes:
    buffer = io.BytesIO()
    if compress:
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
    else:
        np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _graph_arrays(
    small: tuple[Float32Array, KnnGraph],
) -> tuple[npt.NDArray[np.int64], Float32Array]:
    _, graph = small
    return graph.ids.copy(), graph.sims.copy()


def test_malformed_graphs_are_refused(small: tuple[Float32Array, KnnGraph]) -> None:
    ids, sims = _graph_arrays(small)
    cases: list[tuple[bytes, str]] = [
        (b"PK not really", "not an .npz"),
        (_npz(ids=ids), "entries must be exactly"),
        (_npz(ids=ids, sims=sims, extra=ids), "entries must be exactly"),
        (_npz(compress=True, ids=ids, sims=sims), "not stored"),
        (_npz(ids=ids.astype(np.int32), sims=sims), "C-order <i8"),
        (_npz(ids=ids, sims=sims[:-1]), "differ"),
        (_npz(ids=ids[:, :0], sims=sims[:, :0]), "k=0"),
    ]
    self_listed = ids.copy()
    self_listed[10, 0] = 10
    cases.append((_npz(ids=self_listed, sims=sims), "spectrum 10: listed as its own neighbour"))
    beyond = ids.copy()
    beyond[11, 0] = 300
    cases.append((_npz(ids=beyond, sims=sims), "spectrum 11: a neighbour id outside"))
    unsorted = sims.copy()
    unsorted[12, 0] = -0.5
    cases.append((_npz(ids=ids, sims=unsorted), "spectrum 12: not sorted"))
    for data, reason in cases:
        with pytest.raises(WorkloadError, match=reason) as caught:
            decode_graph(data)
        assert caught.value.code == "workload.graph_malformed"
    with pytest.raises(WorkloadError, match="more than 100"):
        decode_graph(encode_graph(small[1]), bytes_max=100)


def test_a_corrupted_archive_is_refused(small: tuple[Float32Array, KnnGraph]) -> None:
    data = bytearray(encode_graph(small[1]))
    data[200] ^= 0xFF  # inside ids.npy: the CRC no longer matches
    with pytest.raises(WorkloadError) as caught:
        decode_graph(bytes(data))
    assert caught.value.code == "workload.graph_malformed"
    assert zipfile.is_zipfile(io.BytesIO(bytes(data)))


def test_brute_force_pads_when_k_exceeds_candidates() -> None:
    embeddings = synthetic_embeddings(4, 1, AtlasParams(embedding_dim=64))
    graph = brute_force_knn(embeddings, 5)
    assert np.all(graph.ids[:, 3:] == -1)
    assert np.all(graph.sims[:, 3:] == -np.inf)
    assert sorted(graph.ids[0, :3].tolist()) == [1, 2, 3]
