"""Contours read from a ContourSequence's bytes (rtcheck.dicom.contour_items) against the same
contours read from pydicom's Datasets, on every encoding rtcheck reads, on published structure
sets, and on damaged bytes (read the same as pydicom reads them, or left to pydicom)."""

from __future__ import annotations

import copy
import random
from io import BytesIO

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from rtcheck.dicom.contour_items import MAX_DEPTH, raw_contours
from rtcheck.dicom.structures import _contour, _contours_of, read_structure_set
from tests.external_data import dicompyler_example_data
from tests.test_cli import PHANTOM

CONTOUR_SEQUENCE = Tag(0x3006, 0x0040)


def reread(ds: Dataset, syntax: str) -> Dataset:
    """``ds`` written in ``syntax`` and read back as rtcheck reads files."""
    out = copy.deepcopy(ds)
    out.file_meta.TransferSyntaxUID = syntax
    buffer = BytesIO()
    if syntax == ExplicitVRBigEndian:  # save_as does not change the byte order
        pydicom.dcmwrite(buffer, out, implicit_vr=False, little_endian=False, force_encoding=True)
    else:
        out.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buffer.getvalue()), defer_size="64 KB")


def phantom_rs() -> Dataset:
    return pydicom.dcmread(next(PHANTOM.glob("RS*.dcm")))


def by_pydicom(item: Dataset) -> list:
    """The contours of an ROI item read from pydicom's Datasets (the reference)."""
    return [_contour(c) for c in copy.deepcopy(item).get("ContourSequence", [])]


def assert_same_as_pydicom(ds: Dataset, *, raw_expected: bool = True) -> int:
    """Every ROI's contours read from the bytes equal pydicom's; returns how many were read
    from the bytes."""
    read_raw = 0
    for item in ds.ROIContourSequence:
        element = item.get_item(CONTOUR_SEQUENCE)
        if element is None:
            continue
        raw = raw_contours(element)
        reference = by_pydicom(item)
        if raw is not None:
            read_raw += len(raw)
        fast = _contours_of(item)
        assert [(c.geometric_type, c.raw, c.value_count) for c in fast] == [
            (c.geometric_type, c.raw, c.value_count) for c in reference
        ]
    if raw_expected:
        assert read_raw > 0
    return read_raw


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_phantom_reads_the_same_from_bytes_in_both_little_endian_encodings(syntax):
    ds = reread(phantom_rs(), syntax)
    assert assert_same_as_pydicom(ds) > 500


def test_items_and_nested_sequences_of_undefined_length_are_read_from_bytes():
    # Contour items of undefined length, each with a ContourImageSequence of undefined length
    # (one of defined length beside it), inside a ContourSequence of defined length.
    ds = phantom_rs()
    for roi in ds.ROIContourSequence:
        for n, contour in enumerate(roi.ContourSequence):
            contour.is_undefined_length_sequence_item = True
            image = Dataset()
            image.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            image.ReferencedSOPInstanceUID = f"1.2.3.{n}"
            image.is_undefined_length_sequence_item = n % 2 == 0
            contour.ContourImageSequence = Sequence([image])
            contour["ContourImageSequence"].is_undefined_length = n % 3 != 0
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        assert assert_same_as_pydicom(reread(ds, syntax)) > 500


def test_a_sequence_pydicom_has_converted_or_big_endian_is_left_to_pydicom():
    ds = phantom_rs()
    # An undefined-length ContourSequence is converted by pydicom as the file is read.
    for roi in ds.ROIContourSequence:
        roi["ContourSequence"].is_undefined_length = True
    converted = reread(ds, ExplicitVRLittleEndian)
    assert raw_contours(converted.ROIContourSequence[0].get_item(CONTOUR_SEQUENCE)) is None
    assert_same_as_pydicom(converted, raw_expected=False)
    big = reread(phantom_rs(), ExplicitVRBigEndian)
    assert raw_contours(big.ROIContourSequence[0].get_item(CONTOUR_SEQUENCE)) is None
    assert_same_as_pydicom(big, raw_expected=False)


def test_published_structure_sets_read_the_same_from_bytes():
    # dicompyler-core's Eclipse example (implicit VR, ContourSequences of defined length: read
    # from bytes) and pydicom's rtstruct.dcm (sequences of undefined length, which pydicom
    # converts as it reads the file: left to it).
    eclipse = pydicom.dcmread(dicompyler_example_data() / "rtss.dcm", defer_size="64 KB")
    assert assert_same_as_pydicom(eclipse) > 100
    pydicom_test = pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    assert assert_same_as_pydicom(pydicom_test, raw_expected=False) == 0
    # And the structures rtcheck makes of them are those pydicom's Datasets give.
    for ds in (pydicom_test, eclipse):
        fast = read_structure_set(ds, "x")
        slow = read_structure_set(converted_contours(ds), "x")
        for a, b in zip(fast.structures, slow.structures, strict=True):
            assert (a.name, a.warnings, a.defects, len(a.planes)) == (
                b.name,
                b.warnings,
                b.defects,
                len(b.planes),
            )
            for p, q in zip(a.planes, b.planes, strict=True):
                assert p.z_mm == q.z_mm
                assert all((u == v).all() for u, v in zip(p.polygons, q.polygons, strict=True))


