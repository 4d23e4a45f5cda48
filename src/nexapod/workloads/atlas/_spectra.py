"""Spectra and their embeddings.

The embedding of a spectrum (docs/atlas.md, "Embedding"):

1. keep the peaks with ``mz_min <= mz < mz_max``;
2. weight each peak by the square root of its intensity (tames the few dominant peaks, as
   usual for spectral cosine scores);
3. sum the weights into ``embedding_dim`` equal-width bins:
   ``bin = floor((mz - mz_min) / bin_width_mz)`` with
   ``bin_width_mz = (mz_max - mz_min) / embedding_dim`` (clamped to the last bin should
   rounding reach ``embedding_dim``);
4. divide by the Euclidean norm (in float64), then store as float32.

Cosine similarity of two spectra is then the dot product of their embeddings. A spectrum
with no positive peak in range has no direction and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._params import AtlasParams

__all__ = ["PEAKS_MAX", "Spectrum", "embed_peak_table", "embed_spectra"]

# A spectrum with more peaks than this is not an MS/MS peak list (profile data?).
PEAKS_MAX = 1 << 20
# Spectra embedded per bincount call: bounds the float64 scratch to 32 MiB at dim 1024.
_EMBED_CHUNK_VALUES_MAX = 1 << 22

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Spectrum:
    """One MS/MS peak list: m/z ascending (float64) and intensities >= 0 (float64)."""

    identifier: str
    precursor_mz: float
    mz: Float64Array
    intensity: Float64Array

    def __post_init__(self) -> None:
        mz = np.ascontiguousarray(self.mz, dtype=np.float64)
        intensity = np.ascontiguousarray(self.intensity, dtype=np.float64)
        object.__setattr__(self, "mz", mz)
        object.__setattr__(self, "intensity", intensity)
        object.__setattr__(self, "precursor_mz", float(self.precursor_mz))
        problem = _spectrum_problem(self.precursor_mz, mz, intensity)
        if problem:
            raise WorkloadError("dataset_invalid", f"spectrum {self.identifier!r}: {problem}")

    @property
    def n_peaks(self) -> int:
        return int(self.mz.shape[0])


def _spectrum_problem(precursor_mz: float, mz: Float64Array, intensity: Float64Array) -> str:
    if mz.ndim != 1 or intensity.ndim != 1:
        return "m/z and intensity must be one-dimensional"
    if mz.shape != intensity.shape:
        return f"{mz.shape[0]} m/z values but {intensity.shape[0]} intensities"
    if mz.shape[0] > PEAKS_MAX:
        return f"{mz.shape[0]} peaks, more than {PEAKS_MAX}"
    if not np.isfinite(precursor_mz) or precursor_mz < 0.0:
        return f"precursor m/z must be finite and >= 0, got {precursor_mz}"
    if not np.all(np.isfinite(mz)) or not np.all(np.isfinite(intensity)):
        return "m/z and intensity must be finite"
    if np.any(mz < 0.0):
        return "m/z must be >= 0"
    if np.any(intensity < 0.0):
        return "intensities must be >= 0"
    if np.any(mz[1:] < mz[:-1]):
        return "m/z must be ascending"
    return ""


def embed_spectra(spectra: Sequence[Spectrum], params: AtlasParams) -> npt.NDArray[np.float32]:
    """float32 C-order [n, embedding_dim], unit rows; the method is in the module docstring."""
    if not spectra:
        raise WorkloadError("dataset_invalid", "no spectra to embed")
    counts = np.fromiter((s.n_peaks for s in spectra), dtype=np.int64, count=len(spectra))
    offsets = np.zeros(len(spectra) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    mz = np.concatenate([s.mz for s in spectra])
    intensity = np.concatenate([s.intensity for s in spectra])
    identifiers = [s.identifier for s in spectra]
    return embed_peak_table(offsets, mz, intensity, params, identifiers)


def embed_peak_table(
    offsets: Int64Array,
    mz: Float64Array,
    intensity: Float64Array,
    params: AtlasParams,
    identifiers: Sequence[str] | None = None,
) -> npt.NDArray[np.float32]:
    """Embed spectra stored flat: spectrum i owns peaks ``offsets[i]:offsets[i + 1]``.

    Vectorised over many spectra at once (one bincount per chunk), which is what makes
    50,000 synthetic spectra embed in well under a second.
    """
    n_spectra = int(offsets.shape[0]) - 1
    assert n_spectra >= 1
    assert int(offsets[0]) == 0
    assert int(offsets[-1]) == mz.shape[0] == intensity.shape[0]
    dim = params.embedding_dim
    embeddings = np.empty((n_spectra, dim), dtype=np.float32)
    chunk_spectra = max(1, _EMBED_CHUNK_VALUES_MAX // dim)
    for start in range(0, n_spectra, chunk_spectra):
        stop = min(start + chunk_spectra, n_spectra)
        lo, hi = int(offsets[start]), int(offsets[stop])
        owner = np.repeat(
            np.arange(stop - start, dtype=np.int64), np.diff(offsets[start : stop + 1])
        )
        binned = _bin_chunk(owner, mz[lo:hi], intensity[lo:hi], stop - start, params)
        norms = np.sqrt(np.einsum("ij,ij->i", binned, binned))
        empty = np.flatnonzero(norms == 0.0)
        if empty.shape[0]:
            index = start + int(empty[0])
            name = identifiers[index] if identifiers is not None else f"#{index}"
            raise WorkloadError(
                "dataset_invalid",
                f"spectrum {index} ({name!r}) has no peak with positive intensity in "
                f"[{params.mz_min}, {params.mz_max}) m/z",
            )
        embeddings[start:stop] = binned / norms[:, None]
    assert embeddings.flags.c_contiguous
    return embeddings


def _bin_chunk(
    owner: Int64Array,
    mz: Float64Array,
    intensity: Float64Array,
    n_spectra: int,
    params: AtlasParams,
) -> Float64Array:
    """Sum sqrt(intensity) into bins: float64 [n_spectra, embedding_dim]."""
    dim = params.embedding_dim
    in_range = (mz >= params.mz_min) & (mz < params.mz_max)
    mz_kept = mz[in_range]
    bins = np.floor((mz_kept - params.mz_min) / params.bin_width_mz).astype(np.int64)
    np.minimum(bins, dim - 1, out=bins)
    assert bins.shape[0] == 0 or int(bins.min()) >= 0
    flat = owner[in_range] * dim + bins
    weights = np.sqrt(intensity[in_range])
    binned = np.bincount(flat, weights=weights, minlength=n_spectra * dim).astype(
        np.float64, copy=False
    )
    assert binned.shape[0] == n_spectra * dim
    return binned.reshape(n_spectra, dim)
