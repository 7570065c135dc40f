"""The slab each contour plane stands for, and the end-cap conventions, against exact values."""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.slabs import EndCaps, capped_bounds, slab_bounds
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.regions import Region
from rtcheck.phantom import synthetic as S
from tests.conftest import write_case
from tests.dvh.test_dvh_analytical import assert_matches_truth
from tests.truth import LinearFieldTruth, Slab, polygon_area


def test_evenly_spaced_planes_tile_the_axis():
    bottom, top = slab_bounds([0.0, 2.5, 5.0, 7.5])
    assert bottom == pytest.approx([-1.25, 1.25, 3.75, 6.25])
    assert top == pytest.approx([1.25, 3.75, 6.25, 8.75])


def test_a_contouring_gap_stays_a_gap():
    # 3 mm slices with one gap of 24 mm (no ROI on the slices in between) and another of 45 mm.
    zs = [0.0, 3.0, 6.0, 30.0, 33.0, 36.0, 39.0, 84.0, 87.0]
    bottom, top = slab_bounds(zs)
    assert top - bottom == pytest.approx(np.full(len(zs), 3.0))
    assert top[2] == pytest.approx(7.5) and bottom[3] == pytest.approx(28.5)


def test_an_isolated_plane_gets_the_typical_slice():
    bottom, top = slab_bounds([0.0, 2.0, 4.0, 6.0, 50.0, 90.0, 92.0])
    assert (bottom[4], top[4]) == pytest.approx((49.0, 51.0))


def test_two_recurring_slice_steps_both_tile():
    zs = [0.0, 5.0, 10.0, 12.5, 15.0, 17.5, 20.0, 25.0, 30.0]
    bottom, top = slab_bounds(zs)
    assert top[:-1] == pytest.approx(bottom[1:])
    assert (bottom[0], top[-1]) == pytest.approx((-2.5, 32.5))


def test_decimal_rounding_of_positions_does_not_break_the_tiling():
    zs = np.round(np.arange(0, 30, 3.0) + 0.123456, 2)
    bottom, top = slab_bounds(list(zs))
    assert top[:-1] == pytest.approx(bottom[1:])


def test_end_caps_none_ends_each_run_at_its_outermost_planes():
    z = np.array([0.0, 3.0, 6.0, 30.0, 60.0, 63.0])
    bottom, top = z - 1.5, z + 1.5
    low, high = capped_bounds(bottom, top, z, EndCaps.NONE)
    assert low == pytest.approx([0.0, 1.5, 4.5, 28.5, 60.0, 61.5])
    assert high == pytest.approx([1.5, 4.5, 6.0, 31.5, 61.5, 63.0])  # a lone plane keeps its slab
    assert capped_bounds(bottom, top, z, EndCaps.HALF_SLAB) == (bottom, top)


def flat(x, y, z):
    return 20.0 + 0 * x + 0 * y + 0 * z


@pytest.mark.parametrize("t", [2.0, 2.5, 3.0])
def test_cylinder_volume_under_each_end_cap_convention(tmp_path, t):
    # A cylinder of radius 10 mm contoured every t mm over a height h: half-slab gives h + t,
    # none gives h (the regular polygon's exact area, not pi r^2).
    n = 9
    zs = [0.3 + t * k for k in range(n)]
    h = zs[-1] - zs[0]
    roi = S.RoiSpec.from_shape("Cyl", "ORGAN", S.cylinder(0, 0, 10, -100, 100), zs)
    folder = write_case(tmp_path, [roi], flat, 2.0, lo=(-30,) * 3, hi=(40,) * 3)
    plan = load_plan([folder])
    structure, grid = plan.structure_set.structures[0], plan.doses[0].grid
    area = polygon_area(roi.planes[0][1][0])
    half = compute_dvh(structure, grid)
    none = compute_dvh(structure, grid, end_caps=EndCaps.NONE)
    # In-plane coverage is exact along x and sampled on scanlines along y (within 0.1 %); the
    # ratio of the two conventions shares it and is exact.
    assert half.volume_cc == pytest.approx(area * (h + t) / 1000, rel=1e-3)
    assert none.volume_cc == pytest.approx(area * h / 1000, rel=1e-3)
    assert none.volume_cc / half.volume_cc == pytest.approx(h / (h + t), rel=1e-9)


