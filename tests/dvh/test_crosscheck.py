"""rtcheck against independent computations on the realistic thorax phantom.

- dicompyler-core (voxel centres in polygons on the dose grid) on the large smooth organs, where
  both engines must agree within 0.5 % of volume and 0.3 Gy of mean dose;
- a dense brute-force reference (``dense_reference.py``) on every organ and target, where
  rtcheck must be within the project's targets: volume within 1 % of the exact contoured
  volume, Mean and every D-metric within 0.3 Gy;
- dicompyler-core fails the small-structure targets that rtcheck meets, so these checks can fail.
"""

from __future__ import annotations

import pydicom
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.metrics import evaluate_metric
from tests.dense_reference import dense_dvh
from tests.dicompyler_reference import dicompyler_dvh
from tests.truth import polygon_area

LARGE_ORGANS = ["Lung Rt", "LUNG LT", "heart", "LIVER"]


@pytest.fixture(scope="module")
def thorax(phantom_dir):
    return load_plan([phantom_dir])


def exact_volume_cc(structure) -> float:
    return (
        sum(
            (polygon_area(p.polygons[0]) - sum(polygon_area(h) for h in p.polygons[1:]))
            * (p.top_mm - p.bottom_mm)
            for p in structure.planes
        )
        / 1000
    )


@pytest.mark.parametrize("name", LARGE_ORGANS)
def test_agrees_with_dicompyler_on_large_smooth_organs(thorax, phantom_dir, name):
    structure = thorax.structure_set.by_name(name)
    ours = compute_dvh(structure, thorax.doses[0].grid)
    rtstruct = pydicom.dcmread(phantom_dir / "RS.thorax.dcm")
    rtdose = pydicom.dcmread(phantom_dir / "RD.thorax.dcm")
    theirs = dicompyler_dvh(rtstruct, rtdose, structure.number)
    assert ours.volume_cc == pytest.approx(theirs.volume, rel=0.005)
    assert ours.mean_gy == pytest.approx(theirs.mean, abs=0.3)


def test_dicompyler_misses_small_structures_that_rtcheck_measures(thorax, phantom_dir):
    rtstruct = pydicom.dcmread(phantom_dir / "RS.thorax.dcm")
    rtdose = pydicom.dcmread(phantom_dir / "RD.thorax.dcm")
    structure = thorax.structure_set.by_name("GTV_M3_T8")
    exact = exact_volume_cc(structure)
    theirs = dicompyler_dvh(rtstruct, rtdose, structure.number)
    ours = compute_dvh(structure, thorax.doses[0].grid)
    assert abs(theirs.volume / exact - 1) > 0.01
    assert abs(ours.volume_cc / exact - 1) < 0.001


NAMES = [
    "Lung Rt", "LUNG LT", "heart", "Cord", "Oesophagus", "LIVER", "Vert T8", "GTV_T", "PTV_50",
    "GTV M1 lung", "PTV_M1_lungR", "gtv m2 liver", "ptv m2 liver", "GTV_M3_T8", "PTV_M3_T8",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_every_structure_of_the_thorax_against_a_dense_reference(thorax, name):
    structure = thorax.structure_set.by_name(name)
    grid = thorax.doses[0].grid
    ours = compute_dvh(structure, grid)
    big = exact_volume_cc(structure) > 500
    reference = dense_dvh(structure, grid, spacing_mm=0.5 if big else 0.4, depths=12 if big else 20)
    assert ours.volume_cc == pytest.approx(exact_volume_cc(structure), rel=0.01)
    assert ours.mean_gy == pytest.approx(reference.mean, abs=0.3)
    for percent in (99, 98, 95, 50, 5, 2, 1):
        value = evaluate_metric(f"D{percent}%[Gy]", ours)
        assert value == pytest.approx(reference.dose_at_percent(percent), abs=0.3), percent
    assert evaluate_metric("D0.03cc[Gy]", ours) == pytest.approx(
        reference.dose_at_volume(0.03), abs=0.3
    )
