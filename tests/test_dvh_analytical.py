"""rtcheck's DVHs against exact analytical DVHs of contoured shapes in linear dose fields.

Tolerances (from the project's targets): volume within 1 %, every D-metric and the mean within
0.3 Gy. The fields have gradients of 1-2 Gy/mm, steeper than most of an organ sees, so that
sampling errors show up.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck import synthetic as S
from rtcheck.dvh import compute_dvh
from rtcheck.metrics import evaluate_metric
from rtcheck.plan import load_plan
from tests.conftest import write_case
from tests.truth import LinearFieldTruth, slabs_from_planes

VOLUME_TOLERANCE = 0.002  # the target is 1 %; measured worst 0.03 %
DOSE_TOLERANCE_GY = 0.1  # the target is 0.3 Gy; measured worst 0.05 Gy


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


@pytest.mark.parametrize(("kind", "radius", "t", "grid", "axis", "gradient"), CASES)
def test_against_analytical_dvh(tmp_path, kind, radius, t, grid, axis, gradient):
    # Contour planes offset from the origin so they never line up with the dose grid.
    zs = np.arange(-radius - 3 * t, radius + 3 * t, t) + 0.37 * t
    roi = S.RoiSpec.from_shape("Shape", "PTV", shape(kind, radius), zs)
    offset = 70.0

    def field(x, y, z):
        coord = x if axis == "x" else z
        return offset + gradient * coord + 0 * y

    folder = write_case(tmp_path, [roi], field, grid, lo=(-33.0,) * 3, hi=(33.0,) * 3)
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.structures[0], plan.doses[0].grid)
    truth = LinearFieldTruth(slabs_from_planes(roi.planes, t), offset, gradient, axis)

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
