"""rtcheck on public RT data that other projects publish, against the values their authors state.

dicompyler-core's example plan is an Eclipse breast plan (7 fractions, 14 Gy prescribed, a 2.5 mm
dose grid, 2.5 mm contour planes... see ``external_data.py``). Two published references:

1. **Eclipse's own DVHs**, stored by the TPS in the RTDOSE (DVHSequence): cumulative, dose axis in
   Gy, 0.01 Gy bins; its DVHMinimum/Mean/MaximumDose are in % of the 14 Gy prescription although
   the item says GY (the heart's DVH ends at 3.11 Gy and its maximum reads 22.1: 22.1 % of 14 Gy
   is 3.09 Gy). Eclipse bounds an ROI by its outermost planes, so the comparison is with
   ``--end-caps none``. Compared for the five ROIs of organ or target size. Differences: volume
   within 0.8 % (Eclipse's own volume model is not exactly either convention: the heart is
   0.8 % larger in Eclipse than without end caps and 0.5 % smaller than with half slabs); mean
   within 0.006 Gy; D98/D50/D2 within 0.05 Gy, at most a few 0.01 Gy bins, the largest on the
   breast's steep D50%. Not compared: BODY (Eclipse's DVH covers only part of it: 13,944 cc of
   14,736 cc), and the ROIs under 1.5 cc (Borders, Nodes, Scar), whose extremes Eclipse takes
   on its own voxel grid.
2. **dicompyler-core's test values** (``tests/test_dvhcalc.py``, heart, ROI 5): its engine counts
   the dose voxels whose centres lie inside each plane's contours, with half-slab ends as
   rtcheck's default, and reports the edges of 0.01 Gy bins. Volume within 0.5 % (voxel-centre
   counting at 2.5 mm), mean within 0.002 Gy, max and min within 0.015 Gy of the bin edges it
   states.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dvh.engine import compute_dvh
from tests.external_data import dicompyler_example_data

ECLIPSE_COMPARED = ("Breast", "Heart", "Lt Lung", "Tumor Bed", "Tumor Bed Block")
PRESCRIPTION_GY = 14.0


@pytest.fixture(scope="module")
def example():
    folder = dicompyler_example_data()
    plan = load_plan([folder])
    rtdose = pydicom.dcmread(folder / "rtdose.dcm", stop_before_pixels=True)
    return plan, rtdose


def eclipse_dvhs(rtdose) -> dict[int, dict[str, float | np.ndarray]]:
    """Eclipse's cumulative DVH of each ROI number: dose edges (Gy), volumes (cc), statistics."""
    found = {}
    for item in rtdose.DVHSequence:
        assert item.DVHType == "CUMULATIVE" and item.DVHVolumeUnits == "CM3"
        data = np.array([float(v) for v in item.DVHData])
        widths, volumes = data[0::2] * float(item.DVHDoseScaling), data[1::2]
        found[int(item.DVHReferencedROISequence[0].ReferencedROINumber)] = {
            "dose": np.concatenate(([0.0], np.cumsum(widths)[:-1])),
            "volume": volumes,
            "mean": float(item.DVHMeanDose) * PRESCRIPTION_GY / 100,
        }
    return found


def eclipse_dose_at_percent(dvh, percent: float) -> float:
    volumes, doses = dvh["volume"], dvh["dose"]
    return float(np.interp(-volumes[0] * percent / 100, -volumes, doses))


def test_the_example_plan_loads_and_links(example):
    plan, _ = example
    assert plan.doses[0].plan is not None
    assert plan.doses[0].plan.fractions == 7 and plan.doses[0].plan.prescription_gy == 14.0
    names = {s.name for s in plan.structure_set.structures}
    assert set(ECLIPSE_COMPARED) <= names


@pytest.mark.parametrize("name", ECLIPSE_COMPARED)
def test_agrees_with_eclipses_own_dvh(example, name):
    plan, rtdose = example
    structure = plan.structure_set.by_name(name)
    eclipse = eclipse_dvhs(rtdose)[structure.number]
    ours = compute_dvh(structure, plan.doses[0].grid, end_caps=EndCaps.NONE)
    assert ours.dose_coverage == pytest.approx(1.0)
    assert ours.volume_cc == pytest.approx(eclipse["volume"][0], rel=0.008)
    assert ours.mean_gy == pytest.approx(eclipse["mean"], abs=0.006)
    for percent in (98, 50, 2):
        expected = eclipse_dose_at_percent(eclipse, percent)
        assert ours.dose_at_volume(ours.volume_in_grid_cc * percent / 100) == pytest.approx(
            expected, abs=0.05
        ), f"D{percent}%"


def test_half_slab_ends_add_half_a_slice_at_each_end(example):
    plan, _ = example
    structure = plan.structure_set.by_name("Tumor Bed")
    grid = plan.doses[0].grid
    half = compute_dvh(structure, grid).volume_cc
    none = compute_dvh(structure, grid, end_caps=EndCaps.NONE).volume_cc
    bottom, top = structure.slabs()
    ends = (0, len(structure.planes) - 1)
    ends_cc = sum(_plane_area_cc(structure.planes[k]) * (top[k] - bottom[k]) / 2 for k in ends)
    assert half - none == pytest.approx(ends_cc, rel=0.01)


def _plane_area_cc(plane) -> float:
    def area(poly):
        x, y = poly[:, 0], poly[:, 1]
        return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    outer, *holes = plane.polygons
    return (area(outer) - sum(area(h) for h in holes)) / 1000


def test_agrees_with_dicompyler_cores_published_heart_values(example):
    plan, _ = example
    heart = next(s for s in plan.structure_set.structures if s.number == 5)
    assert heart.name == "Heart"
    ours = compute_dvh(heart, plan.doses[0].grid)
    assert ours.volume_cc == pytest.approx(440.23124999, rel=0.005)
    assert ours.mean_gy == pytest.approx(0.6475329, abs=0.002)
    # dicompyler-core states the upper edge of the 0.01 Gy bin holding the extreme, from the
    # dose at voxel centres; rtcheck's extremes (3.0895 and 0.023 Gy) are those of the samples.
    assert ours.max_gy == pytest.approx(3.1, abs=0.015)
    assert ours.min_gy == pytest.approx(0.03, abs=0.015)
