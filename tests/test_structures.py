"""RTSTRUCT reading: even-odd holes, slab thickness, degenerate and empty ROIs."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from rtcheck import synthetic as S
from rtcheck.dvh import compute_dvh
from rtcheck.errors import InvalidStructureError
from rtcheck.plan import load_plan
from rtcheck.plandvh import select_structures, structure_dvhs
from rtcheck.structures import read_structure_set
from tests.conftest import write_case
from tests.truth import polygon_area


def flat(x, y, z):
    return 30.0 + 0 * x + 0 * y + 0 * z


def test_inner_contour_is_a_hole_and_slabs_have_no_end_caps(tmp_path):
    zs = list(np.arange(-10, 10.01, 2.5))
    ring = S.RoiSpec.from_shape("Ring", "ORGAN", S.ring(0, 0, 6, 15, -10, 10), zs)
    folder = write_case(tmp_path, [ring], flat, 3.0, lo=(-30,) * 3, hi=(30,) * 3)
    plan = load_plan([folder])
    structure = plan.structure_set.by_name("Ring")
    assert structure.slab_thickness_mm == pytest.approx(2.5)
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


def test_roi_without_contours_is_listed_as_empty_and_refused_when_asked(tmp_path):
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
    with pytest.raises(InvalidStructureError, match="no closed contours"):
        select_structures(plan, ["Stomach"])
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
    assert structures[0].slab_thickness_mm == pytest.approx(1.5)
    assert structures[1].slab_thickness_mm == pytest.approx(1.5)  # one plane: the set's spacing
