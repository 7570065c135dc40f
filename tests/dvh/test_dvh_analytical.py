"""rtcheck's DVHs against exact analytical DVHs of contoured shapes in linear dose fields.

Tolerances (from the project's targets): volume within 1 %, every D-metric and the mean within
0.3 Gy. The fields have gradients of 1-2 Gy/mm, steeper than most of an organ sees, so that
sampling errors show up.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.engine import compute_dvh, sampling_grid
from rtcheck.dvh.metrics import evaluate_metric
from rtcheck.dvh.regions import Region
from rtcheck.phantom import synthetic as S
from tests.conftest import write_case
from tests.truth import LinearFieldTruth, slabs_from_planes

VOLUME_TOLERANCE = 0.001  # the target is 1 %; measured worst 0.04 %
DOSE_TOLERANCE_GY = 0.03  # the target is 0.3 Gy; measured worst 0.009 Gy


def shape(kind: str, radius: float):
    if kind == "sphere":
        return S.sphere(1.3, -0.7, 0.4, radius)
    if kind == "cylinder":
        return S.cylinder(0.6, 0.2, radius, -radius, radius)
    if kind == "cone":
        return S.cone(-0.4, 0.9, radius, -radius, radius)
    if kind == "ring":
        return S.ring(0.3, -0.2, radius / 2, radius, -radius, radius)
    raise ValueError(kind)


CASES = [
    # (shape, radius mm, contour spacing mm, dose grid mm, field axis, gradient Gy/mm)
    ("sphere", 6, 2.5, 4.0, "x", 1.0),
    ("sphere", 6, 2.5, 4.0, "z", 1.0),
    ("sphere", 6, 1.0, 2.5, "x", 2.0),
    ("sphere", 10, 2.0, 3.0, "z", 1.5),
    ("sphere", 20, 2.5, 4.0, "x", 1.0),
    ("sphere", 20, 1.0, 1.0, "z", 0.5),
    ("cylinder", 6, 2.5, 4.0, "x", 1.0),
    ("cylinder", 12, 1.5, 2.0, "z", 1.0),
    ("cylinder", 20, 2.5, 4.0, "x", 1.5),
    ("cone", 8, 1.0, 2.5, "x", 1.0),
    ("cone", 15, 2.5, 3.0, "z", 1.0),
    ("cone", 20, 2.0, 4.0, "x", 2.0),
    ("ring", 8, 2.0, 2.5, "x", 1.0),
    ("ring", 14, 2.5, 4.0, "z", 1.0),
    ("ring", 20, 1.0, 3.0, "x", 1.0),
]

METRICS = ["D99%", "D98%", "D95%", "D90%", "D50%", "D10%", "D5%", "D2%", "D1%"]


# Organ-sized shapes: sampled at the dose grid spacing, their boundaries resolved only by the
# fractional coverage and its centroid.
LARGE_CASES = [
    ("sphere", 70, 2.5, 4.0, "x", 1.0),
    ("cylinder", 70, 2.5, 4.0, "z", 1.5),
    ("ring", 60, 2.0, 3.0, "x", 1.0),
    ("cone", 60, 2.5, 3.0, "x", 2.0),
]


@pytest.mark.parametrize(("kind", "radius", "t", "grid", "axis", "gradient"), CASES)
def test_against_analytical_dvh(tmp_path, kind, radius, t, grid, axis, gradient):
    check_against_truth(tmp_path, kind, radius, t, grid, axis, gradient, offset=70.0, half_box=33.0)


@pytest.mark.parametrize(("kind", "radius", "t", "grid", "axis", "gradient"), LARGE_CASES)
def test_large_shapes_against_analytical_dvh(tmp_path, kind, radius, t, grid, axis, gradient):
    half_box = radius + 13.0
    check_against_truth(
        tmp_path, kind, radius, t, grid, axis, gradient, offset=150.0, half_box=half_box
    )
    dose = load_plan([tmp_path]).doses[0].grid
    assert sampling_grid(region_of(tmp_path), dose).spacing_mm == pytest.approx(grid)


def region_of(folder):
    return Region.of(load_plan([folder]).structure_set.structures[0])


def check_against_truth(tmp_path, kind, radius, t, grid, axis, gradient, offset, half_box):
    # Contour planes offset from the origin so they never line up with the dose grid.
    zs = np.arange(-radius - 3 * t, radius + 3 * t, t) + 0.37 * t
    roi = S.RoiSpec.from_shape("Shape", "PTV", shape(kind, radius), zs)

    def field(x, y, z):
        coord = x if axis == "x" else z
        return offset + gradient * coord + 0 * y

    folder = write_case(tmp_path, [roi], field, grid, lo=(-half_box,) * 3, hi=(half_box,) * 3)
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.structures[0], plan.doses[0].grid)
    assert_matches_truth(
        dvh, LinearFieldTruth(slabs_from_planes(roi.planes, t), offset, gradient, axis)
    )


def assert_matches_truth(dvh, truth: LinearFieldTruth) -> None:
    """Volume, Mean, D-metrics (% and cc) and V-metrics of ``dvh`` against the exact DVH."""
    assert dvh.dose_coverage == pytest.approx(1.0)
    assert dvh.volume_cc == pytest.approx(truth.volume_cc, rel=VOLUME_TOLERANCE)
    assert abs(dvh.mean_gy - truth.mean()) < DOSE_TOLERANCE_GY
    for name in METRICS:
        expected = truth.dose_at_percent(float(name[1:-1]))
        got = evaluate_metric(f"{name}[Gy]", dvh)
        assert abs(got - expected) < DOSE_TOLERANCE_GY, (name, got, expected)
    for cc in (0.03, 0.1, 0.5):
        if cc < truth.volume_cc / 2:
            expected = truth.dose_at_volume(cc)
            got = evaluate_metric(f"D{cc}cc[Gy]", dvh)
            assert abs(got - expected) < DOSE_TOLERANCE_GY, (cc, got, expected)
    lo, hi = truth.dose_range()
    for dose in np.linspace(lo, hi, 7)[1:-1]:
        expected = truth.volume_at_dose(dose)
        got = evaluate_metric(f"V{dose:.3f}Gy[cc]", dvh)
        assert abs(got - expected) <= 0.01 * truth.volume_cc, (dose, got, expected)
