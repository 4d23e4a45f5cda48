"""Spectrum validation and the embedding method (module docstring of _spectra)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import AtlasParams, Spectrum, embed_spectra


def _spectrum(mz: list[float], intensity: list[float], name: str = "s") -> Spectrum:
    return Spectrum(name, 500.0, np.array(mz), np.array(intensity))


def test_embedding_of_a_hand_made_spectrum() -> None:
    params = AtlasParams(embedding_dim=8, mz_min=100.0, mz_max=108.0, block_size=16, k=1)
    spectrum = _spectrum(
        [99.5, 100.2, 100.9, 103.0, 107.999, 108.0], [50.0, 4.0, 9.0, 16.0, 25.0, 100.0]
    )
    # In range: 100.2 and 100.9 -> bin 0 (sqrt: 2 + 3), 103.0 -> bin 3 (4), 107.999 -> 7 (5).
    # 99.5 and 108.0 lie outside [100, 108) and are dropped.
    expected = np.array([5.0, 0, 0, 4.0, 0, 0, 0, 5.0]) / math.sqrt(25 + 16 + 25)
    embedding = embed_spectra([spectrum], params)
    assert embedding.dtype == np.float32
    assert embedding.flags.c_contiguous
    assert embedding.shape == (1, 8)
    assert np.array_equal(embedding[0], expected.astype(np.float32))


def test_bins_of_a_non_integer_width() -> None:
    params = AtlasParams(embedding_dim=8, mz_min=0.0, mz_max=10.0, block_size=16, k=1)
    # width 1.25: 2.5 starts bin 2; 9.99 is in the last bin.
    embedding = embed_spectra([_spectrum([2.5, 9.99], [1.0, 1.0])], params)
    nonzero = np.flatnonzero(embedding[0])
    assert nonzero.tolist() == [2, 7]
    assert np.allclose(embedding[0, nonzero], 1 / math.sqrt(2))


def test_embeddings_are_unit_rows_in_order() -> None:
    params = AtlasParams()
    spectra = [_spectrum([100.0 + i, 300.0], [1.0 + i, 2.0], f"s{i}") for i in range(5)]
    embeddings = embed_spectra(spectra, params)
    assert embeddings.shape == (5, 1024)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    for i in range(5):
        assert embeddings[i, 100 + i] > 0.0


def test_a_spectrum_without_peaks_in_range_is_named() -> None:
    spectra = [_spectrum([100.0], [1.0], "fine"), _spectrum([2000.0], [1.0], "too-heavy")]
    with pytest.raises(WorkloadError) as caught:
        embed_spectra(spectra, AtlasParams())
    assert caught.value.code == "workload.dataset_invalid"
    assert "too-heavy" in caught.value.detail
    assert "spectrum 1" in caught.value.detail


def test_zero_intensities_count_as_no_peak() -> None:
    with pytest.raises(WorkloadError, match="no peak with positive intensity"):
        embed_spectra([_spectrum([100.0, 200.0], [0.0, 0.0])], AtlasParams())


def test_no_spectra_is_refused() -> None:
    with pytest.raises(WorkloadError, match="no spectra"):
        embed_spectra([], AtlasParams())


@pytest.mark.parametrize(
    ("mz", "intensity", "reason"),
    [
        ([200.0, 100.0], [1.0, 1.0], "ascending"),
        ([100.0, 200.0], [1.0, -1.0], ">= 0"),
        ([100.0, float("nan")], [1.0, 1.0], "finite"),
        ([100.0, 200.0], [1.0, float("inf")], "finite"),
        ([100.0], [1.0, 2.0], "intensities"),
    ],
)
def test_invalid_peak_lists_are_refused(
    mz: list[float], intensity: list[float], reason: str
) -> None:
    with pytest.raises(WorkloadError, match=reason) as caught:
        _spectrum(mz, intensity, "bad")
    assert caught.value.code == "workload.dataset_invalid"
    assert "'bad'" in caught.value.detail


def test_spectrum_arrays_are_float64() -> None:
    spectrum = Spectrum("s", 400, np.array([100, 200]), np.array([1, 2]))
    assert spectrum.mz.dtype == np.float64
    assert spectrum.intensity.dtype == np.float64
    assert spectrum.precursor_mz == 400.0