def converted_contours(ds: Dataset) -> Dataset:
    """A copy of ``ds`` whose ContourSequences pydicom has converted (the bytes path unused)."""
    out = copy.deepcopy(ds)
    for item in out.ROIContourSequence:
        if "ContourSequence" in item:
            item.ContourSequence = Sequence(list(item.ContourSequence))
    return out


def contour_sequence_bytes(ds: Dataset) -> tuple[Dataset, bytes]:
    item = ds.ROIContourSequence[1]
    return item, bytes(item.get_item(CONTOUR_SEQUENCE).value)


def with_bytes(item: Dataset, data: bytes) -> Dataset:
    """A copy of the ROI item whose ContourSequence holds ``data`` as written."""
    out = copy.deepcopy(item)
    element = out.get_item(CONTOUR_SEQUENCE)
    out[CONTOUR_SEQUENCE] = element._replace(value=data, length=len(data))
    return out


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_damaged_bytes_are_read_as_pydicom_reads_them_or_left_to_it(syntax):
    # Bytes flipped, runs overwritten, cuts: the reader never raises; where it reads, pydicom
    # reads too, and the same.
    item, data = contour_sequence_bytes(reread(phantom_rs(), syntax))
    rng = random.Random(19)
    read, refused = 0, 0
    for trial in range(300):
        damaged = bytearray(data)
        kind = trial % 3
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif kind == 1:
            start, size = rng.randrange(len(damaged) - 16), rng.randint(4, 16)
            damaged[start : start + size] = bytes(rng.randrange(256) for _ in range(size))
        else:
            damaged = damaged[: rng.randrange(len(damaged))]
        hostile = with_bytes(item, bytes(damaged))
        raw = raw_contours(hostile.get_item(CONTOUR_SEQUENCE))
        if raw is None:
            refused += 1
            continue
        reference = by_pydicom(hostile)  # what the bytes path reads, pydicom reads too
        read += 1
        fast = _contours_of(hostile)
        assert [(c.geometric_type, c.raw) for c in fast] == [
            (c.geometric_type, c.raw) for c in reference
        ]
    assert read > 50 and refused > 50


def test_sequences_nested_deeper_than_the_limit_are_left_to_pydicom():
    ds = phantom_rs()
    contour = ds.ROIContourSequence[1].ContourSequence[0]
    inner = contour
    for _ in range(MAX_DEPTH + 1):
        child = Dataset()
        child.is_undefined_length_sequence_item = True
        inner.ContourImageSequence = Sequence([child])
        inner["ContourImageSequence"].is_undefined_length = True
        inner = child
    inner.ReferencedSOPInstanceUID = "1.2.3"
    item = reread(ds, ImplicitVRLittleEndian).ROIContourSequence[1]
    assert raw_contours(item.get_item(CONTOUR_SEQUENCE)) is None
    assert len(_contours_of(item)) == len(phantom_rs().ROIContourSequence[1].ContourSequence)


def test_a_file_read_with_the_bytes_path_gives_the_same_structures():
    # The whole structure set through rtcheck's reader: the bytes path and pydicom's agree.
    ds = reread(phantom_rs(), ImplicitVRLittleEndian)
    fast = read_structure_set(ds, "x")
    slow = read_structure_set(converted_contours(ds), "x")
    assert [s.name for s in fast.structures] == [s.name for s in slow.structures]
    for a, b in zip(fast.structures, slow.structures, strict=True):
        assert len(a.planes) == len(b.planes) and a.warnings == b.warnings
        for p, q in zip(a.planes, b.planes, strict=True):
            assert (p.z_mm, p.bottom_mm, p.top_mm) == (q.z_mm, q.bottom_mm, q.top_mm)
            assert all((u == v).all() for u, v in zip(p.polygons, q.polygons, strict=True))


def test_contours_that_pydicom_converted_to_numpy_arrays_read_the_same(monkeypatch):
    # A program that imports rtcheck may have asked pydicom for numpy arrays of DS values:
    # converted ContourData is then an array, and is read as the list would be.
    from pydicom import config

    ds = reread(phantom_rs(), ExplicitVRLittleEndian)
    plain = read_structure_set(converted_contours(ds), "x")
    monkeypatch.setattr(config, "use_DS_numpy", True)
    as_arrays = read_structure_set(converted_contours(ds), "x")
    contour = converted_contours(ds).ROIContourSequence[1].ContourSequence[0]
    assert type(contour.ContourData).__module__ == "numpy"
    for a, b in zip(plain.structures, as_arrays.structures, strict=True):
        assert len(a.planes) == len(b.planes) and a.warnings == b.warnings
        for p, q in zip(a.planes, b.planes, strict=True):
            assert all((u == v).all() for u, v in zip(p.polygons, q.polygons, strict=True))
