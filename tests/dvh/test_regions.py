"""Derived regions (unions and subtractions of ROIs) against exact analytical DVHs.

The union of two disjoint ROIs and an ROI minus an ROI wholly inside it have exact answers: the
slabs of both outlines, and the outline with the other as a hole. The shapes are organ-sized and
sampled as organs are, near the dose grid spacing. (The signed moments of a region's boundary
pixels are checked one by one in test_occupancy.) Tolerances as in test_dvh_analytical.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.regions import Region
from rtcheck.phantom import synthetic as S
from tests.conftest import write_case
from tests.dvh.test_dvh_analytical import assert_matches_truth
from tests.truth import LinearFieldTruth, Slab

T = 2.0  # contour spacing (mm)
ZS = np.arange(-30.0, 30.0, T) + 0.37 * T
OFFSET, GRADIENT = 120.0, 1.5  # Gy, Gy/mm


def field(x, y, z):
    return OFFSET + GRADIENT * x + 0 * y + 0 * z


@pytest.mark.parametrize("grid", [2.5, 3.0])
def test_roi_minus_an_inner_roi_is_the_shell(tmp_path, grid):
    outer = S.RoiSpec.from_shape("Outer", "ORGAN", S.cylinder(0.4, -0.3, 60.0, -25, 25), ZS)
    inner = S.RoiSpec.from_shape("Inner", "PTV", S.cylinder(3.1, 1.7, 25.0, -15, 15), ZS)
    plan = load_plan(
        [write_case(tmp_path, [outer, inner], field, grid, lo=(-75,) * 3, hi=(75,) * 3)]
    )
    rois = plan.structure_set
    region = Region("Outer-Inner", (rois.by_name("Outer"),), (rois.by_name("Inner"),))
    holes = dict(inner.planes)
    slabs = [Slab(z, T, polys, holes.get(z, [])) for z, polys in outer.planes]
    assert_matches_truth(
        compute_dvh(region, plan.doses[0].grid),
        LinearFieldTruth(slabs, OFFSET, GRADIENT, "x"),
    )


@pytest.mark.parametrize("grid", [2.5, 3.0])
def test_union_of_disjoint_rois_is_both(tmp_path, grid):
    left = S.RoiSpec.from_shape("Left", "ORGAN", S.sphere(-35.0, 0.6, 0.3, 28.0), ZS)
    right = S.RoiSpec.from_shape("Right", "ORGAN", S.sphere(36.2, -1.1, -2.0, 20.0), ZS)
    plan = load_plan(
        [write_case(tmp_path, [left, right], field, grid, lo=(-75,) * 3, hi=(75,) * 3)]
    )
    rois = plan.structure_set
    region = Region("Both", (rois.by_name("Left"), rois.by_name("Right")))
    outlines: dict[float, list[np.ndarray]] = {}
    for roi in (left, right):
        for z, polys in roi.planes:
            outlines.setdefault(z, []).extend(polys)
    slabs = [Slab(z, T, polys, []) for z, polys in sorted(outlines.items())]
    assert_matches_truth(
        compute_dvh(region, plan.doses[0].grid),
        LinearFieldTruth(slabs, OFFSET, GRADIENT, "x"),
    )
