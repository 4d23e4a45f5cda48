"""Reading MGF: valid files, and each kind of broken file with a clear error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import read_mgf, read_mgf_matchms

VALID_MGF = b"""\
# a comment line before the first spectrum
BEGIN IONS
TITLE=caffeine
PEPMASS=195.0877 12000
CHARGE=1+
138.0662 100
110.0713 20.5
195.0877 55
END IONS

BEGIN IONS
PEPMASS=181.0720
163.0615 10
END IONS
BEGIN IONS
TITLE=theobromine
PEPMASS=181.0720
CHARGE=1+
138.0662 30
163.0610 100
END IONS
"""

HAS_MATCHMS = importlib.util.find_spec("matchms") is not None


def _broken(body: str) -> bytes:
    return f"BEGIN IONS\nTITLE=ok\nPEPMASS=100\n50 1\nEND IONS\n{body}".encode()


def test_reads_valid_mgf_bytes() -> None:
    spectra = read_mgf(VALID_MGF, spectra_max=10)
    assert [s.identifier for s in spectra] == ["caffeine", "index:1", "theobromine"]
    assert spectra[0].precursor_mz == pytest.approx(195.0877)
    # Peaks come back sorted by m/z, intensities following their peaks.
    assert spectra[0].mz.tolist() == [110.0713, 138.0662, 195.0877]
    assert spectra[0].intensity.tolist() == [20.5, 100.0, 55.0]
    assert spectra[1].mz.dtype == np.float64
    assert spectra[2].n_peaks == 2


def test_path_and_bytes_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "small.mgf"
    path.write_bytes(VALID_MGF)
    from_path = read_mgf(path, spectra_max=10)
    from_bytes = read_mgf(VALID_MGF, spectra_max=10)
    assert [s.identifier for s in from_path] == [s.identifier for s in from_bytes]
    for a, b in zip(from_path, from_bytes, strict=True):
        assert np.array_equal(a.mz, b.mz)
        assert np.array_equal(a.intensity, b.intensity)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe not text", "not UTF-8"),
        (b"hello world\n", "no spectrum"),
        (b"", "no spectrum"),
        (_broken("BEGIN IONS\nTITLE=open\nPEPMASS=100\n50 1\n"), "spectrum 1 is not closed"),
        (_broken("BEGIN IONS\nPEPMASS=100\n50 zz\nEND IONS\n"), "spectrum 1 cannot be parsed"),
        (_broken("BEGIN IONS\nPEPMASS=abc\n50 1\nEND IONS\n"), "spectrum 1 cannot be parsed"),
        (_broken("BEGIN IONS\nTITLE=x\n50 1\nEND IONS\n"), "spectrum 1: no PEPMASS"),
        (_broken("BEGIN IONS\nTITLE=x\nPEPMASS=100\n50 -3\nEND IONS\n"), "spectrum 1: .*>= 0"),
        (_broken("BEGIN IONS\nTITLE=x\nPEPMASS=100\nEND IONS\n"), "spectrum 1: 'x' has no peaks"),
        (_broken("BEGIN IONS\nTITLE=x\nPEPMASS=100\n50 nan\nEND IONS\n"), "spectrum 1: .*finite"),
    ],
)
def test_broken_mgf_is_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(WorkloadError, match=message) as caught:
        read_mgf(data, spectra_max=10)
    assert caught.value.code == "workload.dataset_invalid"


def test_too_many_spectra_is_an_error_not_a_truncation() -> None:
    with pytest.raises(WorkloadError, match="more than spectra_max=2") as caught:
        read_mgf(VALID_MGF, spectra_max=2)
    assert caught.value.code == "workload.dataset_invalid"
    assert len(read_mgf(VALID_MGF, spectra_max=3)) == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="cannot read") as caught:
        read_mgf(tmp_path / "absent.mgf", spectra_max=10)
    assert caught.value.code == "workload.dataset_invalid"


def test_matchms_reader_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matchms" or m.startswith("matchms.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matchms", None)  # as if it were not installed
    path = tmp_path / "small.mgf"
    path.write_bytes(VALID_MGF)
    with pytest.raises(WorkloadError) as caught:
        read_mgf_matchms(path, spectra_max=10)
    assert caught.value.code == "workload.reader_unavailable"
    assert "pip install 'nexapod[matchms]'" in caught.value.detail


@pytest.mark.skipif(not HAS_MATCHMS, reason="matchms is not installed (nexapod[matchms])")
def test_matchms_reads_the_same_spectra(tmp_path: Path) -> None:
    path = tmp_path / "small.mgf"
    path.write_bytes(VALID_MGF)
    through_matchms = read_mgf_matchms(path, spectra_max=10)
    through_pyteomics = read_mgf(path, spectra_max=10)
    assert len(through_matchms) == len(through_pyteomics)
    for a, b in zip(through_matchms, through_pyteomics, strict=True):
        assert a.precursor_mz == pytest.approx(b.precursor_mz)
        assert np.allclose(a.mz, b.mz)
        assert np.allclose(a.intensity, b.intensity)
