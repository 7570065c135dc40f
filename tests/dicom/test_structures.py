"""RTSTRUCT reading: even-odd holes, slab thickness, degenerate and empty ROIs."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.structures import read_structure_set
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.plandvh import select_structures, structure_dvhs
from rtcheck.errors import InvalidStructureError
from rtcheck.phantom import synthetic as S
from tests.conftest import write_case
from tests.truth import polygon_area


def flat(x, y, z):
    return 30.0 + 0 * x + 0 * y + 0 * z


def test_inner_contour_is_a_hole_and_planes_stand_for_their_slices(tmp_path):
    zs = list(np.arange(-10, 10.01, 2.5))
    ring = S.RoiSpec.from_shape("Ring", "ORGAN", S.ring(0, 0, 6, 15, -10, 10), zs)
    folder = write_case(tmp_path, [ring], flat, 3.0, lo=(-30,) * 3, hi=(30,) * 3)
    plan = load_plan([folder])
    structure = plan.structure_set.by_name("Ring")
    bottom, top = structure.slabs()
    assert top - bottom == pytest.approx(np.full(len(zs), 2.5))
    outer, inner = ring.planes[0][1]
    exact = len(zs) * 2.5 * (polygon_area(outer) - polygon_area(inner)) / 1000
    assert compute_dvh(structure, plan.doses[0].grid).volume_cc == pytest.approx(exact, rel=1e-3)


def test_overlapping_contours_on_one_plane_combine_by_even_odd(tmp_path):
    square = np.array([[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]])
    shifted = square + [10.0, 0.0]
    roi = S.RoiSpec("Pair", "ORGAN", [(z, [square, shifted]) for z in (-1.0, 1.0)])
    folder = write_case(tmp_path, [roi], flat, 2.0, lo=(-30,) * 3, hi=(30,) * 3)
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.by_name("Pair"), plan.doses[0].grid)
    # The 10 x 20 mm overlap is covered twice, so even-odd leaves it out: 2 x 200 mm2.
    assert dvh.volume_cc == pytest.approx(2 * 400 * 2.0 / 1000, rel=1e-6)


def test_degenerate_contours_are_skipped_with_a_warning(tmp_path):
    zs = list(np.arange(-6, 6.01, 2.0))
    roi = S.RoiSpec.from_shape("Lesion", "GTV", S.sphere(0, 0, 0, 7.0), zs)
    ds = S.build_rtstruct([roi], S.Patient(), S.uid("deg"))
    contours = ds.ROIContourSequence[0].ContourSequence
    contours[0].ContourData = ["1.0", "2.0", "0.0", "3.0", "4.0", "0.0"]  # two points
    contours[1].ContourData = ["1.0", "2.0", "0.0", "3.0"]  # not triplets
    contours[2].ContourData = ["0", "0", "0", "5", "0", "1", "5", "5", "2"]  # not axial
    structure = read_structure_set(ds, "test").structures[0]
    assert len(structure.planes) == len(zs) - 3
    text = " ".join(structure.warnings)
    assert "'Lesion'" in text
    assert "fewer than 3 points" in text and "triplets" in text and "axial" in text


@pytest.mark.parametrize("from_bytes", [True, False])
def test_contours_beside_a_skipped_one_keep_their_own_points(from_bytes):
    # The contours' values are read into one array and the polygons cut from it: a contour
    # whose ContourData is not in triplets, or absent, between others must not shift them.
    from io import BytesIO

    zs = list(np.arange(-6, 6.01, 2.0))
    roi = S.RoiSpec.from_shape("Lesion", "GTV", S.sphere(0, 0, 0, 7.0), zs)

    def read(ds):
        if from_bytes:  # the decimal text as written, read by the one-pass reader
            written = BytesIO()
            ds.save_as(written)
            ds = pydicom.dcmread(BytesIO(written.getvalue()), force=True)
        return read_structure_set(ds, "test").structures[0]

    clean = read(S.build_rtstruct([roi], S.Patient(), S.uid("keep")))
    ds = S.build_rtstruct([roi], S.Patient(), S.uid("keep"))
    contours = ds.ROIContourSequence[0].ContourSequence
    contours[2].ContourData = list(contours[2].ContourData)[:4]  # not triplets
    del contours[4].ContourData
    damaged = read(ds)
    assert "triplets" in " ".join(damaged.warnings)
    kept = [p for i, p in enumerate(clean.planes) if i not in (2, 4)]
    assert [p.z_mm for p in damaged.planes] == [p.z_mm for p in kept]
    for a, b in zip(damaged.planes, kept, strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(a.polygons, b.polygons, strict=True))


def test_roi_without_contours_is_listed_as_empty_also_when_asked_by_name(tmp_path):
    zs = list(np.arange(-6, 6.01, 2.0))
    rois = [
        S.RoiSpec.from_shape("Heart", "ORGAN", S.sphere(0, 0, 0, 7.0), zs),
        S.RoiSpec("Stomach", "ORGAN", []),
        S.RoiSpec.from_shape("BODY", "EXTERNAL", S.sphere(0, 0, 0, 14.0), zs),
    ]
    folder = write_case(tmp_path, rois, flat, 2.0, lo=(-30,) * 3, hi=(30,) * 3)
    plan = load_plan([folder])
    chosen = select_structures(plan)
    assert [s.name for s in chosen] == ["Heart", "Stomach"]  # not the body outline
    results = structure_dvhs(plan, chosen, ["Mean[Gy]"])
    empty = next(r for r in results if r.structure.name == "Stomach")
    assert empty.dvh is None and math.isnan(empty.metrics["Mean[Gy]"])
    assert any("no contours" in w for w in empty.warnings)
    named = structure_dvhs(plan, select_structures(plan, ["Stomach"]), ["D2cc[Gy]"])
    assert named[0].dvh is None and math.isnan(named[0].metrics["D2cc[Gy]"])
    assert any("no contours" in w for w in named[0].warnings)
    with pytest.raises(InvalidStructureError, match="no ROI named"):
        select_structures(plan, ["Liver"])
    assert [s.name for s in select_structures(plan, ["heart"])] == ["Heart"]


def test_contour_plane_spacing_is_read_from_the_file(tmp_path):
    zs = list(np.arange(-6, 6.01, 1.5))
    roi = S.RoiSpec.from_shape("Cord", "ORGAN", S.cylinder(0, 0, 5, -6, 6), zs)
    single = S.RoiSpec("Dot", "MARKER", [(0.0, [S.circle(10, 10, 3)])])
    ds = S.build_rtstruct([roi, single], S.Patient(), S.uid("sp"))
    path = tmp_path / "rs.dcm"
    S.save(ds, str(path))
    structures = read_structure_set(pydicom.dcmread(path), str(path)).structures
    bottom, top = structures[0].slabs()
    assert top - bottom == pytest.approx(np.full(len(zs), 1.5))
    assert structures[1].slabs() == (pytest.approx([-0.75]), pytest.approx([0.75]))


def read_set(tmp_path, rois):
    ds = S.build_rtstruct(rois, S.Patient(), S.uid("slabs"))
    path = tmp_path / "rs.dcm"
    S.save(ds, str(path))
    return read_structure_set(pydicom.dcmread(path), str(path))


def exact_volume_cc(planes, slab_mm):
    """Exact volume of single-polygon planes, each standing for ``slab_mm`` of z."""
    return (
        sum(polygon_area(polys[0]) * t for (_, polys), t in zip(planes, slab_mm, strict=True))
        / 1000
    )


def test_sparse_roi_planes_stand_for_their_slices_not_the_gaps_between_them(tmp_path):
    # A 3 mm CT: the body is on every slice, the nodes on a run, an isolated slice and another
    # run. Each node plane stands for its own 3 mm slice; the gaps stay gaps.
    body_zs = [round(-30 + 3 * i + 0.56, 2) for i in range(40)]
    node_zs = [body_zs[i] for i in (2, 3, 12, 27, 35)]
    nodes = S.RoiSpec("Nodes", "ORGAN", [(z, [S.circle(5, 5, 4 + (z % 2))]) for z in node_zs])
    body = S.RoiSpec.from_shape("BODY", "EXTERNAL", S.cylinder(0, 0, 60, -100, 100), body_zs)
    structure_set = read_set(tmp_path, [body, nodes])
    roi = structure_set.by_name("Nodes")
    bottom, top = roi.slabs()
    assert top - bottom == pytest.approx(np.full(5, 3.0))
    assert bottom == pytest.approx(np.array(node_zs) - 1.5)
    folder = write_case(tmp_path / "case", [body, nodes], flat, 3.0, lo=(-70,) * 3, hi=(70,) * 3)
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.by_name("Nodes"), plan.doses[0].grid)
    exact = exact_volume_cc(nodes.planes, [3.0] * 5)
    assert dvh.volume_cc == pytest.approx(exact, rel=1e-3)


def test_a_set_of_scattered_planes_takes_its_smallest_gap_as_the_slice(tmp_path):
    # The example: an ROI on planes 24.56, 69.56 and 72.56 mm and nothing else. The
    # median gap (24 mm) made its volume 8 times too large.
    zs = [24.56, 69.56, 72.56]
    roi = S.RoiSpec("Lesions", "GTV", [(z, [S.circle(0, 0, 6)]) for z in zs])
    bottom, top = read_set(tmp_path, [roi]).structures[0].slabs()
    assert bottom == pytest.approx([23.06, 68.06, 71.06])
    assert top == pytest.approx([26.06, 71.06, 74.06])


def test_a_series_whose_slice_spacing_changes_is_tiled_exactly(tmp_path):
    # 5 mm slices, 3 mm through the middle, 5 mm again: slabs end half-way between planes.
    zs = [-40.0, -35.0, -30.0, -25.0, -22.0, -19.0, -16.0, -13.0, -10.0, -5.0, 0.0, 5.0]
    roi = S.RoiSpec("Body", "EXTERNAL", [(z, [S.circle(0, 0, 20)]) for z in zs])
    bottom, top = read_set(tmp_path, [roi]).structures[0].slabs()
    assert top[:-1] == pytest.approx(bottom[1:])  # no gap, no overlap
    assert bottom[0] == pytest.approx(-42.5) and top[-1] == pytest.approx(7.5)
    assert top[3] == pytest.approx(-23.5)  # half-way between -25 and -22


def test_every_contour_on_one_plane_is_refused(tmp_path):
    roi = S.RoiSpec("Dot", "MARKER", [(0.0, [S.circle(10, 10, 3)])])
    with pytest.raises(InvalidStructureError, match="slice spacing"):
        read_set(tmp_path, [roi])
