"""RTDOSE pixel data in every transfer syntax a clinic exports: read exactly, or refused by name."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from rtcheck.dicom.dose import read_dose_grid
from rtcheck.dicom.plan import load_plan
from rtcheck.errors import InvalidDoseError, InvalidInputError
from tests.conftest import write_case


def pydicom_dose(name: str):
    """One of pydicom's RTDOSE test files, read as rtcheck reads files. They hold RELATIVE
    doses, which rtcheck refuses: the units are changed in memory to test the decoding."""
    ds = pydicom.dcmread(get_testdata_file(name), defer_size="64 KB")
    ds.DoseUnits = "GY"
    return read_dose_grid(ds, name)


@pytest.mark.parametrize("name", ["rtdose_rle.dcm", "rtdose_expb.dcm"])
def test_pydicoms_compressed_and_big_endian_doses_equal_the_plain_one(name):
    plain = pydicom_dose("rtdose.dcm")
    other = pydicom_dose(name)
    assert np.array_equal(other.dose_gy, plain.dose_gy)
    assert np.array_equal(other.z_mm, plain.z_mm)
    assert plain.shape == (15, 10, 10) and plain.max_gy > 1


@pytest.mark.parametrize(
    "name", ["rtdose_1frame.dcm", "rtdose_rle_1frame.dcm", "rtdose_expb_1frame.dcm"]
)
def test_pydicoms_one_frame_doses_are_refused_for_their_frame_offsets(name):
    # These files keep the 15 GridFrameOffsetVector values of the 15-frame grid they were cut
    # from, with NumberOfFrames 1: which frame they hold cannot be told.
    with pytest.raises(InvalidDoseError, match="15 values for NumberOfFrames 1"):
        pydicom_dose(name)


def field(x, y, z):
    return 30.0 + 0.3 * x + 0.2 * y + 0.1 * z


@pytest.fixture
def case(tmp_path):
    from rtcheck.phantom import synthetic as S

    roi = S.RoiSpec.from_shape("Ball", "PTV", S.sphere(0, 0, 0, 12), np.arange(-12, 12.1, 2.0))
    # 41 x 41 pixels: JPEG 2000's five decomposition levels need 32 or more.
    return write_case(tmp_path / "plain", [roi], field, 2.0, lo=(-40,) * 3, hi=(40,) * 3, bits=16)


def recoded(folder, tmp_path, how):
    """A copy of the case whose RTDOSE is re-encoded by ``how(dataset, path)``."""
    out = tmp_path / "recoded"
    out.mkdir()
    for path in folder.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    ds = pydicom.dcmread(out / "rtdose.dcm")
    how(ds, out / "rtdose.dcm")
    return out


def compress(uid):
    def how(ds, path):
        ds.compress(uid)
        ds.save_as(path)

    return how


def deflate(ds, path):
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def big_endian(ds, path):
    # pydicom writes OW pixel data as it holds it: the bytes are swapped here.
    ds.PixelData = ds.pixel_array.astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pydicom.dcmwrite(path, ds, little_endian=False, implicit_vr=False)


@pytest.mark.parametrize(
    "how",
    [
        compress(RLELossless),
        compress(JPEG2000Lossless),
        deflate,
        big_endian,
    ],
    ids=["rle", "jpeg2000-lossless", "deflated", "big-endian"],
)
def test_a_losslessly_encoded_dose_loads_to_the_same_grid(case, tmp_path, how):
    plain = load_plan([case]).doses[0].grid
    other = load_plan([recoded(case, tmp_path, how)]).doses[0].grid
    assert np.array_equal(other.dose_gy, plain.dose_gy)
    assert plain.max_gy > 20


def test_a_truncated_rle_dose_is_still_refused(case, tmp_path):
    folder = recoded(case, tmp_path, compress(RLELossless))
    data = (folder / "rtdose.dcm").read_bytes()
    (folder / "rtdose.dcm").write_bytes(data[:-100])
    with pytest.raises(InvalidInputError, match="truncated"):
        load_plan([folder])


def encapsulated_as(uid, lossy_flag=None):
    def how(ds, path):
        ds.PixelData = encapsulate([b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = uid
        if lossy_flag:
            ds.LossyImageCompression = lossy_flag
        ds.save_as(path, enforce_file_format=True)

    return how


def test_a_lossy_jpeg_dose_is_refused_naming_its_transfer_syntax(case, tmp_path):
    folder = recoded(case, tmp_path, encapsulated_as(JPEGBaseline8Bit))
    with pytest.raises(InvalidDoseError, match=r"JPEG Baseline.*1\.2\.840\.10008\.1\.2\.4\.50"):
        load_plan([folder])


def test_a_dose_flagged_as_lossily_compressed_is_refused(case, tmp_path):
    def how(ds, path):
        ds.LossyImageCompression = "01"
        ds.save_as(path)

    with pytest.raises(InvalidDoseError, match="lossily"):
        load_plan([recoded(case, tmp_path, how)])


def test_an_unknown_transfer_syntax_is_refused_by_the_command(case, tmp_path):
    folder = recoded(case, tmp_path, encapsulated_as("1.2.826.0.1.3680043.99.1"))
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck", "dvh", str(folder)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "1.2.826.0.1.3680043.99.1" in result.stderr and "unknown" in result.stderr