def test_end_caps_none_against_the_exact_dvh_in_a_field_along_z(tmp_path):
    # A sphere contoured every 2.5 mm in a dose rising 1.5 Gy/mm along z: without end caps, the
    # outermost planes stand for the inner half of their slab only.
    t, gradient, offset = 2.5, 1.5, 50.0
    zs = list(np.arange(-15, 15.01, t) + 0.41)
    roi = S.RoiSpec.from_shape("Sphere", "PTV", S.sphere(0, 0, 0, 14.0), zs)
    folder = write_case(
        tmp_path, [roi], lambda x, y, z: offset + gradient * z + 0 * x + 0 * y, 2.0,
        lo=(-30,) * 3, hi=(30,) * 3,
    )  # fmt: skip
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.structures[0], plan.doses[0].grid, end_caps=EndCaps.NONE)
    planes = roi.planes
    slabs = [Slab(z, t, polys[:1], []) for z, polys in planes[1:-1]]
    (z_first, first), (z_last, last) = planes[0], planes[-1]
    slabs += [Slab(z_first + t / 4, t / 2, first, []), Slab(z_last - t / 4, t / 2, last, [])]
    assert_matches_truth(dvh, LinearFieldTruth(slabs, offset, gradient, "z"))


def test_a_union_of_rois_ending_at_different_planes_is_exact_without_end_caps(tmp_path):
    # Lungs = left + right, the right ending 6 mm higher: each lung loses its own end caps.
    t = 3.0
    zs = [0.5 + t * k for k in range(8)]
    left = S.RoiSpec.from_shape("Lung_L", "ORGAN", S.cylinder(-25, 0, 10, -100, 100), zs[:6])
    right = S.RoiSpec.from_shape("Lung_R", "ORGAN", S.cylinder(25, 0, 10, -100, 100), zs)
    folder = write_case(tmp_path, [left, right], flat, 2.0, lo=(-50,) * 3, hi=(50,) * 3)
    plan = load_plan([folder])
    rois = plan.structure_set.structures
    region = Region("Lungs", (rois[0], rois[1]))
    single = [compute_dvh(r, plan.doses[0].grid, end_caps=EndCaps.NONE).volume_cc for r in rois]
    union = compute_dvh(region, plan.doses[0].grid, end_caps=EndCaps.NONE).volume_cc
    assert union == pytest.approx(sum(single), rel=1e-6)
    area = polygon_area(right.planes[0][1][0])
    assert single[0] == pytest.approx(area * 5 * t / 1000, rel=1e-3)
    assert single[1] == pytest.approx(area * 7 * t / 1000, rel=1e-3)


def test_a_far_away_part_does_not_change_how_the_rest_is_sampled(tmp_path):
    # The same sphere alone, and with a small stray contour 170 mm away in a hotter region: the
    # sphere's part of the DVH must not change (its Min moved by 0.34 Gy before).
    zs = list(np.arange(-12, 12.01, 2.0) + 0.3)
    sphere = S.sphere(0, 0, 0, 11.0)
    alone = S.RoiSpec.from_shape("Alone", "ORGAN", sphere, zs)
    stray = S.RoiSpec.from_shape("Stray", "ORGAN", sphere, zs)
    stray.planes[6][1].append(S.circle(120, 120, 2.0))

    def field(x, y, z):
        return 30.0 + 0.005 * (x + 20) ** 2 + 0.3 * y + 0.2 * z

    folder = write_case(tmp_path, [alone, stray], field, 3.0, lo=(-40,) * 3, hi=(170,) * 3)
    plan = load_plan([folder])
    grid = plan.doses[0].grid
    a = compute_dvh(plan.structure_set.by_name("Alone"), grid)
    b = compute_dvh(plan.structure_set.by_name("Stray"), grid)
    stray_cc = polygon_area(S.circle(120, 120, 2.0)) * 2.0 / 1000
    assert b.volume_cc - a.volume_cc == pytest.approx(stray_cc, rel=1e-2)
    assert b.min_gy == pytest.approx(a.min_gy, abs=1e-6)
    # Every dose below the stray part's (about 160 Gy) sees the same volume, to rounding.
    extra = b.volume_cc - a.volume_cc
    for fraction in (0.02, 0.5, 0.98):
        assert b.dose_at_volume(a.volume_cc * fraction + extra) == pytest.approx(
            a.dose_at_volume(a.volume_cc * fraction), abs=1e-6
        )
