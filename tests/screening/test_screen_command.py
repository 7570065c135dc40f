"""`rtcheck screen` as a user runs it: exit statuses, the record against its schema, the report,
the map file's primary: section, and bad input in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import jsonschema
import pydicom

from rtcheck.outputs.screening import SCHEMA_RESOURCE

SCHEMA = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())


def rtcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtcheck", *args], capture_output=True, text=True, timeout=180
    )


def test_a_structure_set_made_to_fail_is_excluded_by_geometry(tmp_path):
    folder = tmp_path / "plan"
    made = rtcheck("phantom", str(folder), "--lesions", "0", "--no-primary",
                   "--esophagus-overlap", "1.0", "--lesion-plan", "40/5")  # fmt: skip
    assert made.returncode == 0, made.stderr
    record_path, page = tmp_path / "screen.json", tmp_path / "screen.html"
    rs = folder / "RS.thorax.dcm"
    plan = folder / "RP.M1.dcm"
    result = rtcheck("screen", str(rs), str(plan), "--json", str(record_path), "--html", str(page))
    assert result.returncode == 1, result.stderr
    assert "EXCLUDED_BY_GEOMETRY" in result.stdout and "CANNOT BE MET" in result.stdout
    record = json.loads(record_path.read_text())
    jsonschema.validate(record, SCHEMA)
    assert record["record_type"] == "screening"
    assert record["criterion_19"]["decision"] == "excluded_by_geometry"
    assert 'data-decision="excluded_by_geometry"' in page.read_text()
    # The same structure set without an RTPLAN: the prescription from the map file.
    facts = tmp_path / "facts.yaml"
    facts.write_text("lesions:\n  PTV_M1_node: {prescription_gy: 40, fractions: 5}\n")
    mapped = rtcheck("screen", str(rs), "--map", str(facts), "--json", "-")
    assert mapped.returncode == 1, mapped.stderr
    assert json.loads(mapped.stdout)["courses"][0]["prescription_evidence"] == "map file"
    # Without either: indeterminate, and why.
    unknown = rtcheck("screen", str(rs))
    assert unknown.returncode == 3 and "prescription or fractions of M1 unknown" in unknown.stdout


def test_the_thorax_needs_a_plan_and_the_primary_comes_from_the_map(tmp_path):
    folder = tmp_path / "plan"
    assert rtcheck("phantom", str(folder)).returncode == 0
    result = rtcheck("screen", str(folder / "RS.thorax.dcm"), "--json", "-")
    assert result.returncode == 3  # no RTPLAN: the prescriptions are unknown
    facts = tmp_path / "facts.yaml"
    facts.write_text(
        "primary: {prescription_gy: 50, fractions: 25}\n"
        "lesions:\n"
        '  "PTV_M1_lungR": {prescription_gy: 50, fractions: 25}\n'
        '  "ptv m2 liver": {prescription_gy: 50, fractions: 25}\n'
        '  "PTV_M3_T8": {prescription_gy: 50, fractions: 25}\n'
    )
    mapped = rtcheck("screen", str(folder / "RS.thorax.dcm"), "--map", str(facts), "--json", "-")
    assert mapped.returncode == 0, mapped.stdout
    record = json.loads(mapped.stdout)
    jsonschema.validate(record, SCHEMA)
    assert record["criterion_19"]["decision"] == "plan_needed"
    primary = next(c for c in record["courses"] if c["name"] == "primary")
    assert (primary["prescription_gy"], primary["fractions"]) == (50.0, 25)
    near = {(p["structure"], p["target_roi"]): p for p in record["proximity"]}
    assert near[("Esophagus", "PTV_50")]["distance_mm"] == 0.0
    assert near[("Esophagus", "PTV_50")]["within_cc"][0]["volume_cc"] > 10


def test_bad_input_is_one_line_and_hostile_names_are_escaped(tmp_path):
    folder = tmp_path / "plan"
    assert rtcheck("phantom", str(folder), "--lesions", "1").returncode == 0
    rs = folder / "RS.thorax.dcm"
    ds = pydicom.dcmread(rs)
    item = next(i for i in ds.StructureSetROISequence if i.ROIName == "PTV_M1_lungR")
    item.ROIName = "PTV_M1 <script>x</script>\nFAKE"
    ds.save_as(rs)
    page = tmp_path / "p.html"
    result = rtcheck("screen", str(folder), "--html", str(page))
    assert result.returncode in (0, 3), result.stderr
    text = page.read_text()
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "\nFAKE" not in result.stdout and "?FAKE" in result.stdout
    for args, fragment in (
        ([str(tmp_path / "missing")], "no such file"),
        ([str(rs), "--protocol", "nope"], "no bundled protocol"),
        ([str(rs), "--json", str(rs)], "input"),
    ):
        bad = rtcheck("screen", *args)
        assert bad.returncode == 2 and fragment in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_an_esophagus_overlap_that_cannot_be_drawn_is_one_line(tmp_path):
    for value in ("nan", "1e9", "-1", "0"):
        made = rtcheck("phantom", str(tmp_path / value), "--esophagus-overlap", value)
        assert made.returncode == 2 and "--esophagus-overlap" in made.stderr, made.stderr
        assert len(made.stderr.strip().splitlines()) == 1
        assert not (tmp_path / value).exists()
