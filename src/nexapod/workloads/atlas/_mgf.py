"""Reading MGF files into spectra, through pyteomics or (optionally) matchms.

Both readers are imported lazily: the unit that runs in the sandbox never reads MGF, and
must start without them. Every failure becomes ``workload.dataset_invalid`` naming the
problem and, where known, the 0-based index of the spectrum.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._params import require_int
from nexapod.workloads.atlas._spectra import Spectrum

__all__ = ["MGF_BYTES_MAX", "read_mgf", "read_mgf_matchms"]

MGF_BYTES_MAX = 1 << 31
_SPECTRA_MAX_MAX = 1 << 31
# What the readers raise on malformed text (pyteomics adds its PyteomicsError).
_PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, IndexError, KeyError)


def read_mgf(source: Path | bytes, spectra_max: int) -> list[Spectrum]:
    """The spectra of an MGF file (a path or its bytes), in file order.

    The identifier is the TITLE, else ``index:<i>``; the precursor m/z is PEPMASS's first
    value. Peaks are sorted by m/z. More than ``spectra_max`` spectra is an error, not a
    truncation.
    """
    require_int(spectra_max, "spectra_max", 1, _SPECTRA_MAX_MAX, "dataset_invalid")
    text = _mgf_text(source)
    try:
        from pyteomics import mgf
    except ImportError as exc:  # a core dependency, so only a broken install gets here
        raise WorkloadError("reader_unavailable", "pip install pyteomics") from exc
    from pyteomics.auxiliary import PyteomicsError

    reader = mgf.read(io.StringIO(text), use_index=False, read_charges=False)
    return _collect(reader, spectra_max, _from_pyteomics, (*_PARSE_ERRORS, PyteomicsError))


def read_mgf_matchms(source: Path, spectra_max: int) -> list[Spectrum]:
    """Like :func:`read_mgf`, through matchms (the optional extra ``nexapod[matchms]``)."""
    require_int(spectra_max, "spectra_max", 1, _SPECTRA_MAX_MAX, "dataset_invalid")
    try:
        from matchms.importing import load_from_mgf
    except ImportError as exc:
        raise WorkloadError("reader_unavailable", "pip install 'nexapod[matchms]'") from exc
    text = _mgf_text(source)
    reader = load_from_mgf(io.StringIO(text))
    return _collect(reader, spectra_max, _from_matchms, _PARSE_ERRORS)


def _mgf_text(source: Path | bytes) -> str:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        try:
            size_bytes = source.stat().st_size
            if size_bytes > MGF_BYTES_MAX:
                raise WorkloadError(
                    "dataset_invalid", f"{source}: {size_bytes} bytes, more than {MGF_BYTES_MAX}"
                )
            data = source.read_bytes()
        except OSError as exc:
            raise WorkloadError("dataset_invalid", f"cannot read {source}: {exc}") from exc
    if len(data) > MGF_BYTES_MAX:
        raise WorkloadError(
            "dataset_invalid", f"MGF of {len(data)} bytes, more than {MGF_BYTES_MAX}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError(
            "dataset_invalid", f"MGF is not UTF-8 text (byte {exc.start} is invalid)"
        ) from exc


def _collect(
    reader: Iterable[Any],
    spectra_max: int,
    convert: Callable[[Any, int], Spectrum],
    parse_errors: tuple[type[Exception], ...],
) -> list[Spectrum]:
    """Drive a reader one spectrum at a time, so errors carry the spectrum's index."""
    spectra: list[Spectrum] = []
    iterator = iter(reader)
    while True:
        index = len(spectra)
        try:
            item = next(iterator)
        except StopIteration:
            break
        except parse_errors as exc:
            raise WorkloadError(
                "dataset_invalid", f"MGF spectrum {index} cannot be parsed: {exc}"
            ) from exc
        if index >= spectra_max:
            raise WorkloadError(
                "dataset_invalid", f"MGF has more than spectra_max={spectra_max} spectra"
            )
        if item is None:
            raise WorkloadError(
                "dataset_invalid", f"MGF spectrum {index} is not closed by END IONS"
            )
        try:
            spectra.append(convert(item, index))
        except WorkloadError as exc:
            raise WorkloadError("dataset_invalid", f"MGF spectrum {index}: {exc.detail}") from exc
        assert len(spectra) == index + 1
    if not spectra:
        raise WorkloadError("dataset_invalid", "MGF contains no spectrum (no BEGIN IONS block)")
    return spectra


def _from_pyteomics(item: Mapping[str, Any], index: int) -> Spectrum:
    params = item.get("params", {})
    pepmass = params.get("pepmass")
    if not pepmass or pepmass[0] is None:
        raise WorkloadError("dataset_invalid", "no PEPMASS (precursor m/z)")
    title = params.get("title")
    return _spectrum(title, index, pepmass[0], item["m/z array"], item["intensity array"])


def _from_matchms(item: Any, index: int) -> Spectrum:
    pepmass = item.get("pepmass")
    precursor_mz = item.get("precursor_mz")
    if precursor_mz is None and pepmass:
        precursor_mz = pepmass[0]
    if precursor_mz is None:
        raise WorkloadError("dataset_invalid", "no PEPMASS (precursor m/z)")
    title = item.get("title")
    return _spectrum(title, index, precursor_mz, item.peaks.mz, item.peaks.intensities)


def _spectrum(title: Any, index: int, precursor_mz: Any, mz: Any, intensity: Any) -> Spectrum:
    identifier = str(title) if title else f"index:{index}"
    mz_array = np.asarray(mz, dtype=np.float64)
    intensity_array = np.asarray(intensity, dtype=np.float64)
    if mz_array.shape[0] == 0:
        raise WorkloadError("dataset_invalid", f"{identifier!r} has no peaks")
    if mz_array.shape == intensity_array.shape:
        order = np.argsort(mz_array, kind="stable")
        mz_array, intensity_array = mz_array[order], intensity_array[order]
    return Spectrum(identifier, float(precursor_mz), mz_array, intensity_array)
