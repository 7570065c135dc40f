"""An earlier course summed with the current one in EQD2, through a rigid registration, against
closed forms.

The earlier dose is linear in the earlier frame, ``D_p(x_p) = 40 + 0.2 x_p`` Gy in 20 fractions;
the current dose is 30 Gy in 10 fractions everywhere. The earlier frame is the current one
rotated by 30° about z and shifted by (30, -10, 8) mm: ``x_p = R x_c + t``. The trilinear
resampling of a linear dose is exact, so each point's earlier dose is known in closed form; and
over a sphere the sum is a monotone function of a linear one, so its median (D50%) is the value
at the centre and its maximum the value on the sphere's rim along the gradient.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.prior import load_earlier_course, place
from rtcheck.dicom.registration import read_registration
from rtcheck.dicom.resample import resample
from rtcheck.errors import PriorCourseError, RegistrationError
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.results import Eligibility, Grade
from rtcheck.phantom import synthetic as S
from rtcheck.protocol import lq
from rtcheck.protocol.definition import load_protocol
from tests.conftest import write_case
from tests.registration_factory import deformable_reg, rigid_reg, rotation_z

CORD = (10.0, 20.0, 4.0)
CORD_R = 12.0
PTV = (-20.0, -15.0, 0.0)
PTV_R = 10.0
#: Current → earlier frame: x_p = R x_c + t.
CURRENT_TO_EARLIER = rotation_z(30.0, (30.0, -10.0, 8.0))
GRADIENT = np.array([0.2, 0.0, 0.0])  # Gy/mm, in the earlier frame


def earlier_dose(x, y, z):
    return 40.0 + GRADIENT[0] * x + 0 * y + 0 * z


def to_earlier(points, matrix=CURRENT_TO_EARLIER):
    points = np.atleast_2d(points)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def earlier_at(points, matrix=CURRENT_TO_EARLIER):
    p = to_earlier(points, matrix)
    return earlier_dose(p[:, 0], p[:, 1], p[:, 2])


def sum_eqd2(earlier_gy, alpha_beta):
    return lq.eqd2(30.0, 10, alpha_beta) + earlier_gy * (earlier_gy / 20 + alpha_beta) / (
        2 + alpha_beta
    )


PROTOCOL = """\
protocol: reirradiation-test
version: "1"
oar_limits:
  limits:
    - structure: SpinalCord
      metric: "D0.03cc[Gy]"
      limit: "<= 45"
      priority: mandatory
      source: test
cumulative_limits:
  prior_field: {percent_of_prescription: 50}
  limits:
    - structure: SpinalCord
      metric: "D50%[Gy]"
      limit: "<= 100"
      alpha_beta: 2
      priority: mandatory
      source: test
    - structure: SpinalCord
      metric: "Max[Gy]"
      limit: "<= 100"
      alpha_beta: 2
      priority: mandatory
      source: test
