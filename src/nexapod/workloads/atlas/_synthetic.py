"""Seeded synthetic MS/MS spectra with true neighbours (docs/atlas.md, "Synthetic data").

The spectra come from compound families: each family has a precursor m/z and a fragment
pattern (5-130 fragments, one base peak). Each spectrum is a noisy measurement of one
family: some fragments missing, m/z jittered by up to 0.01, intensities varied by up to
40 %, a few low noise peaks, and a quarter of them are analogues whose precursor and part
of whose fragments are shifted by a common modification (CH2, O, H2, H2O, C2H4).

Same (n_spectra, seed) gives the same bytes on any machine: the only draws are
``Generator.random`` doubles of PCG64 (a fixed bit stream and an exact conversion), and
everything computed from them uses +, -, *, /, floor, min and max, which IEEE 754 rounds
identically everywhere (no exp, log or pow, whose last bits vary between libms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.workloads.atlas._params import AtlasParams, require_int
from nexapod.workloads.atlas._spectra import Spectrum, embed_peak_table

__all__ = ["SYNTHETIC_SPECTRA_MAX", "synthetic_embeddings", "synthetic_spectra"]

SYNTHETIC_SPECTRA_MAX = 1_000_000
SEED_MAX = (1 << 63) - 1
FAMILIES_MAX = 400
SPECTRA_PER_FAMILY = 8
FRAGMENTS_MIN = 5  # always kept, so every spectrum has at least this many peaks
FRAGMENTS_MAX = 130
NOISE_PEAKS_MAX = 1 + FRAGMENTS_MAX // 8
PEAKS_MAX = FRAGMENTS_MAX + NOISE_PEAKS_MAX
MZ_LOW = 50.0
MZ_HIGH = 1000.0
PRECURSOR_MZ_LOW = 150.0
PRECURSOR_MZ_HIGH = 950.0
MZ_JITTER = 0.01
INTENSITY_NOISE = 0.4
FRAGMENT_KEEP_P = 0.8
ANALOGUE_P = 0.25
SHIFTED_FRAGMENT_P = 0.4
# Monoisotopic mass differences of common modifications: CH2, O, H2, H2O, C2H4.
SHIFTS_MZ = (14.01565, 15.99491, 2.01565, 18.01056, 28.0313)

assert PEAKS_MAX <= 150
assert MZ_LOW < PRECURSOR_MZ_LOW < PRECURSOR_MZ_HIGH + max(SHIFTS_MZ) < MZ_HIGH

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _PeakTable:
    """Spectrum i owns peaks offsets[i]:offsets[i + 1], sorted by m/z."""

    precursor_mz: Float64Array
    offsets: Int64Array
    mz: Float64Array
    intensity: Float64Array


def synthetic_spectra(n_spectra: int, seed: int) -> list[Spectrum]:
    """``n_spectra`` realistic peak lists, identical for the same (n_spectra, seed)."""
    table = _peak_table(n_spectra, seed)
    spectra = []
    for index in range(n_spectra):
        lo, hi = int(table.offsets[index]), int(table.offsets[index + 1])
        spectra.append(
            Spectrum(
                identifier=f"synthetic-{seed}-{index}",
                precursor_mz=float(table.precursor_mz[index]),
                mz=table.mz[lo:hi],
                intensity=table.intensity[lo:hi],
            )
        )
    return spectra


def synthetic_embeddings(n_spectra: int, seed: int, params: AtlasParams) -> npt.NDArray[np.float32]:
    """``embed_spectra(synthetic_spectra(n_spectra, seed), params)``, without the objects."""
    table = _peak_table(n_spectra, seed)
    return embed_peak_table(table.offsets, table.mz, table.intensity, params)


def _uniform(rng: np.random.Generator, size: int) -> Float64Array:
    return rng.random(size, dtype=np.float64)


def _index(rng: np.random.Generator, size: int, count: int) -> Int64Array:
    """Uniform integers in [0, count) from doubles (exact: floor of a product, clamped)."""
    values = np.floor(_uniform(rng, size) * count).astype(np.int64)
    return np.minimum(values, count - 1)


def _centred(rng: np.random.Generator, size: int) -> Float64Array:
    """Bell-shaped noise in [-1, 1]: the mean of three uniforms, rescaled (Irwin-Hall)."""
    a, b, c = _uniform(rng, size), _uniform(rng, size), _uniform(rng, size)
    return (a + b + c - 1.5) / 1.5


def _peak_table(n_spectra: int, seed: int) -> _PeakTable:
    require_int(n_spectra, "n_spectra", 1, SYNTHETIC_SPECTRA_MAX, "dataset_invalid")
    require_int(seed, "seed", 0, SEED_MAX, "dataset_invalid")
    rng = np.random.Generator(np.random.PCG64(seed))
    n_families = min(FAMILIES_MAX, max(1, n_spectra // SPECTRA_PER_FAMILY))

    # Families: precursor, fragment count (skewed towards few), fragment pattern.
    family_precursor_mz = PRECURSOR_MZ_LOW + (PRECURSOR_MZ_HIGH - PRECURSOR_MZ_LOW) * _uniform(
        rng, n_families
    )
    skew = _uniform(rng, n_families)
    span = FRAGMENTS_MAX - FRAGMENTS_MIN + 1
    family_counts = FRAGMENTS_MIN + np.minimum(np.floor(skew * skew * span), span - 1)
    family_counts = family_counts.astype(np.int64)
    family_offsets = np.concatenate(([0], np.cumsum(family_counts)))
    fragment_family = np.repeat(np.arange(n_families), family_counts)
    n_fragments = int(family_offsets[-1])
    fragment_local = np.arange(n_fragments) - family_offsets[fragment_family]
    fragment_top_mz = family_precursor_mz[fragment_family] - 1.5
    fragment_mz = MZ_LOW + (fragment_top_mz - MZ_LOW) * _uniform(rng, n_fragments)
    cube = _uniform(rng, n_fragments)
    fragment_intensity = np.where(fragment_local == 0, 1.0, 0.01 + 0.9 * cube * cube * cube)

    # Spectra: family, analogue shift, overall scale.
    family = _index(rng, n_spectra, n_families)
    is_analogue = _uniform(rng, n_spectra) < ANALOGUE_P
    shift_mz = np.where(
        is_analogue, np.asarray(SHIFTS_MZ)[_index(rng, n_spectra, len(SHIFTS_MZ))], 0.0
    )
    scale = 100.0 + 1e5 * _uniform(rng, n_spectra)
    precursor_mz = family_precursor_mz[family] + shift_mz + 0.005 * _centred(rng, n_spectra)

    # Measured fragments: a noisy subset of the family's pattern.
    counts = family_counts[family]
    owner = np.repeat(np.arange(n_spectra), counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    local = np.arange(owner.shape[0]) - starts[owner]
    fragment = family_offsets[family][owner] + local
    keep = (local < FRAGMENTS_MIN) | (_uniform(rng, owner.shape[0]) < FRAGMENT_KEEP_P)
    shifted = _uniform(rng, owner.shape[0]) < SHIFTED_FRAGMENT_P
    mz = fragment_mz[fragment] + MZ_JITTER * _centred(rng, owner.shape[0])
    mz = mz + np.where(shifted, shift_mz[owner], 0.0)
    factor = 1.0 + INTENSITY_NOISE * _centred(rng, owner.shape[0])
    intensity = fragment_intensity[fragment] * factor * scale[owner]

    # Noise peaks: few, low, anywhere in range.
    noise_counts = np.floor(_uniform(rng, n_spectra) * (1 + counts // 8)).astype(np.int64)
    noise_owner = np.repeat(np.arange(n_spectra), noise_counts)
    noise_mz = MZ_LOW + (MZ_HIGH - MZ_LOW) * _uniform(rng, noise_owner.shape[0])
    noise_intensity = 0.03 * scale[noise_owner] * _uniform(rng, noise_owner.shape[0])

    all_owner = np.concatenate((owner[keep], noise_owner))
    all_mz = np.clip(np.concatenate((mz[keep], noise_mz)), MZ_LOW, MZ_HIGH)
    all_intensity = np.concatenate((intensity[keep], noise_intensity))
    order = np.lexsort((all_mz, all_owner))
    peaks_per_spectrum = np.bincount(all_owner, minlength=n_spectra)
    assert int(peaks_per_spectrum.min()) >= FRAGMENTS_MIN
    assert int(peaks_per_spectrum.max()) <= PEAKS_MAX
    offsets = np.concatenate(([0], np.cumsum(peaks_per_spectrum))).astype(np.int64)
    return _PeakTable(
        precursor_mz=precursor_mz,
        offsets=offsets,
        mz=np.ascontiguousarray(all_mz[order]),
        intensity=np.ascontiguousarray(all_intensity[order]),
    )
