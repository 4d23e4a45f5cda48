"""Synthetic spectra: deterministic, realistic, and with true neighbours."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import (
    AtlasParams,
    brute_force_knn,
    embed_spectra,
    synthetic_embeddings,
    synthetic_spectra,
)

PINNED_DIGEST_200_1 = "60182050b0ef92adfd9a3e2c656d597066eb54170420e2e186f27952cb291d3f"


def _digest(n_spectra: int, seed: int) -> str:
    hasher = hashlib.sha256()
    for spectrum in synthetic_spectra(n_spectra, seed):
        hasher.update(spectrum.identifier.encode())
        hasher.update(np.float64(spectrum.precursor_mz).tobytes())
        hasher.update(spectrum.mz.astype("<f8").tobytes())
        hasher.update(spectrum.intensity.astype("<f8").tobytes())
    return hasher.hexdigest()


def test_same_arguments_same_spectra() -> None:
    assert _digest(500, 11) == _digest(500, 11)
    assert _digest(500, 11) != _digest(500, 12)


def test_output_is_pinned_across_machines() -> None:
    # Only PCG64 doubles and correctly rounded arithmetic are used, so these bytes are the
    # same on every platform; a change here changes every synthetic job's data.
    assert _digest(200, 1) == PINNED_DIGEST_200_1


def test_peak_lists_are_realistic() -> None:
    spectra = synthetic_spectra(2000, 3)
    counts = np.array([spectrum.n_peaks for spectrum in spectra])
    assert counts.min() >= 5
    assert counts.max() <= 150
    assert 20 < np.median(counts) < 100
    for spectrum in spectra:
        assert spectrum.mz.dtype == np.float64
        assert spectrum.mz.min() >= 50.0
        assert spectrum.mz.max() <= 1000.0
        assert np.all(np.diff(spectrum.mz) >= 0.0)
        assert np.all(spectrum.intensity >= 0.0)
        assert 150.0 <= spectrum.precursor_mz <= 1000.0
        # Fragments lie below the precursor, noise peaks anywhere: most below.
        assert np.mean(spectrum.mz < spectrum.precursor_mz) > 0.6
    assert len({spectrum.identifier for spectrum in spectra}) == len(spectra)


def test_true_neighbours_exist() -> None:
    embeddings = synthetic_embeddings(2000, 3, AtlasParams())
    graph = brute_force_knn(embeddings, 5)
    # Family members are far closer than unrelated spectra.
    assert np.median(graph.sims[:, 0]) > 0.7
    products = embeddings[:500] @ embeddings[500:1000].T
    assert np.median(products) < 0.1


def test_embeddings_match_the_spectra_and_are_unit_norm() -> None:
    params = AtlasParams(embedding_dim=512, mz_min=50.0, mz_max=1050.0)
    fast = synthetic_embeddings(700, 9, params)
    slow = embed_spectra(synthetic_spectra(700, 9), params)
    assert np.array_equal(fast, slow)
    assert fast.dtype == np.float32
    assert fast.shape == (700, 512)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(("n_spectra", "seed"), [(0, 1), (1, -1), (2_000_000, 1)])
def test_bad_arguments_are_refused(n_spectra: int, seed: int) -> None:
    with pytest.raises(WorkloadError) as caught:
        synthetic_spectra(n_spectra, seed)
    assert caught.value.code == "workload.dataset_invalid"
