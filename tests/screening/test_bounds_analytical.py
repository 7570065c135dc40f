"""Screening bounds against hand computation on boxes, whose contoured volumes are exact.

The organ ("Esophagus") is a box 40 × 40 mm on 21 planes 2 mm apart (42 mm thick with the
half-slab ends): 67.2 cc. The lesion's PTV is a box 20 × 20 mm on 11 planes (22 mm): 8.8 cc, half
of it inside the organ: 4.4 cc. Prescribed 30 Gy in 3 fractions. A coverage limit V100%[%] >= q
leaves (1 − q/100) × 8.8 cc below 30 Gy; D99%[%] >= 90 leaves 0.088 cc below 27 Gy.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from rtcheck.dicom.plan import load_contours
from rtcheck.phantom import synthetic as S
from rtcheck.protocol.definition import load_protocol
from rtcheck.screening.bounds import GEOMETRY_FLOOR_CC, GEOMETRY_TOLERANCE
from rtcheck.screening.screen import ScreenDecision, Verdict, screen

ORGAN_CC, PTV_CC, OVERLAP_CC = 67.2, 8.8, 4.4


def box(x0, x1, y0, y1):
    return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)]


def structure_set(tmp_path, second_ptv: bool = False):
    rois = [
        S.RoiSpec("Oesophagus", "ORGAN", [(z, box(-20, 20, -20, 20)) for z in range(-20, 21, 2)]),
        S.RoiSpec("PTV_M1", "PTV", [(z, box(10, 30, -10, 10)) for z in range(-10, 11, 2)]),
    ]
    if second_ptv:  # 2 cc inside the organ: x in [-20, -15], y in [-10, 10], z in [-10, 10]
        rois.append(
            S.RoiSpec("PTV_M2", "PTV", [(z, box(-35, -15, -10, 10)) for z in range(-10, 11, 2)])
        )
    patient = S.Patient(study_uid=S.uid("screen", "study"), frame_uid=S.uid("screen", "frame"))
    folder = tmp_path / "contours"
    folder.mkdir()
    S.save(S.build_rtstruct(rois, patient, S.uid("screen", "ss")), str(folder / "RS.dcm"))
    return folder


def protocol(tmp_path, coverage: str, limits: list[str]) -> str:
    text = f"""\
    protocol: screen-test
    version: "1"
    oar_limits:
      limits: []
    lesions:
      coverage:
        {coverage}
      oar_limits:
    """
    text = textwrap.dedent(text) + "".join(
        f"    - {{structure: Esophagus, {entry}, priority: mandatory, source: test}}\n"
        for entry in limits
    )
    path = tmp_path / "protocol.yaml"
    path.write_text(text)
    return str(path)


COVERAGE = """- {metric: "V100%[%]", limit: ">= 90", priority: mandatory, source: test}
        - {metric: "D99%[%]", limit: ">= 90", priority: mandatory, source: test}
        - {metric: "V100%[%]", limit: ">= 99", priority: optimal, source: test}"""
FACTS = {"PTV_M1": {"site": "node", "prescription_gy": 30.0, "fractions": 3},
         "PTV_M2": {"site": "node", "prescription_gy": 30.0, "fractions": 3}}  # fmt: skip


def forced(overlap: float, allowance: float) -> float:
    return overlap - allowance - GEOMETRY_TOLERANCE * overlap - GEOMETRY_FLOOR_CC


def rows(result):
    return {r.metric: r for r in result.limits}


def test_each_metric_gets_the_hand_computed_bound(tmp_path):
    limits = [
        'metric: "D2cc[Gy]", limit: "<= 28"',  # 3.51 cc forced to 30 Gy: >= 30, broken
        'metric: "D4cc[Gy]", limit: "<= 28"',  # only 4.30 cc forced to 27 Gy: >= 27, holds
        'metric: "Mean[Gy]", limit: "<= 1.5"',
        'metric: "V25Gy[cc]", limit: "<= 4"',
        'metric: "CV25Gy[cc]", limit: ">= 64"',
        'metric: "Max[Gy]", limit: "<= 31"',
    ]
    result = screen(
        load_contours([structure_set(tmp_path)]),
        load_protocol(protocol(tmp_path, COVERAGE, limits)),
        lesion_map=FACTS,
    )
    at_30 = forced(OVERLAP_CC, 0.10 * PTV_CC)  # the mandatory V100% >= 90, not the optimal 99
    at_27 = forced(OVERLAP_CC, 0.01 * PTV_CC)
    found = rows(result)
    assert found["D2cc[Gy]"].bound == pytest.approx(30.0)
    assert found["D2cc[Gy]"].verdict == Verdict.CANNOT_BE_MET
    assert found["D4cc[Gy]"].bound == pytest.approx(27.0)
    assert found["D4cc[Gy]"].verdict == Verdict.NOT_EXCLUDED
    mean = max(at_30 * 30, at_27 * 27) / ORGAN_CC
    assert found["Mean[Gy]"].bound == pytest.approx(mean, rel=2e-3)
    assert found["Mean[Gy]"].verdict == Verdict.CANNOT_BE_MET  # 1.73 > 1.5
    assert found["V25Gy[cc]"].bound == pytest.approx(at_27, rel=2e-3)  # both levels reach 25
    assert found["V25Gy[cc]"].verdict == Verdict.CANNOT_BE_MET  # 4.30 > 4
    cv = found["CV25Gy[cc]"]
    assert cv.bound == pytest.approx(ORGAN_CC - at_27, rel=2e-3) and cv.bound_is_lower is False
    assert cv.verdict == Verdict.CANNOT_BE_MET  # 62.9 < 64
    assert found["Max[Gy]"].bound == pytest.approx(30.0)
    assert found["Max[Gy]"].verdict == Verdict.NOT_EXCLUDED  # 30 <= 31
    assert result.decision == ScreenDecision.EXCLUDED_BY_GEOMETRY
    assert "Esophagus ∩ PTV_M1 4.40 cc" in found["D2cc[Gy]"].evidence


@pytest.mark.parametrize("covered", [100, 95, 90])
def test_the_coverage_level_sets_the_allowance(tmp_path, covered):
    """D<v>cc is bounded by 30 Gy exactly where the forced volume reaches v."""
    coverage = f'- {{metric: "V100%[%]", limit: ">= {covered}", priority: mandatory, source: test}}'
    at_30 = forced(OVERLAP_CC, (1 - covered / 100) * PTV_CC)
    volumes = (round(at_30 - 0.05, 2), round(at_30 + 0.05, 2))
    limits = [f'metric: "D{v}cc[Gy]", limit: "<= 29"' for v in volumes]
    result = screen(
        load_contours([structure_set(tmp_path)]),
        load_protocol(protocol(tmp_path, coverage, limits)),
        lesion_map=FACTS,
    )
    below, above = (rows(result)[f"D{v}cc[Gy]"] for v in volumes)
    assert below.bound == pytest.approx(30.0) and below.verdict == Verdict.CANNOT_BE_MET
    assert above.bound is None and above.verdict == Verdict.NOT_EXCLUDED


def test_several_ptvs_on_one_organ_each_bound_stands_alone(tmp_path):
    limits = ['metric: "V25Gy[cc]", limit: "<= 100"', 'metric: "D1cc[Gy]", limit: "<= 100"']
    result = screen(
        load_contours([structure_set(tmp_path, second_ptv=True)]),
        load_protocol(protocol(tmp_path, COVERAGE, limits)),
        lesion_map=FACTS,
    )
    by_course = {(r.course, r.metric): r for r in result.limits}
    # M1: 4.4 cc inside; M2: 5 × 20 × 22 mm = 2.2 cc inside. No sum of the two.
    assert by_course[("M1", "V25Gy[cc]")].bound == pytest.approx(forced(4.4, 0.088), rel=2e-3)
    assert by_course[("M2", "V25Gy[cc]")].bound == pytest.approx(forced(2.2, 0.088), rel=2e-3)
    assert result.decision == ScreenDecision.PLAN_NEEDED


def test_a_missing_prescription_or_organ_is_indeterminate_and_an_optional_one_no_finding(tmp_path):
    limits = ['metric: "D2cc[Gy]", limit: "<= 28"']
    folder = structure_set(tmp_path)
    result = screen(load_contours([folder]), load_protocol(protocol(tmp_path, COVERAGE, limits)))
    row = rows(result)["D2cc[Gy]"]
    assert row.verdict == Verdict.NOT_EVALUATED and "prescription or fractions" in row.reason
    assert result.decision == ScreenDecision.INDETERMINATE
    optional = protocol(tmp_path, COVERAGE, ['metric: "D2cc[Gy]", limit: "<= 28"'])
    path = Path(optional)
    path.write_text(
        path.read_text().replace("structure: Esophagus", "structure: Heart, optional: true")
    )
    calm = screen(load_contours([folder]), load_protocol(optional), lesion_map=FACTS)
    assert rows(calm)["D2cc[Gy]"].absent_optional
    assert calm.decision == ScreenDecision.PLAN_NEEDED


def test_distances_and_the_protocols_at_risk_rule(tmp_path):
    """A PTV box 3 mm beside the organ's face (x = 23..43): 3 mm apart, no volume within 0
    and 3 mm minus a hair, at risk under a 5 mm rule for stereotactic courses, not under 2 mm."""
    rois = [
        S.RoiSpec("Oesophagus", "ORGAN", [(z, box(-20, 20, -20, 20)) for z in range(-20, 21, 2)]),
        S.RoiSpec("PTV_M1", "PTV", [(z, box(23, 43, -10, 10)) for z in range(-10, 11, 2)]),
    ]
    patient = S.Patient(study_uid=S.uid("near", "study"), frame_uid=S.uid("near", "frame"))
    folder = tmp_path / "near"
    folder.mkdir()
    S.save(S.build_rtstruct(rois, patient, S.uid("near", "ss")), str(folder / "RS.dcm"))
    for rule, risk in ((5, True), (2, False)):
        path = Path(protocol(tmp_path, COVERAGE, ['metric: "Max[Gy]", limit: "<= 100"']))
        path.write_text(
            path.read_text()
            + f"screen:\n  Esophagus: {{min_distance_mm: {rule}, regime: stereotactic}}\n"
        )
        result = screen(load_contours([folder]), load_protocol(str(path)), lesion_map=FACTS)
        (near,) = [p for p in result.proximity if p.target == "PTV_M1"]
        assert near.distance_mm == pytest.approx(3.0, abs=1e-6)
        within = dict(near.within_cc)
        assert within[0.0] == 0 and within[5.0] > 0
        # Within 5 mm: the organ's slab 3-5 mm from the PTV's face, where the section of the
        # box (20 x 22 mm) grown by a ball is 440 + 84 r + pi r^2, r^2 = 25 - d^2: 1.404 cc.
        r = lambda d: np.sqrt(25 - d * d)  # noqa: E731
        d = np.linspace(3, 5, 20001)
        exact = np.trapezoid(440 + 84 * r(d) + np.pi * r(d) ** 2, d) / 1000
        assert exact == pytest.approx(1.404, abs=1e-3)
        assert within[5.0] == pytest.approx(exact, rel=0.01)
        assert (near.at_risk is not None) is risk