"""


def current_plan(tmp_path: Path) -> Path:
    zs = np.arange(-30.0, 30.01, 2.0)
    rois = [
        S.RoiSpec.from_shape("SpinalCord", "ORGAN", S.sphere(*CORD, CORD_R), zs),
        S.RoiSpec.from_shape("PTV_M1", "PTV", S.sphere(*PTV, PTV_R), zs),
    ]
    return write_case(
        tmp_path / "current", rois, lambda x, y, z: 30.0 + 0 * x, 2.0,
        fractions=10, prescription=30.0, seed="current",
    )  # fmt: skip


def earlier_course(tmp_path: Path, with_plan: bool = True) -> Path:
    rois = [S.RoiSpec.from_shape("PTV", "PTV", S.sphere(0, 0, 0, 20), np.arange(-20, 20.1, 2))]
    folder = write_case(
        tmp_path / "earlier", rois, earlier_dose, 3.0, lo=(-90, -90, -90), hi=(90, 90, 90),
        fractions=20, prescription=60.0, seed="earlier", with_plan=with_plan,
    )  # fmt: skip
    (folder / "rtstruct.dcm").unlink()  # an earlier course given by its dose and plan
    return folder


def frames(tmp_path: Path) -> tuple[S.Patient, str, str]:
    current = S.uid("current", "frame")
    earlier = S.uid("earlier", "frame")
    return S.Patient(study_uid=S.uid("current", "study"), frame_uid=current), current, earlier


def protocol_file(tmp_path: Path, text: str = PROTOCOL) -> str:
    path = tmp_path / "protocol.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def case(tmp_path):
    plan_folder = current_plan(tmp_path)
    course_folder = earlier_course(tmp_path)
    patient, current, earlier = frames(tmp_path)
    return tmp_path, plan_folder, course_folder, patient, current, earlier


def run(tmp_path, plan_folder, course_folder, reg_path, protocol=PROTOCOL):
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    placement = place(course, plan, [read_registration(reg_path)] if reg_path else [])
    return evaluate(
        plan, load_protocol(protocol_file(tmp_path, protocol)), earlier=[(course, placement)]
    )


def cumulative(evaluation, metric):
    return next(r for r in evaluation.limits if r.group == "cumulative" and r.metric == metric)


@pytest.mark.parametrize("registered", ["current", "earlier"])
def test_the_sum_matches_the_closed_form_whichever_frame_is_the_registered_one(case, registered):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    if registered == "current":  # the earlier frame's matrix maps it into the current one
        items = [(current, np.eye(4)), (earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    else:  # the current frame's matrix maps it into the earlier one; items in reverse order
        items = [(earlier, np.eye(4)), (current, CURRENT_TO_EARLIER)]
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current if registered == "current" else earlier, items
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg)

    median = cumulative(evaluation, "D50%[Gy]")
    assert median.value == pytest.approx(sum_eqd2(earlier_at(CORD)[0], 2.0), abs=0.02)
    # The rim point farthest along the gradient (seen from the current frame), on the centre plane.
    direction = CURRENT_TO_EARLIER[:3, :3].T @ GRADIENT
    rim = np.array(CORD) + CORD_R * direction / np.linalg.norm(direction)
    top = cumulative(evaluation, "Max[Gy]")
    assert top.value == pytest.approx(sum_eqd2(earlier_at(rim)[0], 2.0), abs=0.1)
    assert "EQD2 sum of 2 courses, alpha/beta 2 Gy" in (median.conversion or "")
    courses = evaluation.earlier.courses
    assert courses[0].placement == "rigid" and courses[0].registration_uid
    np.testing.assert_allclose(np.array(courses[0].matrix), CURRENT_TO_EARLIER, atol=1e-5)


def test_the_matrix_inverted_gives_another_answer(case):
    """The direction is tested: the REG written the wrong way round fails the closed form."""
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    items = [(current, np.eye(4)), (earlier, CURRENT_TO_EARLIER)]  # should be its inverse
    reg = rigid_reg(tmp_path / "reg.dcm", patient, current, items)
    median = cumulative(run(tmp_path, plan_folder, course_folder, reg), "D50%[Gy]")
    expected = sum_eqd2(earlier_at(CORD)[0], 2.0)
    assert abs(median.value - expected) > 5.0
    wrong = sum_eqd2(earlier_at(CORD, np.linalg.inv(CURRENT_TO_EARLIER))[0], 2.0)
    assert median.value == pytest.approx(wrong, abs=0.02)


def test_resampling_is_exact_for_a_linear_dose_at_every_grid_point(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )  # no identity item: the registered frame is the REG's own
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    placement = place(course, plan, [read_registration(reg)])
    grid = plan.doses[0].grid
    resampled = resample(course.dose, grid, placement.point_map)
    z, y, x = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    points = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    expected = earlier_at(points).reshape(grid.shape)
    # The current grid's corners, turned by 30°, reach beyond the earlier grid's x and y.
    beyond = np.abs(to_earlier(points)[:, :2]).max(axis=1) > 90 + 1e-3
    np.testing.assert_array_equal(resampled.outside.ravel(), beyond)
    assert 0 < beyond.sum() < 0.2 * beyond.size
    # float32 storage of the earlier grid (DoseGridScaling) bounds the agreement.
    inside = ~resampled.outside
    np.testing.assert_allclose(resampled.grid.dose_gy[inside], expected[inside], atol=2e-3)
    assert (resampled.grid.dose_gy[~inside] == 0).all()


def test_the_same_frame_needs_no_registration_and_says_so(tmp_path):
    plan_folder = current_plan(tmp_path)
    rois = [S.RoiSpec.from_shape("PTV", "PTV", S.sphere(0, 0, 0, 20), np.arange(-20, 20.1, 2))]
    course_folder = write_case(
        tmp_path / "earlier", rois, earlier_dose, 3.0, lo=(-90, -90, -60), hi=(90, 90, 60),
        fractions=20, prescription=60.0, seed="earlier-same",
    )  # fmt: skip
    # The earlier course on the same CT (frame) as the current one.
    import pydicom

    for name in ("rtdose.dcm", "rtplan.dcm"):
        ds = pydicom.dcmread(course_folder / name)
        ds.FrameOfReferenceUID = S.uid("current", "frame")
        ds.save_as(course_folder / name)
    (course_folder / "rtstruct.dcm").unlink()
    evaluation = run(tmp_path, plan_folder, course_folder, None)
    assert evaluation.earlier.courses[0].placement == "same frame of reference"
    assert evaluation.earlier.courses[0].registration_uid is None
    median = cumulative(evaluation, "D50%[Gy]")
    assert median.value == pytest.approx(sum_eqd2(earlier_dose(*CORD), 2.0), abs=0.02)


def test_no_registration_for_another_frame_is_refused(case):
    tmp_path, plan_folder, course_folder, *_ = case
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    with pytest.raises(PriorCourseError, match="no registration relates them"):
        place(course, plan, [])


def test_a_registration_that_relates_neither_course_is_refused(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(tmp_path / "reg.dcm", patient, "1.2.3.4", [("1.2.3.5", np.eye(4))])
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    with pytest.raises(PriorCourseError, match="the 1 given relate other frames"):
        place(course, plan, [read_registration(reg)])


def test_an_earlier_course_of_another_patient_is_refused(case):
    tmp_path, plan_folder, course_folder, *_ = case
    import pydicom

    ds = pydicom.dcmread(course_folder / "rtdose.dcm")
    ds.PatientID = "SOMEONE-ELSE"
    ds.save_as(course_folder / "rtdose.dcm")
    with pytest.raises(PriorCourseError, match="another patient") as caught:
        load_earlier_course([course_folder], load_plan([plan_folder]))
    assert "SOMEONE-ELSE" not in str(caught.value)


@pytest.mark.parametrize(
    ("items", "kwargs", "message"),
    [
        ("two", {"matrices_per_item": 2}, "2 matrices in one item"),
        ("skew", {}, "not orthonormal"),
        ("last_row", {}, r"last row is \(0, 0, 0.1, 1\)"),
        ("mirror", {}, "determinant"),
        ("nan", {}, "16 finite numbers"),
    ],
)
def test_unusable_rigid_matrices_are_refused_in_one_line(case, items, kwargs, message):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    matrix = np.linalg.inv(CURRENT_TO_EARLIER)
    if items == "skew":
        matrix = matrix.copy()
        matrix[0, 1] += 0.01
    elif items == "last_row":
        matrix = matrix.copy()
        matrix[3, 2] = 0.1
    elif items == "mirror":
        matrix = np.diag([-1.0, 1.0, 1.0, 1.0])
    elif items == "nan":
        matrix = matrix.copy()
        matrix[1, 3] = np.nan
    reg = rigid_reg(tmp_path / "reg.dcm", patient, current, [(earlier, matrix)], **kwargs)
    with pytest.raises(RegistrationError, match=message) as caught:
        read_registration(reg)
    assert "\n" not in str(caught.value)


def test_a_rigid_matrix_rounded_to_six_decimals_is_accepted(case):
    """plastimatch writes 6 decimals; the orthonormality tolerance (1e-4) accepts them."""
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm",
        patient,
        current,
        [(earlier, np.linalg.inv(rotation_z(17.3, (1, 2, 3))))],
    )
    assert read_registration(reg).kind == "rigid"


def test_a_deformation_of_the_wrong_direction_or_with_a_pre_matrix_is_refused(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    vectors = np.zeros((3, 3, 3, 3), dtype=np.float32)
    backwards = deformable_reg(
        tmp_path / "back.dcm", patient, earlier, current, (-50, -50, -50), (50, 50, 50), vectors
    )
    with pytest.raises(RegistrationError, match="needs the other direction"):
        place(course, plan, [read_registration(backwards)])
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    with pytest.raises(RegistrationError, match="PreDeformationMatrix that is not the identity"):
        read_registration(
            deformable_reg(
                tmp_path / "pre.dcm",
                patient,
                current,
                earlier,
                (-50, -50, -50),
                (50, 50, 50),
                vectors,
                pre=shifted,
            )  # fmt: skip
        )


def test_a_deformable_object_read_as_rigid_is_refused(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    import pydicom

    path = deformable_reg(
        tmp_path / "d.dcm", patient, current, earlier, (-50, -50, -50), (50, 50, 50),
        np.zeros((3, 3, 3, 3), dtype=np.float32),
    )  # fmt: skip
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.1"
    ds.save_as(path)
    with pytest.raises(RegistrationError, match="not read as rigid"):
        read_registration(path)


def uniformly_shifted(case, origin_mm, spacing_mm):
    """The evaluation with an earlier course moved by a deformation grid of one constant vector
    (5 × 5 × 5 points from ``origin_mm`` every ``spacing_mm``); the sum's median is asserted
    to be the closed form at the shifted centre."""
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    shift = np.array([12.0, -4.0, 2.0], dtype=np.float32)
    vectors = np.broadcast_to(shift, (5, 5, 5, 3)).copy()
    reg = deformable_reg(
        tmp_path / "d.dcm", patient, current, earlier, origin_mm, spacing_mm, vectors
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg)
    median = cumulative(evaluation, "D50%[Gy]")
    assert median.value == pytest.approx(
        sum_eqd2(earlier_dose(*(np.array(CORD) + shift)), 2.0), abs=0.02
    )
    return evaluation


def test_a_uniform_deformation_is_a_shift(case):
    """A deformation grid of one constant vector moves every point by it."""
    evaluation = uniformly_shifted(case, (-80, -80, -80), (40, 40, 40))
    assert evaluation.earlier.courses[0].placement == "deformable"


def test_an_organ_both_courses_irradiate_without_a_cumulative_limit_is_indeterminate(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    no_cumulative = PROTOCOL.split("cumulative_limits:")[0]
    evaluation = run(tmp_path, plan_folder, course_folder, reg, no_cumulative)
    gap = next(r for r in evaluation.limits if r.group == "cumulative")
    assert gap.result == Grade.NOT_EVALUATED and gap.structure == "SpinalCord"
    assert "no cumulative limit in the protocol for SpinalCord" in (gap.reason or "")
    assert evaluation.decision.decision == Eligibility.INDETERMINATE


def test_a_cumulative_limit_broken_excludes(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    strict = PROTOCOL.replace(
        '"D50%[Gy]"\n      limit: "<= 100"', '"D50%[Gy]"\n      limit: "<= 60"'
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg, strict)
    assert cumulative(evaluation, "D50%[Gy]").result == Grade.FAIL
    assert evaluation.decision.decision == Eligibility.EXCLUDED


def test_recovery_is_applied_only_as_the_protocol_states_and_both_doses_are_shown(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    # Both plans are dated 2026-01-01: the interval is 0 months, so a 6-month rule gives nothing.
    with_rule = PROTOCOL.replace(
        '"D50%[Gy]"\n      limit: "<= 100"\n',
        '"D50%[Gy]"\n      limit: "<= 100"\n      recovery: {0: 25}\n',
    )
    median = cumulative(run(tmp_path, plan_folder, course_folder, reg, with_rule), "D50%[Gy]")
    d_p = earlier_at(CORD)[0]
    earlier_eqd2 = d_p * (d_p / 20 + 2) / 4
    assert median.value == pytest.approx(lq.eqd2(30, 10, 2) + 0.75 * earlier_eqd2, abs=0.02)
    assert "recovery stated by the protocol" in median.conversion
    assert f"without it {sum_eqd2(d_p, 2.0):.2f} Gy" in median.conversion


def test_a_lesion_inside_the_earlier_field_is_flagged_with_its_dose(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg)
    dose = next(d for d in evaluation.earlier.lesion_doses if d.lesion)
    expected = earlier_at(PTV)[0]
    assert dose.d50_gy == pytest.approx(expected, abs=0.02)
    assert dose.d50_percent == pytest.approx(100 * expected / 60.0, abs=0.05)
    assert expected > 30.0 and dose.inside_field is True
    assert any("inside the field of the earlier course" in f for f in evaluation.earlier.flags)


def test_the_interval_is_counted_from_the_plan_dates_and_a_short_one_flagged(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg)
    course = evaluation.earlier.courses[0]
    assert course.end_date == "2026-01-01"
    assert course.end_date_source == "RTPlanDate (planned, not delivered)"
    assert course.interval_months == 0
    assert any(f.startswith("inclusion 4:") for f in evaluation.earlier.flags)


def rtcheck(*args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "rtcheck", *args], capture_output=True, text=True, timeout=120
    )


def test_check_with_an_earlier_course_writes_the_record_report_and_table(case):
    import json

    import jsonschema

    from tests.evaluation.test_check import SCHEMA

    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    record_path, report_path = tmp_path / "record.json", tmp_path / "report.html"
    result = rtcheck(
        "check", str(plan_folder), "--prior", str(course_folder), "--registration", str(reg),
        "--protocol", protocol_file(tmp_path), "--json", str(record_path),
        "--html", str(report_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "SpinalCord (sum)" in result.stdout
    assert "Earlier courses" in result.stdout and "FLAG inclusion 4:" in result.stdout
    record = json.loads(record_path.read_text())
    jsonschema.validate(record, SCHEMA)
    assert record["record_version"] == "1.4"
    course = record["earlier_courses"]["courses"][0]
    assert course["registration"]["method"] == "rigid"
    assert course["registration"]["creator"] == "rtcheck tests / TEST^WRITER"
    assert {row["group"] for row in record["limits"]} == {"oar", "cumulative"}
    html = report_path.read_text()
    assert "<h2>Earlier course</h2>" in html and 'data-kind="sum"' in html


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--registration", "REG"], "need --prior"),
        (["--prior", "EARLIER", "--prior-end", "2025-13-01"], "give a date as YYYY-MM-DD"),
        (["--prior", "EARLIER"], "no registration relates them"),
        (["--prior", "EARLIER", "--registration", "PLAN/rtdose.dcm"], "not a Spatial Registration"),
    ],
)
def test_check_refuses_bad_earlier_course_input_in_one_line(case, extra, fragment):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    reg = rigid_reg(tmp_path / "reg.dcm", patient, current, [(earlier, np.eye(4))])
    names = {
        "REG": str(reg),
        "EARLIER": str(course_folder),
        "PLAN/rtdose.dcm": str(plan_folder / "rtdose.dcm"),
    }
    result = rtcheck("check", str(plan_folder), *(names.get(a, a) for a in extra))
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_example_protocol_on_the_thorax_phantom_summed_with_its_own_dose(tmp_path):
    """The bundled phantom re-planned on the same CT a year after the same course: every
    organ of the example's cumulative limits is evaluated on the sum; an organ covered by a
    derived structure's ROIs (Lungs - PTVs, of Lungs) is no gap; one without a cumulative limit
    that both courses irradiate is."""
    import pydicom

    phantom = Path(__file__).resolve().parents[2] / "phantom_data" / "thorax"
    course = tmp_path / "earlier"
    course.mkdir()
    plan_uid = S.uid("thorax-earlier", "plan")
    for name in ("RD.thorax.dcm", "RP.thorax.dcm"):
        ds = pydicom.dcmread(phantom / name)
        new = plan_uid if name.startswith("RP") else S.uid("thorax-earlier", "dose")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new
        if name.startswith("RP"):
            ds.RTPlanDate = "20250101"
        else:
            ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan_uid
        ds.save_as(course / name)
    plan = load_plan([phantom])
    earlier = load_earlier_course([course], plan)
    evaluation = evaluate(
        plan,
        load_protocol("eso-oligo-rt-reirradiation-example"),
        earlier=[(earlier, place(earlier, plan, []))],
    )
    sums = [r for r in evaluation.limits if r.group == "cumulative"]
    gaps = {r.structure for r in sums if "no cumulative limit" in (r.reason or "")}
    assert "Lungs-PTVs" not in gaps and "Lungs" not in gaps
    judged = {r.structure for r in sums if r.value is not None}
    assert {"SpinalCord", "Esophagus", "Heart", "Lungs"} <= judged
    # The sum of a course with itself: at alpha/beta 3, twice the EQD2 of the one course.
    heart = next(r for r in sums if r.structure == "Heart" and r.metric == "D0.1cc[Gy]")
    physical = next(d for n, k, d in evaluation.dvhs if n == "Heart" and k == "physical")
    d01 = physical.dose_at_volume(0.1)
    fractions = evaluation.plan.doses[0].plan.fractions
    assert heart.value == pytest.approx(2 * lq.eqd2(d01, fractions, 2.5), rel=0.01)
    assert evaluation.earlier.courses[0].interval_months == pytest.approx(12.0, abs=0.1)
    assert evaluation.earlier.courses[0].placement == "same frame of reference"


def test_two_earlier_courses_are_both_summed(case):
    """A second earlier course in a third frame (turned by -20°, shifted (-5, 12, -4) mm), in the
    same REG object: 30 Gy in 12 fractions over a box that the mapped cord lies in, nothing
    beyond it (so a wrong mapping of this course shows). Uniform there, it keeps the sum a
    monotone function of the first course's linear dose, whose median over the sphere is its
    value at the centre."""
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    second_to = rotation_z(-20.0, (-5.0, 12.0, -4.0))

    def second_dose(x, y, z):
        inside = (np.abs(x - 15) <= 30) & (np.abs(y - 30) <= 30) & (np.abs(z) <= 30)
        return np.where(inside, 30.0, 0.0)

    rois = [S.RoiSpec.from_shape("PTV", "PTV", S.sphere(0, 0, 0, 20), np.arange(-20, 20.1, 2))]
    second = write_case(
        tmp_path / "second", rois, second_dose, 3.0, lo=(-90, -90, -90), hi=(90, 90, 90),
        fractions=12, prescription=36.0, seed="second",
    )  # fmt: skip
    (second / "rtstruct.dcm").unlink()
    items = [
        (earlier, np.linalg.inv(CURRENT_TO_EARLIER)),
        (S.uid("second", "frame"), np.linalg.inv(second_to)),
        (current, np.eye(4)),
    ]
    reg = rigid_reg(tmp_path / "reg.dcm", patient, current, items)
    plan = load_plan([plan_folder])
    registration = read_registration(reg)
    placed = []
    for folder in (course_folder, second):
        course = load_earlier_course([folder], plan)
        placed.append((course, place(course, plan, [registration])))
    evaluation = evaluate(plan, load_protocol(protocol_file(tmp_path)), earlier=placed)
    median = cumulative(evaluation, "D50%[Gy]")
    p2 = to_earlier(CORD, second_to)[0]
    d2 = second_dose(*p2)
    expected = sum_eqd2(earlier_at(CORD)[0], 2.0) + d2 * (d2 / 12 + 2) / 4
    assert median.value == pytest.approx(expected, abs=0.02)
    assert "EQD2 sum of 3 courses" in median.conversion
    assert len(evaluation.earlier.courses) == 2


def test_the_end_of_a_course_from_its_treatment_records_or_as_given(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    plan = load_plan([plan_folder])
    for day, name in (("20250611", "RT1.dcm"), ("20250704", "RT2.dcm")):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.4"
        ds.file_meta.MediaStorageSOPInstanceUID = S.uid("record", day)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.4"
        ds.SOPInstanceUID = S.uid("record", day)
        ds.Modality = "RTRECORD"
        ds.PatientID = patient.patient_id
        ds.TreatmentDate = day
        ds.save_as(course_folder / name, enforce_file_format=True)
    course = load_earlier_course([course_folder], plan)
    assert (str(course.end_date), course.end_date_source) == (
        "2025-07-04",
        "RT Beams Treatment Record (latest TreatmentDate: delivered)",
    )
    # Without records or an RTPlanDate, the date the user gives.
    import pydicom

    for name in ("RT1.dcm", "RT2.dcm"):
        (course_folder / name).unlink()
    rp = pydicom.dcmread(course_folder / "rtplan.dcm")
    del rp.RTPlanDate
    rp.save_as(course_folder / "rtplan.dcm")
    from datetime import date

    given = load_earlier_course([course_folder], plan, date(2025, 5, 31))
    assert (str(given.end_date), given.end_date_source) == ("2025-05-31", "given (--prior-end)")
    unknown = load_earlier_course([course_folder], plan)
    assert unknown.end_date is None and unknown.end_date_source == "unknown"


def test_an_organ_beyond_an_earlier_grid_that_ends_in_dose_is_not_evaluated(tmp_path):
    """The earlier grid ends 2 mm past the cord's centre, where its dose is still 40 Gy."""
    plan_folder = current_plan(tmp_path)
    rois = [S.RoiSpec.from_shape("PTV", "PTV", S.sphere(0, 0, 0, 5), np.arange(-4, 4.1, 2))]
    course_folder = write_case(
        tmp_path / "earlier", rois, earlier_dose, 3.0, lo=(-90, -90, -90), hi=(31, 90, 90),
        fractions=20, prescription=60.0, seed="earlier",
    )  # fmt: skip
    (course_folder / "rtstruct.dcm").unlink()
    patient, current, earlier = frames(tmp_path)
    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    evaluation = run(tmp_path, plan_folder, course_folder, reg)
    median = cumulative(evaluation, "D50%[Gy]")
    assert median.result == Grade.NOT_EVALUATED
    assert "reaches beyond the dose grid of the earlier course" in median.reason
    assert evaluation.decision.decision == Eligibility.INDETERMINATE


