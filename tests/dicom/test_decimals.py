"""The fast decimal-string reader against Python's float, value by value."""

from __future__ import annotations

import random
from io import BytesIO

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
        b"abc",
    ],
)
def test_anything_but_plain_decimals_is_left_to_the_general_path(text):
    assert parse_plain_decimals(text) is None


@pytest.mark.parametrize(
    "text",
    [
        b"-0\\0\\-0.0\\-0.000\\5\\-0",  # JSON reads an integer -0 as 0: the sign is kept
        b".5\\-.25\\5.\\007\\-007.50\\0.5",  # plain decimals that JSON does not allow
        b"1234567890.1234567\\0.12345678901234567890123",  # beyond 15 digits: still exact
        b"9007199254740993\\-9007199254740995",  # integers beyond 2**53: rounded as float
    ],
)
def test_every_plain_form_reads_as_float_reads_it(text):
    parsed = parse_plain_decimals(text)
    expected = np.array([float(v) for v in text.split(b"\\")])
    assert parsed is not None
    assert np.array_equal(parsed, expected)
    assert np.array_equal(np.signbit(parsed), np.signbit(expected))


def test_an_integer_beyond_64_bits_is_left_to_the_general_path():
    assert parse_plain_decimals(b"1\\18446744073709551616") is None


def test_both_readers_agree_on_values_json_also_reads():
    from rtcheck.dicom.decimals import _as_json, _by_array_passes

    rng = np.random.default_rng(3)
    values = [f"{v:.{rng.integers(0, 6)}f}" for v in rng.uniform(-500, 500, 50_000)]
    text = "\\".join(values).encode()
    b = np.frombuffer(text, dtype=np.uint8)
    fast, passes = _as_json(text), _by_array_passes(b)
    assert fast is not None and passes is not None
    assert np.array_equal(fast, passes) and np.array_equal(np.signbit(fast), np.signbit(passes))


@pytest.mark.parametrize("chunk", [1, 5, 16, 64, 4096])
def test_text_read_in_pieces_reads_as_float_reads_it_and_refuses_the_same(monkeypatch, chunk):
    from rtcheck.dicom import decimals

    monkeypatch.setattr(decimals, "JSON_CHUNK_BYTES", chunk)
    rng = random.Random(chunk)
    forms = ["-0", "0", "-0.0", "12.5", "-180", "7", "123456789012345", "-0.000001", "3.25"]
    for _ in range(200):
        values = [rng.choice(forms) for _ in range(rng.randint(1, 40))]
        text = "\\".join(values).encode()
        parsed = parse_plain_decimals(text)
        expected = np.array([float(v) for v in values])
        assert parsed is not None and np.array_equal(parsed, expected), text
        assert np.array_equal(np.signbit(parsed), np.signbit(expected)), text
        # An empty value anywhere (at a piece's edge too), a leading or trailing separator, and
        # a value JSON does not read are refused by the pieces as by the whole.
        cut = rng.randint(0, len(values))
        for bad in (
            "\\".join([*values[:cut], "", *values[cut:]]),
            "\\" + "\\".join(values),
            "\\".join(values) + "\\",
            "\\".join([*values[:cut], "007", *values[cut:]]),
        ):
            assert decimals._as_json(bad.encode()) is None, bad


def test_structure_set_contours_read_the_same_by_both_paths():
    import pydicom

    from rtcheck.dicom.structures import _contour, _contour_data, _one_contour_data
    from tests.test_cli import PHANTOM

    ds = pydicom.dcmread(next(PHANTOM.glob("RS*.dcm")))
    checked = 0
    for roi in ds.ROIContourSequence:
        contours = [_contour(c) for c in roi.ContourSequence]
        values, sizes = _contour_data(contours)
        assert sizes.sum() == values.size
        for fast, contour in zip(np.split(values, np.cumsum(sizes)[:-1]), contours, strict=True):
            slow = _one_contour_data(contour)
            assert fast is not None and slow is not None
            assert np.array_equal(fast, slow)
            checked += 1
    assert checked > 500


def test_an_roi_with_exponents_is_read_by_the_general_path_and_the_others_stay_exact():
    # One contour of one ROI written with exponents (valid DS, not plain): the set's one-pass
    # read gives way to ROI-by-ROI reading; every ROI's polygons are those of pydicom's
    # converted values, read one by one by float.
    import copy

    import pydicom
    from pydicom.sequence import Sequence

    from rtcheck.dicom.structures import read_structure_set
    from tests.test_cli import PHANTOM

    ds = pydicom.dcmread(next(PHANTOM.glob("RS*.dcm")))
    names = [info.ROIName for info in ds.StructureSetROISequence]
    cord = ds.ROIContourSequence[names.index("Cord")]
    contour = cord.ContourSequence[3]
    contour.ContourData = [f"{float(v):.6e}" for v in contour.ContourData]
    written = BytesIO()
    ds.save_as(written)
    fast = read_structure_set(pydicom.dcmread(BytesIO(written.getvalue())), "x")
    converted = pydicom.dcmread(BytesIO(written.getvalue()))
    for item in converted.ROIContourSequence:
        item.ContourSequence = Sequence([copy.deepcopy(c) for c in item.ContourSequence])
        for c in item.ContourSequence:
            c.ContourData = [float(v) for v in c.ContourData]
    slow = read_structure_set(converted, "x")
    assert len(fast.structures) == len(slow.structures) > 5
    for a, b in zip(fast.structures, slow.structures, strict=True):
        assert len(a.planes) == len(b.planes)
        for p, q in zip(a.planes, b.planes, strict=True):
            assert all(np.array_equal(u, v) for u, v in zip(p.polygons, q.polygons, strict=True))
