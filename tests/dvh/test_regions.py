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
from rtcheck.dicom.structures import ContourPlane, Structure
from rtcheck.dvh.engine import compute_dvh, sampling_grid
from rtcheck.dvh.regions import Region
from rtcheck.errors import LimitExceededError
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


@pytest.mark.parametrize("grid", [2.5, 3.0])
def test_lungs_minus_targets_far_apart_are_sampled_part_by_part(tmp_path, grid, monkeypatch):
    # Two lungs 23 mm apart minus a target inside the left one and one in the gap between
    # them: the region is sampled as two parts, each over its own box, and matches the exact
    # answer, and the DVH of one box spanning both.
    left = S.RoiSpec.from_shape("Left", "ORGAN", S.sphere(-35.0, 0.6, 0.3, 28.0), ZS)
    right = S.RoiSpec.from_shape("Right", "ORGAN", S.sphere(36.2, -1.1, -2.0, 20.0), ZS)
    inner = S.RoiSpec.from_shape("PTV1", "PTV", S.cylinder(-38.0, 2.0, 9.0, -12, 12), ZS)
    between = S.RoiSpec.from_shape("PTV2", "PTV", S.cylinder(4.5, 0.0, 5.0, -8, 8), ZS)
    plan = load_plan(
        [
            write_case(
                tmp_path, [left, right, inner, between], field, grid, lo=(-75,) * 3, hi=(75,) * 3
            )
        ]
    )
    rois = plan.structure_set
    region = Region(
        "Lungs-PTVs",
        (rois.by_name("Left"), rois.by_name("Right")),
        (rois.by_name("PTV1"), rois.by_name("PTV2")),
    )
    parts = region.apart(margin_mm=2.0)
    assert [[s.name for s in p.plus] for p in parts] == [["Left"], ["Right"]]
    assert [[s.name for s in p.minus] for p in parts] == [["PTV1"], []]
    # With a margin that reaches the target in the gap, it is subtracted from both parts.
    parts = region.apart(margin_mm=8.0)
    assert [[s.name for s in p.minus] for p in parts] == [["PTV1", "PTV2"], ["PTV2"]]
    split = Region.apart
    seen: list[int] = []

    def counted(self, margin_mm):
        parts = split(self, margin_mm)
        seen.append(len(parts))
        return parts

    monkeypatch.setattr(Region, "apart", counted)
    outlines: dict[float, list[np.ndarray]] = {}
    for roi in (left, right):
        for z, polys in roi.planes:
            outlines.setdefault(z, []).extend(polys)
    holes = dict(inner.planes)
    slabs = [Slab(z, T, polys, holes.get(z, [])) for z, polys in sorted(outlines.items())]
    parted = compute_dvh(region, plan.doses[0].grid)
    assert seen == [2]  # the DVH was made of two parts
    assert_matches_truth(parted, LinearFieldTruth(slabs, OFFSET, GRADIENT, "x"))
    monkeypatch.setattr(Region, "apart", lambda self, margin_mm: [self])
    whole = compute_dvh(region, plan.doses[0].grid)
    assert parted.volume_cc == pytest.approx(whole.volume_cc, rel=1e-9)
    assert parted.mean_gy == pytest.approx(whole.mean_gy, abs=1e-6)
    for v in (0.03, 1.0, 10.0, 50.0):
        assert parted.dose_at_volume(v) == pytest.approx(whole.dose_at_volume(v), abs=2e-3)


def test_rois_whose_boxes_meet_stay_one_part():
    def square(name, x0, planes=(0.0, 1.0)):
        polygon = np.array([[x0, 0.0], [x0 + 10.0, 0.0], [x0 + 10.0, 10.0], [x0, 10.0]])
        return Structure(
            1, name, "ORGAN", tuple(ContourPlane(z, (polygon,), z - 0.5, z + 0.5) for z in planes)
            , ()
        )  # fmt: skip

    a, b, c = square("A", 0.0), square("B", 13.0), square("C", 40.0)
    assert Region("AB", (a, b)).apart(margin_mm=2.0)[0].plus == (a, b)  # 3 mm apart: they meet
    assert len(Region("AB", (a, b)).apart(margin_mm=1.0)) == 2
    # A chain: A meets B, B meets C only with a wide margin; then all three are one part.
    assert len(Region("ABC", (a, b, c)).apart(margin_mm=2.0)) == 2
    assert len(Region("ABC", (a, b, c)).apart(margin_mm=9.0)) == 1
    empty = Structure(2, "E", "ORGAN", (), ())
    assert [p.plus for p in Region("AE", (a, empty)).apart(margin_mm=1.0)] == [(a, empty)]


def test_the_cap_on_samples_holds_for_a_region_sampled_part_by_part(tmp_path, monkeypatch):
    # Each lung alone is under the cap, both together are not: the region is refused, as it
    # was when one box spanned both.
    left = S.RoiSpec.from_shape("Left", "ORGAN", S.sphere(-35.0, 0.6, 0.3, 28.0), ZS)
    right = S.RoiSpec.from_shape("Right", "ORGAN", S.sphere(36.2, -1.1, -2.0, 20.0), ZS)
    plan = load_plan([write_case(tmp_path, [left, right], field, 2.5, lo=(-75,) * 3, hi=(75,) * 3)])
    rois = plan.structure_set
    dose = plan.doses[0].grid
    each = [
        sampling_grid(Region.of(r), dose, 1.25).nx
        * sampling_grid(Region.of(r), dose, 1.25).ny
        * len(Region.of(r).slabs())
        for r in (rois.by_name("Left"), rois.by_name("Right"))
    ]
    monkeypatch.setenv("RTCHECK_MAX_SAMPLES_PER_ROI", str(max(each) + 1))
    for r in (rois.by_name("Left"), rois.by_name("Right")):
        compute_dvh(r, dose, spacing_mm=1.25)
    with pytest.raises(LimitExceededError, match="RTCHECK_MAX_SAMPLES_PER_ROI"):
        compute_dvh(Region("Both", (rois.by_name("Left"), rois.by_name("Right"))), dose, 1.25)
