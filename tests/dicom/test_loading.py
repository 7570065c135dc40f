"""Loading and linking real DICOM RT files: every variant rtcheck accepts gives the same DVH,
and every refusal is a clear RtcheckError naming what is wrong. Files are never modified."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.metrics import evaluate_metric
from rtcheck.errors import InvalidDoseError, InvalidInputError, PlanLinkError
from rtcheck.phantom import synthetic as S
from tests.archive_factory import write_ct_slice
from tests.conftest import tree_digest, write_case
from tests.truth import LinearFieldTruth, slabs_from_planes

T = 2.0  # contour spacing, mm
ZS = list(np.arange(-16, 16.01, T) + 0.3)
SPHERE = S.RoiSpec.from_shape("Target", "PTV", S.sphere(0.5, -0.5, 0.3, 10.0), ZS)


def field(x, y, z):
    return 40.0 + 0.8 * z + 0.0 * x + 0.0 * y


TRUTH = LinearFieldTruth(slabs_from_planes(SPHERE.planes, T), 40.0, 0.8, "z")
METRICS = ("D98%[Gy]", "D50%[Gy]", "D2%[Gy]", "Mean[Gy]")


def metrics_of(folder: Path | list[Path], **kwargs) -> dict[str, float]:
    plan = load_plan(folder if isinstance(folder, list) else [folder], **kwargs)
    dvh = compute_dvh(plan.structure_set.by_name("Target"), plan.doses[0].grid)
    return {m: evaluate_metric(m, dvh) for m in METRICS}


def expected() -> dict[str, float]:
    return {
        "D98%[Gy]": TRUTH.dose_at_percent(98),
        "D50%[Gy]": TRUTH.dose_at_percent(50),
        "D2%[Gy]": TRUTH.dose_at_percent(2),
        "Mean[Gy]": TRUTH.mean(),
    }


def assert_matches_truth(values: dict[str, float], tolerance: float = 0.05) -> None:
    for name, value in expected().items():
        assert value == pytest.approx(values[name], abs=tolerance), name


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    return write_case(tmp_path / "base", [SPHERE], field, 2.5, lo=(-20,) * 3, hi=(20,) * 3)


def rewrite_dose(src: Path, dst: Path, edit) -> Path:
    """Copy a case and edit its RTDOSE (the source stays as it was)."""
    shutil.copytree(src, dst)
    ds = pydicom.dcmread(dst / "rtdose.dcm")
    edit(ds)
    ds.save_as(dst / "rtdose.dcm", enforce_file_format=True)
    return dst


def test_base_case_matches_truth_and_files_are_untouched(base):
    before = tree_digest(base)
    assert_matches_truth(metrics_of(base))
    assert tree_digest(base) == before


def test_16_and_32_bit_grids_agree(tmp_path):
    a = write_case(tmp_path / "a", [SPHERE], field, 2.5, lo=(-20,) * 3, hi=(20,) * 3, bits=16)
    assert_matches_truth(metrics_of(a))


def test_absolute_frame_offsets(base, tmp_path):
    def edit(ds):
        z0 = float(ds.ImagePositionPatient[2])
        ds.GridFrameOffsetVector = [f"{z0 + float(v):g}" for v in ds.GridFrameOffsetVector]

    assert_matches_truth(metrics_of(rewrite_dose(base, tmp_path / "abs", edit)))


def test_uneven_frame_spacing(tmp_path):
    folder = tmp_path / "uneven"
    write_case(folder, [SPHERE], field, 2.5, lo=(-20,) * 3, hi=(20,) * 3)
    zs = np.array([-20, -17, -15.5, -12, -9, -7.5, -4, -1, 0.5, 3, 6.5, 8, 11, 13.5, 17, 20.0])
    xs = ys = np.arange(-20, 20.01, 2.5)
    grid = field(xs[None, None, :], ys[None, :, None], zs[:, None, None])
    grid = np.broadcast_to(grid, (len(zs), len(ys), len(xs)))
    old = pydicom.dcmread(folder / "rtdose.dcm")
    patient = S.Patient(study_uid=old.StudyInstanceUID, frame_uid=old.FrameOfReferenceUID)
    plan_uid = old.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    ds = S.build_rtdose(patient, old.SOPInstanceUID, grid, (-20, -20, -20), (2.5, 2.5), zs + 20,
                        plan_uid, bits=32)  # fmt: skip
    S.save(ds, str(folder / "rtdose.dcm"))
    assert_matches_truth(metrics_of(folder))


#: ImageOrientationPatient of the eight patient positions (DICOM PS3.3 C.7.3.1.1.2).
POSITIONS = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
    "HFDL": (0, -1, 0, 1, 0, 0),
    "HFDR": (0, 1, 0, -1, 0, 0),
    "FFDL": (0, 1, 0, 1, 0, 0),
    "FFDR": (0, -1, 0, -1, 0, 0),
}


def reoriented(orientation):
    """An edit that stores the same HFS dose with another ImageOrientationPatient: the same
    dose at the same points, its pixels permuted and flipped, with relative frame offsets."""

    def edit(ds):
        n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
        data = np.frombuffer(ds.PixelData, dtype="<u4").reshape(n, rows, cols)  # (z, y, x)
        origin = [float(v) for v in ds.ImagePositionPatient]
        offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
        row, column = np.array(orientation[:3]), np.array(orientation[3:])
        along_row, along_column = int(np.argmax(np.abs(row))), int(np.argmax(np.abs(column)))
        if along_row == 1:
            data = data.transpose(0, 2, 1)  # rows now run along x, columns along y
        extent = [(cols - 1) * 2.5, (rows - 1) * 2.5, offsets[-1]]
        position = list(origin)
        if row[along_row] < 0:
            data, position[along_row] = data[:, :, ::-1], origin[along_row] + extent[along_row]
        if column[along_column] < 0:
            data = data[:, ::-1, :]
            position[along_column] = origin[along_column] + extent[along_column]
        if np.cross(row, column)[2] < 0:
            data, position[2] = data[::-1], origin[2] + extent[2]
        ds.PixelData = np.ascontiguousarray(data).tobytes()
        ds.Rows, ds.Columns = data.shape[1], data.shape[2]
        ds.ImagePositionPatient = [f"{v:g}" for v in position]
        ds.ImageOrientationPatient = list(orientation)

    return edit


@pytest.mark.parametrize("position", POSITIONS)
def test_every_axis_aligned_patient_position_gives_the_hfs_grid(base, tmp_path, position):
    hfs = load_plan([base]).doses[0].grid
    folder = rewrite_dose(base, tmp_path / position, reoriented(POSITIONS[position]))
    grid = load_plan([folder]).doses[0].grid
    assert np.array_equal(grid.dose_gy, hfs.dose_gy)
    for axis in ("x_mm", "y_mm", "z_mm"):
        assert getattr(grid, axis) == pytest.approx(getattr(hfs, axis), abs=1e-9)
    assert_matches_truth(metrics_of(folder))


def test_the_decubitus_pixels_are_really_transposed(base, tmp_path):
    # A dose that is not symmetric in x and y: HFDL must put each value where HFS has it.
    def skewed(ds):
        n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
        ramp = np.arange(n * rows * cols, dtype="<u4").reshape(n, rows, cols) * 1000
        ds.PixelData = ramp.tobytes()

    base = rewrite_dose(base, tmp_path / "skewed", skewed)
    hfs = load_plan([base]).doses[0].grid
    folder = rewrite_dose(base, tmp_path / "hfdl", reoriented(POSITIONS["HFDL"]))
    assert np.array_equal(load_plan([folder]).doses[0].grid.dose_gy, hfs.dose_gy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ds: setattr(ds, "DoseUnits", "RELATIVE"), "RELATIVE"),
        (lambda ds: setattr(ds, "ImageOrientationPatient", [0.9848, 0.1736, 0, -0.1736, 0.9848, 0]),
         "oblique"),
        (lambda ds: setattr(ds, "ImageOrientationPatient", [0, 1, 0, 0, 0, -1]),
         r"\[0, 1, 0, 0, 0, -1\] is oblique or not axial"),
        (lambda ds: setattr(ds, "PixelData", ds.PixelData[:-400]), "truncated or inconsistent"),
        (lambda ds: setattr(ds, "Rows", int(ds.Rows) + 1), "truncated or inconsistent"),
        (lambda ds: setattr(ds, "NumberOfFrames", int(ds.NumberOfFrames) - 1),
         "GridFrameOffsetVector has"),
        (lambda ds: setattr(ds, "GridFrameOffsetVector", [5.0] * int(ds.NumberOfFrames)),
         "neither 0"),
        (lambda ds: setattr(ds, "BitsAllocated", 8), "BitsAllocated"),
        (lambda ds: delattr(ds, "DoseGridScaling"), "DoseGridScaling is missing"),
        (lambda ds: setattr(ds, "DoseSummationType", "MULTI_PLAN"), "DoseSummationType"),
    ],
)  # fmt: skip
def test_refused_dose_grids(base, tmp_path, edit, message):
    folder = rewrite_dose(base, tmp_path / "bad", edit)
    before = tree_digest(folder)
    with pytest.raises(InvalidDoseError, match=message):
        load_plan([folder])
    assert tree_digest(folder) == before


def test_beam_doses_of_one_plan_are_summed(base, tmp_path):
    folder = tmp_path / "beams"
    shutil.copytree(base, folder)
    ds = pydicom.dcmread(folder / "rtdose.dcm")
    data = np.frombuffer(ds.PixelData, dtype="<u4").astype(np.float64)
    scaling = float(ds.DoseGridScaling)
    (folder / "rtdose.dcm").unlink()
    for i, share in enumerate((0.3, 0.7)):
        beam = pydicom.dcmread(base / "rtdose.dcm")
        beam.SOPInstanceUID = beam.file_meta.MediaStorageSOPInstanceUID = S.uid("beam", i)
        beam.DoseSummationType = "BEAM"
        beam.PixelData = np.round(data * share).astype("<u4").tobytes()
        beam.DoseGridScaling = f"{scaling:.10e}"
        beam.save_as(folder / f"beam{i}.dcm", enforce_file_format=True)
    plan = load_plan([folder])
    assert len(plan.doses) == 1 and plan.doses[0].grid.summation_type == "BEAM"
    assert len(plan.doses[0].source_uids) == 2
    assert_matches_truth(metrics_of(folder))


def test_fraction_dose_is_reported_per_fraction(base, tmp_path):
    folder = rewrite_dose(
        base, tmp_path / "fx", lambda ds: setattr(ds, "DoseSummationType", "FRACTION")
    )
    plan = load_plan([folder])
    assert plan.doses[0].per_fraction
    assert any("one fraction" in w for w in plan.warnings)


def two_plans(base: Path, folder: Path) -> Path:
    """The base case plus a second RTPLAN and RTDOSE (half the dose) on the same RTSTRUCT."""
    shutil.copytree(base, folder)
    rtplan = pydicom.dcmread(base / "rtplan.dcm")
    rtplan.SOPInstanceUID = rtplan.file_meta.MediaStorageSOPInstanceUID = S.uid("plan2")
    rtplan.RTPlanLabel = "BOOST"
    rtplan.save_as(folder / "rtplan2.dcm", enforce_file_format=True)
    dose = pydicom.dcmread(base / "rtdose.dcm")
    dose.SOPInstanceUID = dose.file_meta.MediaStorageSOPInstanceUID = S.uid("dose2")
    dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = rtplan.SOPInstanceUID
    dose.DoseGridScaling = f"{float(dose.DoseGridScaling) / 2:.10e}"
    dose.save_as(folder / "rtdose2.dcm", enforce_file_format=True)
    return folder


def test_several_plans_are_kept_apart_unless_summed(base, tmp_path):
    folder = two_plans(base, tmp_path / "two")
    plan = load_plan([folder])
    assert sorted(d.label for d in plan.doses) == ["BOOST", "PLAN"]
    single = metrics_of(base)
    summed = metrics_of(folder, sum_doses=True)
    for name in METRICS:
        assert summed[name] == pytest.approx(1.5 * single[name], abs=0.02)


def test_mismatched_frame_of_reference_is_refused(base, tmp_path):
    folder = rewrite_dose(
        base, tmp_path / "for", lambda ds: setattr(ds, "FrameOfReferenceUID", S.uid("other"))
    )
    with pytest.raises(PlanLinkError, match="FrameOfReferenceUID"):
        load_plan([folder])


def test_missing_objects_are_refused(base, tmp_path):
    no_struct = tmp_path / "nostruct"
    shutil.copytree(base, no_struct)
    (no_struct / "rtstruct.dcm").unlink()
    with pytest.raises(PlanLinkError, match="no RTSTRUCT"):
        load_plan([no_struct])
    with pytest.raises(PlanLinkError, match="no RTDOSE"):
        load_plan([base / "rtstruct.dcm", base / "rtplan.dcm"])


def test_dose_of_a_plan_not_given_is_refused(base, tmp_path):
    folder = two_plans(base, tmp_path / "two")
    (folder / "rtplan2.dcm").unlink()
    with pytest.raises(PlanLinkError, match="references RTPLAN"):
        load_plan([folder])


def test_two_structure_sets_need_a_plan_to_choose(base, tmp_path):
    folder = tmp_path / "twoss"
    shutil.copytree(base, folder)
    other = pydicom.dcmread(base / "rtstruct.dcm")
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = S.uid("ss2")
    other.save_as(folder / "rtstruct2.dcm", enforce_file_format=True)
    plan = load_plan([folder])  # the RTPLAN references the first one
    assert plan.structure_set.sop_instance_uid != other.SOPInstanceUID
    (folder / "rtplan.dcm").unlink()
    with pytest.raises(PlanLinkError, match="2 RTSTRUCTs and no RTPLAN"):
        load_plan([folder / "rtstruct.dcm", folder / "rtstruct2.dcm", folder / "rtdose.dcm"])


def test_plan_referencing_an_absent_structure_set_is_refused(base, tmp_path):
    folder = tmp_path / "ref"
    shutil.copytree(base, folder)
    plan = pydicom.dcmread(folder / "rtplan.dcm")
    plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = S.uid("elsewhere")
    plan.save_as(folder / "rtplan.dcm", enforce_file_format=True)
    with pytest.raises(PlanLinkError, match="not among the files"):
        load_plan([folder])


@pytest.mark.parametrize("name", ["rtstruct.dcm", "rtdose.dcm", "rtplan.dcm"])
def test_truncated_files_are_refused(base, tmp_path, name):
    folder = tmp_path / "trunc"
    shutil.copytree(base, folder)
    path = folder / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises((InvalidInputError, InvalidDoseError)):
        load_plan([folder])


def test_non_dicom_files(base, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    with pytest.raises(InvalidInputError, match="not a DICOM file"):
        load_plan([base, text])
    folder = tmp_path / "withtext"
    shutil.copytree(base, folder)
    (folder / "README").write_text("export notes")
    plan = load_plan([folder])
    assert any("non-DICOM" in w for w in plan.warnings)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        load_plan([tmp_path / "nowhere"])


def test_structure_partly_outside_the_dose_grid(tmp_path):
    folder = write_case(tmp_path / "edge", [SPHERE], field, 2.5, lo=(-20, -20, -5), hi=(20, 20, 20))
    plan = load_plan([folder])
    dvh = compute_dvh(plan.structure_set.by_name("Target"), plan.doses[0].grid)
    inside = (
        sum(
            area * np.clip(s.z + s.t / 2 - max(s.z - s.t / 2, -5.0), 0, s.t)
            for area, s in zip(TRUTH.areas, TRUTH.slabs, strict=True)
        )
        / 1000
    )
    assert dvh.dose_coverage == pytest.approx(inside / TRUTH.volume_cc, abs=0.002)
    assert dvh.dose_coverage < 0.9
    assert any("outside the dose grid" in w for w in dvh.warnings)
    assert dvh.min_gy >= 40.0 + 0.8 * -5.0 - 0.05  # nothing outside counted as zero dose


def test_a_dose_naming_no_plan_is_linked_to_the_only_plan_given(base, tmp_path):
    folder = rewrite_dose(
        base, tmp_path / "noref", lambda ds: delattr(ds, "ReferencedRTPlanSequence")
    )
    plan = load_plan([folder])
    assert plan.doses[0].plan is not None and plan.doses[0].plan.label == "PLAN"
    assert plan.doses[0].plan.fractions == 25
    assert any("references no RTPLAN; linked to the only RTPLAN" in w for w in plan.warnings)
    assert_matches_truth(metrics_of(folder))


def test_a_dose_naming_no_plan_among_several_plans_is_refused(base, tmp_path):
    folder = two_plans(base, tmp_path / "two")
    dose = pydicom.dcmread(folder / "rtdose.dcm")
    del dose.ReferencedRTPlanSequence
    dose.save_as(folder / "rtdose.dcm", enforce_file_format=True)
    with pytest.raises(PlanLinkError, match="references no RTPLAN and 2 RTPLANs are given"):
        load_plan([folder])


def without_file_meta(path: Path) -> None:
    """Rewrite a file as old exports wrote it: no preamble, no File Meta header."""
    ds = pydicom.dcmread(path)
    ds.preamble = None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"


def test_headerless_rt_files_are_read_with_a_warning(base, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(base, folder)
    for name in ("rtstruct.dcm", "rtdose.dcm"):
        without_file_meta(folder / name)
    plan = load_plan([folder])
    notes = [w for w in plan.warnings if "File Meta header" in w]
    assert len(notes) == 2
    assert_matches_truth(metrics_of(folder))
    assert_matches_truth(metrics_of([folder / "rtstruct.dcm", folder / "rtdose.dcm"]))


def test_pydicoms_headerless_rtstruct_is_read():
    from pydicom.data import get_testdata_file

    from rtcheck.dicom.files import NO_HEADER_NOTE, read_dicom
    from rtcheck.dicom.structures import read_structure_set

    path = get_testdata_file("rtstruct.dcm")
    ds, note = read_dicom(path)
    assert note == NO_HEADER_NOTE
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    structures = read_structure_set(ds, path).structures
    # Its body outline on three planes 10 mm apart, and two isocentre points (skipped, said).
    assert [s.name for s in structures] == ["patient", "Isocenter 1", "Isocenter 2"]
    body = structures[0]
    assert [p.z_mm for p in body.planes] == [-200.0, -190.0, -180.0]
    assert body.slabs()[1] - body.slabs()[0] == pytest.approx([10.0, 10.0, 10.0])
    assert "POINT contour" in structures[1].warnings[0]


def test_a_text_file_with_an_rt_name_is_still_not_dicom(base, tmp_path):
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "rtstruct.dcm").write_text("SOPClassUID 1.2.840.10008.5.1.4.1.1.481.3\n" * 20)
    shutil.copy(base / "rtdose.dcm", folder / "rtdose.dcm")
    with pytest.raises(
        PlanLinkError, match=r"no RTSTRUCT among the files given \(1 file skipped: not DICOM\)"
    ):
        load_plan([folder])
    with pytest.raises(InvalidInputError, match="not a DICOM file"):
        load_plan([folder / "rtstruct.dcm", folder / "rtdose.dcm"])


def test_refusals_count_the_files_skipped(base, tmp_path):
    folder = tmp_path / "skips"
    folder.mkdir()
    shutil.copy(base / "rtdose.dcm", folder / "rtdose.dcm")
    for k in range(3):
        (folder / f"notes{k}.txt").write_text("export notes")
    write_ct_slice(folder / "ct.dcm", "skips", 0.0)
    expected = r"no RTSTRUCT .*\(3 files skipped: not DICOM; 1 file skipped: not an RT object\)"
    with pytest.raises(PlanLinkError, match=expected):
        load_plan([folder])
