"""Hostile and broken input: a malformed value is a one-line refusal naming the file, the element
and the value (exit 2), never an internal error; damaged geometry makes the limits on that
structure not evaluated, never a silent number; outputs never overwrite inputs."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom import config

from rtcheck.cli import main
from tests.conftest import tree_digest

PHANTOM = Path(__file__).resolve().parents[1] / "phantom_data" / "thorax"
RS, RD, RP = "RS.thorax.dcm", "RD.thorax.dcm", "RP.thorax.dcm"
# pydicom warns about every malformed value these tests write and read: that is the point.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def write_anything():
    """Let pydicom write the malformed values these tests need."""
    before = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    yield
    config.settings.writing_validation_mode = before


def copy_phantom(tmp_path: Path) -> Path:
    folder = tmp_path / "plan"
    shutil.copytree(PHANTOM, folder)
    return folder


def edit(folder: Path, name: str, change) -> Path:
    ds = pydicom.dcmread(folder / name)
    change(ds)
    ds.save_as(folder / name)
    return folder


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys, folder: Path, *fragments: str, command: str = "dvh") -> None:
    before = tree_digest(folder)
    code, _, err = run(capsys, command, str(folder))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtcheck: error: "), err
    assert "internal error" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert tree_digest(folder) == before


def set_value(keyword: str, value):
    return lambda ds: setattr(ds, keyword, value)


PLACEHOLDER = "9.87654321"


def patched(folder: Path, name: str, change, bad: str) -> Path:
    """Write ``PLACEHOLDER`` with ``change``, then replace its bytes by ``bad`` (padded to the
    same length): pydicom will not write a DS or IS that is not a number, a damaged file does."""
    edit(folder, name, change)
    data = (folder / name).read_bytes()
    assert data.count(PLACEHOLDER.encode()) == 1
    (folder / name).write_bytes(data.replace(PLACEHOLDER.encode(), bad.ljust(10).encode()))
    return folder


@pytest.mark.parametrize(
    ("keyword", "value", "fragment"),
    [
        ("DoseGridScaling", "1e30", "not a finite number within"),
        ("DoseGridScaling", "nan", "not a finite number"),
        ("DoseGridScaling", "-1e-5", "is not positive"),
        ("PixelSpacing", ["nan", "3"], "PixelSpacing"),
        ("PixelSpacing", ["inf", "3"], "PixelSpacing"),
        ("PixelSpacing", ["0", "3"], "is not positive"),
        ("PixelSpacing", ["1e308", "3"], "not a finite number within"),
        ("PixelSpacing", ["3"], "PixelSpacing has 1 values, not 2"),
        ("ImagePositionPatient", ["nan", "0", "0"], "ImagePositionPatient"),
        ("ImagePositionPatient", ["1e308", "0", "0"], "not a finite number within"),
        ("ImageOrientationPatient", ["1", "0", "0", "0", "1"], "has 5 values, not 6"),
        ("NumberOfFrames", "-3", "NumberOfFrames"),
        ("Rows", 0, "Rows 0 is not a whole number from 1"),
        ("BitsAllocated", 12, "BitsAllocated 12 is not supported"),
        ("GridFrameOffsetVector", ["0", "inf"], "GridFrameOffsetVector"),
    ],
)
def test_malformed_dose_values_are_refused_by_name(tmp_path, capsys, keyword, value, fragment):
    folder = edit(copy_phantom(tmp_path), RD, set_value(keyword, value))
    assert_refused(capsys, folder, RD, fragment)


@pytest.mark.parametrize(
    ("keyword", "fragment"),
    [
        ("DoseGridScaling", "DoseGridScaling"),
        ("NumberOfFrames", "NumberOfFrames"),
        ("GridFrameOffsetVector", "GridFrameOffsetVector"),
        ("ImagePositionPatient", "ImagePositionPatient"),
    ],
)
@pytest.mark.parametrize("bad", ["abc", "1,5", "--"])
def test_values_that_are_not_numbers_are_refused_by_name(tmp_path, capsys, keyword, fragment, bad):
    def change(ds):
        value = ds[keyword].value
        if keyword in ("GridFrameOffsetVector", "ImagePositionPatient"):
            ds[keyword].value = [PLACEHOLDER, *list(value)[1:]]
        else:
            ds[keyword].value = PLACEHOLDER

    folder = patched(copy_phantom(tmp_path), RD, change, bad)
    assert_refused(capsys, folder, RD, fragment)


def test_a_dose_beyond_any_plan_is_refused(tmp_path, capsys):
    # A DoseGridScaling off by 10^6 (a corrupt file): 10^7 Gy is no plan's dose.
    def scale(ds):
        ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * 1e6:.6g}"

    folder = edit(copy_phantom(tmp_path), RD, scale)
    assert_refused(capsys, folder, "more than 10000 Gy", "DoseGridScaling")


def first_contour(ds, roi_name: str):
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == roi_name)
    item = next(c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number)
    return item


@pytest.mark.parametrize(
    ("name", "change", "fragment"),
    [
        (RS, lambda ds: setattr(ds.StructureSetROISequence[2], "ROINumber", "-1.5"),
         "StructureSetROISequence item 3: ROINumber -1.5 is not a whole number"),
        (RS, lambda ds: delattr(ds.ROIContourSequence[1], "ReferencedROINumber"),
         "ROIContourSequence item 2: ReferencedROINumber is missing"),
        (RS, lambda ds: setattr(ds.RTROIObservationsSequence[0], "ReferencedROINumber", "1.5"),
         "RTROIObservationsSequence item 1: ReferencedROINumber"),
        (RP, lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", "-5"),
         "NumberOfFractionsPlanned -5"),
        (RP, lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", "2.5"),
         "NumberOfFractionsPlanned"),
        (RP, lambda ds: setattr(ds.DoseReferenceSequence[0], "TargetPrescriptionDose", "inf"),
         "DoseReferenceSequence item 1: TargetPrescriptionDose"),
        (RP, lambda ds: setattr(ds.DoseReferenceSequence[0], "TargetPrescriptionDose", "-50"),
         "is not positive"),
    ],
)  # fmt: skip
def test_malformed_structure_and_plan_values_are_refused_by_name(
    tmp_path, capsys, name, change, fragment
):
    folder = edit(copy_phantom(tmp_path), name, change)
    assert_refused(capsys, folder, name, fragment)


def test_words_where_numbers_belong_in_a_plan_or_structure_set_are_refused(tmp_path, capsys):
    fractions = lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned",  # noqa: E731
                                   PLACEHOLDER)  # fmt: skip
    folder = patched(copy_phantom(tmp_path), RP, fractions, "abc")
    assert_refused(capsys, folder, RP, "NumberOfFractionsPlanned 'abc")
    roi_number = lambda ds: setattr(ds.StructureSetROISequence[1], "ROINumber", PLACEHOLDER)  # noqa: E731
    folder = patched(copy_phantom(tmp_path / "b"), RS, roi_number, "abc")
    assert_refused(capsys, folder, RS, "StructureSetROISequence item 2: ROINumber 'abc")


def check_record(capsys, folder: Path, *extra: str) -> tuple[int, dict]:
    code, out, err = run(capsys, "check", str(folder), "--json", "-", *extra)
    assert code in (0, 1, 3), err
    return code, json.loads(out)


def cord_limits(record: dict) -> list[dict]:
    return [e for e in record["limits"] if e["structure"] == "SpinalCord"]


def test_cord_planes_002_mm_apart_make_the_cord_limits_not_evaluated(tmp_path, capsys):
    # A stray copy of one cord contour 0.02 mm above it: the cord's D0.03cc was under-read by
    # 1.8 Gy with the old slab rule, silently.
    def shifted_copy(ds):
        item = first_contour(ds, "Cord")
        copy = pydicom.dataset.Dataset()
        source = item.ContourSequence[40]
        copy.ContourGeometricType = "CLOSED_PLANAR"
        data = [float(v) for v in source.ContourData]
        data[2::3] = [z + 0.02 for z in data[2::3]]
        copy.NumberOfContourPoints = len(data) // 3
        copy.ContourData = [f"{v:.4f}" for v in data]
        item.ContourSequence.append(copy)

    folder = edit(copy_phantom(tmp_path), RS, shifted_copy)
    code, record = check_record(capsys, folder)
    assert code == 3 and record["criterion_19"]["decision"] == "indeterminate"
    limits = cord_limits(record)
    assert limits and all(e["result"] == "not_evaluated" for e in limits)
    assert all("0.02 mm apart, much closer than the" in e["reason"] for e in limits)
    assert all("inside the dose grid" not in e["reason"] for e in limits)


def test_a_repeated_cord_contour_is_named_as_such(tmp_path, capsys):
    def repeated(ds):
        item = first_contour(ds, "Cord")
        item.ContourSequence.append(item.ContourSequence[30])

    folder = edit(copy_phantom(tmp_path), RS, repeated)
    code, record = check_record(capsys, folder)
    assert code == 3
    limits = cord_limits(record)
    assert all("a contour is repeated on the plane" in e["reason"] for e in limits)


@pytest.mark.parametrize(
    ("bad", "axis"),
    [(bad, 0) for bad in ("nan", "inf", "-1e308", "abc", "1e5.5")]
    + [("nan", 1), ("-1e308", 1), ("inf", 2), ("1e308", 2)],
)
def test_contour_coordinates_that_are_not_numbers_make_the_limits_not_evaluated(
    tmp_path, capsys, bad, axis
):
    def damaged(ds):
        contour = first_contour(ds, "Cord").ContourSequence[20]
        data = list(contour.ContourData)
        data[3 + axis] = PLACEHOLDER  # the second point's x, y or z
        contour.ContourData = data

    folder = patched(copy_phantom(tmp_path), RS, damaged, bad)
    code, record = check_record(capsys, folder)
    assert code == 3
    reasons = [e["reason"] for e in cord_limits(record)]
    assert reasons and all("cannot be trusted: skipped 1 contour" in r for r in reasons)
    # rtcheck dvh still gives its numbers, with the defect as a warning.
    code, _, err = run(capsys, "dvh", str(folder), "--structure", "Cord")
    assert code == 0 and "ROI 'Cord': skipped 1 contour" in err


def test_a_zero_area_contour_is_skipped_with_a_warning_only(tmp_path, capsys):
    def flat(ds):
        item = first_contour(ds, "Cord")
        copy = pydicom.dataset.Dataset()
        copy.ContourGeometricType = "CLOSED_PLANAR"
        z = float(item.ContourSequence[10].ContourData[2])
        copy.ContourData = ["0", "0", f"{z}", "5", "5", f"{z}", "10", "10", f"{z}"]
        item.ContourSequence.append(copy)

    folder = edit(copy_phantom(tmp_path), RS, flat)
    code, record = check_record(capsys, folder)
    assert code == 0
    assert any("skipped 1 contour of zero area" in w for w in record["warnings"]) or all(
        e["result"] == "pass" for e in cord_limits(record)
    )


def write_map(tmp_path: Path, text: str) -> str:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("{site: lungs}", "lesions.PTV_M1_lungR.site: 'lungs' is not a known site (adrenal"),
        ("{site: 3}", "site: 3 is not a known site"),
        ("{site: [lung]}", "is not a known site"),
        ("{fractions: 2.5}", "fractions: 2.5 is not a whole number of fractions"),
        ("{fractions: '3'}", "fractions: '3' is not a whole number"),
        ("{fractions: 0}", "fractions: 0"),
        ("{fractions: true}", "fractions: True"),
        ("{prescription_gy: '30'}", "prescription_gy: '30' is not a dose in Gy"),
        ("{prescription_gy: -30}", "prescription_gy: -30"),
        ("{prescription_gy: .nan}", "prescription_gy: nan"),
        ("{prescription_gy: 3000}", "at most 200"),
        ("{dose: 30}", "give site, prescription_gy and/or fractions"),
        ("[lung]", "give site, prescription_gy and/or fractions"),
    ],
)
def test_map_file_lesion_entries_are_validated(tmp_path, capsys, entry, fragment):
    mapping = write_map(tmp_path, f"lesions:\n  PTV_M1_lungR: {entry}\n")
    code, _, err = run(capsys, "check", str(PHANTOM), "--map", mapping)
    assert code == 2 and fragment in err and err.count("\n") == 1, err


def test_a_valid_map_site_is_used(tmp_path, capsys):
    mapping = write_map(tmp_path, "lesions:\n  PTV_M1_lungR: {site: Lung, fractions: 25}\n")
    code, record = check_record(capsys, PHANTOM, "--map", mapping)
    assert code == 0
    m1 = next(lesion for lesion in record["lesions"] if lesion["name"] == "M1")
    assert m1["site"] == "lung" and m1["site_evidence"] == "map file"


@pytest.mark.parametrize(("command", "option", "target"), [
    ("check", "--json", RS), ("check", "--html", RD), ("dvh", "--json", RP), ("dvh", "--csv", RS),
])  # fmt: skip
def test_outputs_never_overwrite_an_input(tmp_path, capsys, command, option, target):
    folder = copy_phantom(tmp_path)
    before = tree_digest(folder)
    code, _, err = run(capsys, command, str(folder), option, str(folder / target))
    assert code == 2 and "rtcheck never writes over its inputs" in err
    assert tree_digest(folder) == before


def test_an_output_that_is_an_input_by_another_name_is_refused(tmp_path, capsys):
    folder = copy_phantom(tmp_path)
    link = tmp_path / "record.json"
    os.link(folder / RS, link)  # the same file under another name
    before = tree_digest(folder)
    code, _, err = run(capsys, "check", str(folder), "--json", str(link))
    assert code == 2 and "is an input" in err
    assert tree_digest(folder) == before
    mapping = write_map(tmp_path, "Cord: SpinalCord\n")
    code, _, err = run(capsys, "check", str(folder), "--map", mapping, "--html", mapping)
    assert code == 2 and "is an input" in err


# -- bounded memory and time ---------------------------------------------------------------


def test_a_dose_grid_declaring_more_voxels_than_the_limit_is_refused_before_reading(
    tmp_path, capsys
):
    def huge(ds):
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
        ds.GridFrameOffsetVector = [f"{3 * k}" for k in range(1000)]

    folder = edit(copy_phantom(tmp_path), RD, huge)
    assert_refused(capsys, folder, "4,294,836,225,000 dose voxels, more than the limit of",
                   "RTCHECK_MAX_DOSE_VOXELS")  # fmt: skip


def test_every_limit_can_be_lowered_and_names_its_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RTCHECK_MAX_DOSE_VOXELS", "1000")
    assert_refused(capsys, PHANTOM, "more than the limit of 1,000", "RTCHECK_MAX_DOSE_VOXELS")
    monkeypatch.setenv("RTCHECK_MAX_DOSE_VOXELS", "many")
    assert_refused(capsys, PHANTOM, "RTCHECK_MAX_DOSE_VOXELS='many' is not a whole number")
    monkeypatch.delenv("RTCHECK_MAX_DOSE_VOXELS")
    monkeypatch.setenv("RTCHECK_MAX_CONTOUR_POINTS", "5000")
    assert_refused(capsys, PHANTOM, RS, "contour points, more than the limit of 5,000")


def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path, capsys, monkeypatch):
    # 48 MB of zero dose deflates to about 50 kB; with the limit at 20 MB it is refused after
    # inflating a little more than 20 MB, by rtcheck dvh and by the batch indexer alike.
    def bomb(ds):
        frames = 300
        ds.Rows, ds.Columns, ds.NumberOfFrames = 200, 200, frames
        ds.GridFrameOffsetVector = [f"{k}" for k in range(frames)]
        ds.BitsAllocated = ds.BitsStored = 32
        ds.HighBit = 31
        ds.PixelData = bytes(200 * 200 * frames * 4)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian

    folder = copy_phantom(tmp_path)
    ds = pydicom.dcmread(folder / RD)
    bomb(ds)
    ds.save_as(folder / RD, enforce_file_format=True)
    assert (folder / RD).stat().st_size < 1_000_000
    monkeypatch.setenv("RTCHECK_MAX_INFLATED_BYTES", "20000000")
    assert_refused(capsys, folder, "a deflated file that inflates to more than 20,000,000 bytes",
                   "RTCHECK_MAX_INFLATED_BYTES")  # fmt: skip
    from rtcheck.archive.index import index_archive

    index = index_archive(folder)
    assert any("inflates to more than" in reason for _, reason in index.unreadable)


def test_a_contour_of_too_many_points_makes_the_limits_not_evaluated(tmp_path, capsys, monkeypatch):
    def dense(ds):
        contour = first_contour(ds, "Cord").ContourSequence[25]
        z = float(contour.ContourData[2])
        points = [(40 + 5 * math.cos(t), 80 + 5 * math.sin(t)) for t in
                  (2 * math.pi * k / 600 for k in range(600))]  # fmt: skip
        contour.ContourData = [f"{v:.3f}" for x, y in points for v in (x, y, z)]

    folder = edit(copy_phantom(tmp_path), RS, dense)
    monkeypatch.setenv("RTCHECK_MAX_POINTS_PER_CONTOUR", "500")
    code, record = check_record(capsys, folder)
    assert code == 3
    reasons = [e["reason"] for e in cord_limits(record)]
    assert reasons and all("RTCHECK_MAX_POINTS_PER_CONTOUR" in r for r in reasons)


def test_a_coordinate_typo_of_metres_is_refused_by_the_sampling_limit(tmp_path, capsys):
    # A cord contour with points 50 m away in x and in y: its sampling grid would span 50 m by
    # 50 m (277 million pixels a plane at the 3 mm dose spacing).
    def typo(ds):
        contour = first_contour(ds, "Cord").ContourSequence[25]
        data = list(contour.ContourData)
        data[0], data[4] = "50000.0", "50000.0"
        contour.ContourData = data

    folder = edit(copy_phantom(tmp_path), RS, typo)
    code, record = check_record(capsys, folder)
    assert code == 3
    reasons = [e["reason"] for e in cord_limits(record)]
    assert reasons and all("sampling pixels per plane" in r for r in reasons)
    assert all("RTCHECK_MAX_SAMPLING_PIXELS" in r for r in reasons)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x [1, 2]\nb: *x\n", "anchors (&name) are not allowed"),
        ("lesions:\n  PTV_M1_lungR: *x\n", "not valid YAML"),
        ("x: [" + "1, " * 400_000 + "1]\n", "more than the limit of 1,000,000"),
        ("lesions: [\n", "not valid YAML"),
    ],
)
def test_yaml_bombs_and_oversized_files_are_refused(tmp_path, capsys, text, fragment):
    mapping = write_map(tmp_path, text)
    code, _, err = run(capsys, "check", str(PHANTOM), "--map", mapping)
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(text)
    code, _, err = run(capsys, "check", str(PHANTOM), "--protocol", str(protocol))
    assert code == 2 and fragment in err and err.count("\n") == 1, err


# -- names and writes ------------------------------------------------------------------------


def test_plan_file_names_never_collide():
    from rtcheck.outputs.filenames import plan_file_name

    long_a, long_b = "1.2." + "3" * 80 + "1", "1.2." + "3" * 80 + "2"
    pairs = [
        (("PAT", long_a), ("PAT", long_b)),  # alike in the first 64 characters
        (("PAT", "1.2/3"), ("PAT", "1.2_3")),  # alike once sanitised
        (("A/B", "1.2.3"), ("A_B", "1.2.3")),
        (("P" * 90 + "1", "1.2"), ("P" * 90 + "2", "1.2")),
    ]
    for (p1, k1), (p2, k2) in pairs:
        one, two = plan_file_name(p1, k1, ".json"), plan_file_name(p2, k2, ".json")
        assert one != two and "/" not in one + two and len(one) < 140
    assert plan_file_name("PAT", "1.2.3", ".json") == plan_file_name("PAT", "1.2.3", ".json")


def test_nothing_is_written_into_home(tmp_path):
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME",
                                                             "XDG_CONFIG_HOME")}  # fmt: skip
    env["HOME"] = str(home)
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck", "check", str(PHANTOM), "--html", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "<svg" in out.read_text()
    assert list(home.rglob("*")) == []


# -- protocol files of the wrong shape -------------------------------------------------------


def _node_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _node_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _node_paths(value, (*prefix, index))


def test_every_entry_of_a_protocol_replaced_by_the_wrong_type_is_a_clear_error(tmp_path):
    # Each node of the bundled protocol in turn becomes null, a number, text, a list, a mapping,
    # a negative number, a boolean, a matplotlib math string or NaN: 1,800 documents, each loads
    # or is refused with one line naming the file, never an internal error. (The documents go
    # straight to the validation that load_protocol applies after parsing the YAML.)
    import copy

    import yaml

    from rtcheck.errors import RtcheckError
    from rtcheck.protocol.definition import _Reader

    source = Path(__file__).resolve().parents[1] / "constraints" / "eso-oligo-rt.yaml"
    document = yaml.safe_load(source.read_text())
    replacements = [None, 7, "text", [1, 2], {"a": 1}, -1.5, True, "$\\frac{a", float("nan")]
    path = "changed/protocol.yaml"
    refused = 0
    for node in list(_node_paths(document))[1:]:
        for replacement in replacements:
            changed = copy.deepcopy(document)
            parent = changed
            for key in node[:-1]:
                parent = parent[key]
            parent[node[-1]] = replacement
            try:
                _Reader(path, "0" * 64).protocol(changed)
            except RtcheckError as exc:
                assert "\n" not in str(exc) and str(exc).startswith(path)
                refused += 1
    assert refused > 1000


def test_a_math_string_in_a_structure_name_is_drawn_as_text(tmp_path, capsys):
    protocol = Path(__file__).resolve().parents[1] / "constraints" / "eso-oligo-rt.yaml"
    # Single-quoted in YAML, where a backslash is itself; matplotlib would parse "$\frac{$" as
    # (broken) mathematics.
    text = protocol.read_text().replace("Lungs-PTVs", "'Lungs-PTVs$\\frac{$'")
    changed = tmp_path / "protocol.yaml"
    changed.write_text(text)
    out = tmp_path / "report.html"
    code, _, err = run(capsys, "check", str(PHANTOM), "--protocol", str(changed), "--html",
                       str(out))  # fmt: skip
    assert code == 0, err
    assert "Lungs-PTVs$\\frac{$" in out.read_text()


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("{structure: SpinalCord, metric: \"D0.03cc[Gy]\", limit: \"<= 45\"",
         "{structure: SpinalChord, metric: \"D0.03cc[Gy]\", limit: \"<= 45\"",
         "'SpinalChord' is neither a TG-263 name nor derived in this file (did you mean "
         "'SpinalCord'?)"),
        ("union: [Lung_L, Lung_R], minus: [PTVs]", "union: [Lung_L, Lung_RR], minus: [PTVs]",
         "derived.Lungs-PTVs: 'Lung_RR' is neither a TG-263 name"),
        ('metric: "V20Gy[%]", limit: "<= 25"', 'metric: "V20Gy[%]", limit: "<= 125"',
         "a volume in % is at most 100"),
        ('metric: "V20Gy[%]", limit: "<= 25"', 'metric: "V20Gy[%]", limit: ">= 0"',
         "always holds: the metric is never negative"),
        ('metric: "Mean[Gy]", limit: "<= 20"', 'metric: "Mean[Gy]", limit: "< 0"',
         "never holds"),
    ],
)  # fmt: skip
def test_a_protocol_is_checked_when_it_is_loaded(tmp_path, capsys, old, new, fragment):
    source = Path(__file__).resolve().parents[1] / "constraints" / "eso-oligo-rt.yaml"
    text = source.read_text()
    assert old in text
    changed = tmp_path / "protocol.yaml"
    changed.write_text(text.replace(old, new, 1))
    code, _, err = run(capsys, "check", str(PHANTOM), "--protocol", str(changed))
    assert code == 2 and fragment in err and err.count("\n") == 1, err


def test_a_map_target_must_be_a_tg263_name(tmp_path, capsys):
    mapping = write_map(tmp_path, "Myelon: SpinalChord\n")
    code, _, err = run(capsys, "check", str(PHANTOM), "--map", mapping)
    assert code == 2 and "'SpinalChord' is not a TG-263 name (did you mean 'SpinalCord'?)" in err
    derived = write_map(tmp_path, "'Lungs minus PTVs': Lungs-PTVs\n")
    code, _, err = run(capsys, "check", str(PHANTOM), "--map", derived)
    assert code == 0, err  # a structure derived in the protocol is a valid target


def test_a_dose_grid_finer_than_any_calculation_is_refused_up_front(tmp_path, capsys):
    folder = edit(copy_phantom(tmp_path), RD, lambda ds: setattr(ds, "PixelSpacing", [0.01, 0.01]))
    code, _, err = run(capsys, "check", str(folder))
    assert code == 2 and "PixelSpacing [0.01, 0.01] mm is finer than 0.1 mm" in err


def test_the_finest_accepted_dose_grid_bounds_each_dvh_not_the_machine(tmp_path, capsys):
    # 0.1 mm is accepted; the large ROIs would need hundreds of millions of samples: each is
    # refused by the per-ROI limit (not evaluated, named), at once.
    folder = edit(copy_phantom(tmp_path), RD, lambda ds: setattr(ds, "PixelSpacing", [0.1, 0.1]))
    code, out, _ = run(capsys, "check", str(folder))
    assert code == 3 and "RTCHECK_MAX_SAMPLES_PER_ROI" in out


def _with_lesion_targets(ds: pydicom.Dataset, count: int) -> None:
    """``count`` more PTV ROIs named PTV_M1...: one small square contour each."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    frame = ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    for i in range(1, count + 1):
        number = 5000 + i
        roi, observation, contour, item = Dataset(), Dataset(), Dataset(), Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, frame
        roi.ROIName, roi.ROIGenerationAlgorithm = f"PTV_M{i}", "MANUAL"
        observation.ObservationNumber = observation.ReferencedROINumber = number
        observation.RTROIInterpretedType, observation.ROIInterpreter = "PTV", ""
        x, y = -80.0 + i % 20, 10.0 + (i // 20) % 20
        item.ContourGeometricType, item.NumberOfContourPoints = "CLOSED_PLANAR", 4
        item.ContourData = [x, y, 85.0, x + 0.5, y, 85.0, x + 0.5, y + 0.5, 85.0, x, y + 0.5, 85.0]
        contour.ReferencedROINumber, contour.ContourSequence = number, Sequence([item])
        ds.StructureSetROISequence.append(roi)
        ds.RTROIObservationsSequence.append(observation)
        ds.ROIContourSequence.append(contour)


def test_thousands_of_lesion_targets_are_refused_before_any_work_per_lesion(tmp_path, capsys):
    folder = copy_phantom(tmp_path)
    ds = pydicom.dcmread(folder / RS)
    for item in list(ds.StructureSetROISequence):  # the phantom's own lesions go first
        if "M" in item.ROIName.upper() and "PTV" in item.ROIName.upper():
            item.ROIName = f"ptv old {item.ROINumber}"
    _with_lesion_targets(ds, 10_000)
    ds.save_as(folder / RS)
    code, _, err = run(capsys, "check", str(folder))
    assert code == 2
    assert "10,000 numbered lesion targets (PTV_M1...), more than the limit of 50" in err
    assert "RTCHECK_MAX_LESIONS" in err