def test_hostile_registration_text_is_one_printable_line(case):
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    import pydicom

    reg = rigid_reg(
        tmp_path / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))]
    )
    ds = pydicom.dcmread(reg)
    ds.Manufacturer = "Evil\nCriterion 19: NOT_EXCLUDED<script>"
    ds.save_as(reg)
    shown = read_registration(reg).manufacturer
    assert "\n" not in shown and shown.startswith("Evil?Criterion")
    evaluation = run(tmp_path, plan_folder, course_folder, reg)
    from rtcheck.outputs.html_report import plan_report_html

    assert "<script>" not in plan_report_html(evaluation)


def test_a_dose_grid_beyond_the_deformation_grid_is_said(case):
    """A deformation grid of ±20 mm under a dose grid of ±60 mm: beyond it the edge vectors
    hold (here the same shift everywhere, so the sum is unchanged), and the record says so."""
    evaluation = uniformly_shifted(case, (-20, -20, -20), (10, 10, 10))
    warnings = evaluation.earlier.courses[0].warnings
    assert any("beyond the deformation grid (8 of its 8 corners)" in w for w in warnings)


def test_a_registration_that_is_a_pipe_a_folder_or_missing_is_one_line(case):
    import os

    tmp_path, plan_folder, course_folder, *_ = case
    pipe = tmp_path / "reg.pipe"
    os.mkfifo(pipe)  # reading it would block for ever
    for reg, fragment in (
        (pipe, "not a regular file"),
        (tmp_path, "not a regular file"),
        (tmp_path / "none.dcm", "no such file"),
    ):
        result = rtcheck(
            "check", str(plan_folder), "--prior", str(course_folder), "--registration", str(reg)
        )
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("ImagePositionPatient", ["nan", "0", "0"]),
        ("ImagePositionPatient", ["1e400", "0", "0"]),
        ("ImageOrientationPatient", ["nan", "0", "0", "0", "1", "0"]),
        ("GridResolution", [float("nan"), 50.0, 50.0]),
    ],
)
def test_a_deformation_grid_that_is_not_finite_is_refused(case, element, value):
    """A NaN or infinite grid position or direction would map every point to NaN: a sum of
    nothing, silently. It is refused in one line."""
    tmp_path, plan_folder, course_folder, patient, current, earlier = case
    import pydicom

    path = deformable_reg(
        tmp_path / "d.dcm", patient, current, earlier, (-50, -50, -50), (50, 50, 50),
        np.zeros((3, 3, 3, 3), dtype=np.float32),
    )  # fmt: skip
    ds = pydicom.dcmread(path)
    setattr(ds.DeformableRegistrationSequence[0].DeformableRegistrationGridSequence[0], element,
            value)  # fmt: skip
    ds.save_as(path)
    with pytest.raises(RegistrationError) as caught:
        read_registration(path)
    assert "\n" not in str(caught.value)
