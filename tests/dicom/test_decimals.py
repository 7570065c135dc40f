"""The fast decimal-string reader against Python's float, value by value."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rtcheck.dicom.decimals import parse_plain_decimals


def test_plain_decimals_read_exactly_as_float_reads_them():
    rng = random.Random(7)
    values = []
    for _ in range(20000):
        whole = rng.choice(
            ["0", "7", "-0", "12", "-180", "999999", str(rng.randint(-(10**6), 10**6))]
        )
        kind = rng.random()
        if kind < 0.3:
            values.append(whole)
        elif kind < 0.9:
            places = rng.randint(0, 15 - len(whole.lstrip("-")))
            fraction = "".join(rng.choice("0123456789") for _ in range(places))
            values.append(f"{whole}.{fraction}")
        else:
            sign = rng.choice(["", "-"])
            values.append(f"{sign}.{rng.randint(0, 99999)}")
    text = "\\".join(values).encode()
    parsed = parse_plain_decimals(text)
    assert parsed is not None
    expected = np.array([float(v) for v in values])
    assert np.array_equal(parsed, expected)  # bit for bit, signs of zero included
    assert np.array_equal(np.signbit(parsed), np.signbit(expected))


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"1.5\\\\2.0",  # an empty value
        b"1.5\\",
        b" 1.5\\2",  # padding inside a value
        b"1e-05\\2",
        b"+1.5",
        b"1.2.3",
        b"3\\1..2",  # two points in the second value
        b"-",
        b".",
        b"-.\\1",  # a point and a sign, no digit
        b"--5",
        b"5\\7-",
        b"1-2",
        b"1234567890.1234567",  # 17 digits: not exact through the mantissa
        b"abc",
    ],
)
def test_anything_but_plain_decimals_is_left_to_the_general_path(text):
    assert parse_plain_decimals(text) is None


def test_structure_set_contours_read_the_same_by_both_paths():
    import pydicom

    from rtcheck.dicom.structures import _contour_data, _one_contour_data
    from tests.test_cli import PHANTOM

    ds = pydicom.dcmread(next(PHANTOM.glob("RS*.dcm")))
    checked = 0
    for roi in ds.ROIContourSequence:
        contours = list(roi.ContourSequence)
        for fast, contour in zip(_contour_data(contours), contours, strict=True):
            slow = _one_contour_data(contour)
            assert fast is not None and slow is not None
            assert np.array_equal(fast, slow)
            checked += 1
    assert checked > 500
