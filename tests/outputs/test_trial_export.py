"""`rtcheck export`: eligibility records of three real checks (not excluded, excluded,
indeterminate) into a trial's data system, each format checked by something rtcheck did not
write: FHIR Bundles by the `fhir.resources` R4B models, the REDCap import file against the data
dictionary's own choices and validation types, CDISC ODM against the ODM 1.3.2 XML schema (as
odmlib ships it)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.record import eligibility_record
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol.definition import load_protocol

PATIENTS = {"PHANTOM-001": "ESO-0001", "PHANTOM-002": "ESO-0002", "PHANTOM-003": "ESO-0003"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, phantom_dir: Path) -> Path:
    """Three records (PHANTOM-001 not excluded, -002 excluded by its cord, -003 indeterminate:
    no cord contoured) and the subject map."""
    out = tmp_path_factory.mktemp("export")
    variants = {
        "PHANTOM-002": ThoraxPhantom(patient_id="PHANTOM-002", seed="x2", cord_dose_fraction=0.95),
        "PHANTOM-003": ThoraxPhantom(patient_id="PHANTOM-003", seed="x3",
                                     renamed=(("Cord", None),)),
    }  # fmt: skip
    plans = {"PHANTOM-001": phantom_dir}
    for patient, phantom in variants.items():
        plans[patient] = out / patient
        write_thorax_phantom(plans[patient], phantom)
    for patient, plan_dir in plans.items():
        record = eligibility_record(evaluate(load_plan([plan_dir]), load_protocol()))
        (out / f"record-{patient[-1]}.json").write_text(json.dumps(record))
    rows = ["patient_id,subject_key", *(f"{p},{s}" for p, s in PATIENTS.items())]
    (out / "subjects.csv").write_text("\n".join(rows) + "\n")
    return out


def export(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "export", *args],
        capture_output=True, text=True, timeout=120, cwd=folder,
    )  # fmt: skip


def records(folder: Path) -> list[str]:
    return [str(folder / f"record-{p[-1]}.json") for p in PATIENTS]


def decision_of(folder: Path, patient: str) -> str:
    record = json.loads((folder / f"record-{patient[-1]}.json").read_text())
    return str(record["criterion_19"]["decision"])


def test_the_three_records_are_what_the_tests_below_expect(folder):
    assert [decision_of(folder, p) for p in PATIENTS] == [
        "not_excluded", "excluded", "indeterminate",
    ]  # fmt: skip


# REDCap ---------------------------------------------------------------------------------------

_SYSTEM_COLUMNS = {"redcap_repeat_instrument", "redcap_repeat_instance"}


def redcap_problems(dictionary: list[dict[str, str]], rows: list[dict[str, str]]) -> list[str]:
    """Every value of the import rows that the data dictionary would refuse, as REDCap reads
    it: an unknown column, a radio value not among the choices, a value failing its text
    validation type or minimum."""
    fields = {d["Variable / Field Name"]: d for d in dictionary}
    forms = {d["Form Name"] for d in dictionary}
    problems = []
    for number, row in enumerate(rows):
        for column, value in row.items():
            if column in _SYSTEM_COLUMNS or column in {f"{f}_complete" for f in forms}:
                continue
            field = fields.get(column)
            if field is None:
                problems.append(f"row {number}: {column} is not in the dictionary")
                continue
            if value == "":
                continue
            kind, validation = (
                field["Field Type"],
                field["Text Validation Type OR Show Slider Number"],
            )
            if kind == "radio":
                choices = field["Choices, Calculations, OR Slider Labels"].split("|")
                codes = [c.split(",", 1)[0].strip() for c in choices]
                if value not in codes:
                    problems.append(f"row {number}: {column}={value!r} not among {codes}")
            elif validation == "integer":
                minimum = field["Text Validation Min"]
                if not re.fullmatch(r"-?\d+", value) or (minimum and int(value) < int(minimum)):
                    problems.append(f"row {number}: {column}={value!r} is not a valid integer")
            elif validation == "datetime_seconds_ymd":
                try:
                    datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    problems.append(f"row {number}: {column}={value!r} is not Y-M-D H:M:S")
            elif validation:
                problems.append(f"row {number}: {column}: validation {validation} not checked")
            elif kind not in ("text", "notes"):
                problems.append(f"row {number}: {column}: field type {kind} not checked")
    return problems


def test_redcap_import_matches_its_data_dictionary(folder, tmp_path):
    out, dictionary = tmp_path / "import.csv", tmp_path / "dictionary.csv"
    done = export(folder, *records(folder), "--format", "redcap", "--map-subjects",
                  "subjects.csv", "--out", str(out), "--dictionary", str(dictionary))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "3 records exported as redcap\n"
    fields = list(csv.DictReader(io.StringIO(dictionary.read_text())))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert fields[0]["Variable / Field Name"] == "record_id" == next(iter(rows[0]))
    assert redcap_problems(fields, rows) == []
    by_subject = {r["record_id"]: r for r in rows}
    assert set(by_subject) == set(PATIENTS.values())  # subject keys, never the PatientID
    assert "PHANTOM" not in out.read_text()
    assert [by_subject[s]["rtdl_decision"] for s in PATIENTS.values()] == ["2", "1", "3"]
    excluded = by_subject["ESO-0002"]
    assert int(excluded["rtdl_failed_count"]) >= 1
    assert re.search(
        r"SpinalCord: D0.03cc\[Gy\] = 4\d\.\d\d Gy, limit", excluded["rtdl_failed_limits"]
    )
    assert by_subject["ESO-0003"]["rtdl_not_evaluated_count"] != "0"
    assert all(r["rt_dose_limits_complete"] == "1" for r in rows)  # Unverified

    # The JSON import holds the same rows.
    as_json = export(folder, *records(folder), "--format", "redcap-json",
                     "--map-subjects", "subjects.csv")  # fmt: skip
    assert json.loads(as_json.stdout) == rows


def test_the_redcap_check_above_can_fail(folder, tmp_path):
    dictionary = tmp_path / "dictionary.csv"
    export(folder, *records(folder), "--format", "redcap", "--map-subjects", "subjects.csv",
           "--out", str(tmp_path / "i.csv"), "--dictionary", str(dictionary))  # fmt: skip
    fields = list(csv.DictReader(io.StringIO(dictionary.read_text())))
    bad = [{"record_id": "ESO-0001", "rtdl_decision": "eligible", "rtdl_lesion_count": "-1",
            "rtdl_checked_at": "2026-11-26T10:00:00", "rtdl_other": "x"}]  # fmt: skip
    assert len(redcap_problems(fields, bad)) == 4


def test_a_subject_with_two_records_has_two_instances(folder, tmp_path):
    again = json.loads((folder / "record-1.json").read_text())
    again["created"] = "2030-01-01T00:00:00+00:00"
    (tmp_path / "again.json").write_text(json.dumps(again))
    done = export(folder, str(folder / "record-1.json"), str(tmp_path / "again.json"),
                  "--format", "redcap", "--map-subjects", "subjects.csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["record_id"], r["redcap_repeat_instance"], r["rtdl_checked_at"][:4])
            for r in rows] == [("ESO-0001", "1", "2026"), ("ESO-0001", "2", "2030")]  # fmt: skip


# FHIR -----------------------------------------------------------------------------------------


def test_fhir_bundles_are_valid_r4b_and_say_what_criterion_19_says(folder):
    from fhir.resources.R4B.bundle import Bundle

    done = export(folder, *records(folder), "--format", "fhir", "--map-subjects", "subjects.csv")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and "PHANTOM" not in done.stdout
    codes = {}
    for line in lines:
        bundle = Bundle.model_validate_json(line)  # the R4B models, not rtcheck's code
        observation: Any = bundle.entry[0].resource
        assert observation.get_resource_type() == "Observation"
        subject = observation.subject.identifier.value
        codes[subject] = observation.valueCodeableConcept.coding[0].code
        assert observation.status == "preliminary"
        study = json.loads(line)["entry"][0]["resource"]["derivedFrom"][0]["identifier"]
        assert study["system"] == "urn:dicom:uid" and study["value"].startswith("urn:oid:1.2.")
    assert codes == {"ESO-0001": "not-excluded", "ESO-0002": "excluded",
                     "ESO-0003": "indeterminate"}  # fmt: skip
    excluded = json.loads(next(line for line in lines if "ESO-0002" in line))
    cord = [c for c in excluded["entry"][0]["resource"]["component"]
            if c["code"]["text"].startswith("SpinalCord: D0.03cc")]  # fmt: skip
    assert cord and cord[0]["interpretation"][0]["coding"][0]["code"] == "H"
    value, high = cord[0]["valueQuantity"], cord[0]["referenceRange"][0]["high"]
    assert value["code"] == high["code"] == "Gy" and value["value"] > high["value"]


def test_the_fhir_validation_above_can_fail(folder):
    from fhir.resources.R4B.bundle import Bundle

    done = export(folder, records(folder)[1], "--format", "fhir", "--map-subjects", "subjects.csv")
    Bundle.model_validate_json(done.stdout)
    measured = next(i for i, c in enumerate(json.loads(done.stdout)["entry"][0]["resource"][
        "component"]) if "valueQuantity" in c)  # fmt: skip
    # The models check structure and types (not terminology bindings: the codes are checked by
    # the test above): an Observation without its required code, or a quantity that is text.
    for path, value in (
        (("code",), None),
        (("component", measured, "valueQuantity", "value"), "high"),
    ):
        bundle = json.loads(done.stdout)
        holder = bundle["entry"][0]["resource"]
        for step in path[:-1]:
            holder = holder[step]
        if value is None:
            del holder[path[-1]]
        else:
            holder[path[-1]] = value
        with pytest.raises(ValueError):
            Bundle.model_validate(bundle)


# ODM ------------------------------------------------------------------------------------------


def odm_schema() -> Any:
    import odmlib
    import xmlschema

    folder = Path(odmlib.__file__).parent / "schemas" / "odm" / "1.3.2"
    return xmlschema.XMLSchema(str(folder / "ODM1-3-2.xsd"))


def test_odm_is_valid_against_the_odm_1_3_2_schema_and_refers_to_its_own_metadata(folder):
    import xml.etree.ElementTree as ET

    done = export(folder, *records(folder), "--format", "odm", "--study-oid", "ESO-OLIGO",
                  "--map-subjects", "subjects.csv")  # fmt: skip
    assert done.returncode == 0, done.stderr
    schema = odm_schema()
    schema.validate(done.stdout)
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    root = ET.fromstring(done.stdout)
    items = {i.get("OID"): i for i in root.iterfind(".//odm:ItemDef", ns)}
    codes = {c.get("OID"): {i.get("CodedValue") for i in c.iterfind("odm:CodeListItem", ns)}
             for c in root.iterfind(".//odm:CodeList", ns)}  # fmt: skip
    decisions = {}
    for subject in root.iterfind(".//odm:SubjectData", ns):
        for data in subject.iterfind(".//odm:ItemData", ns):
            item = items[data.get("ItemOID")]  # every value is of a defined item
            reference = item.find("odm:CodeListRef", ns)
            if reference is not None:
                assert data.get("Value") in codes[reference.get("CodeListOID")]
            if data.get("ItemOID") == "IT.RTDL_DECISION":
                decisions[subject.get("SubjectKey")] = data.get("Value")
    assert decisions == {"ESO-0001": "2", "ESO-0002": "1", "ESO-0003": "3"}
    assert root.find("odm:ClinicalData", ns).get("StudyOID") == "ESO-OLIGO"
    assert "PHANTOM" not in done.stdout
    # The schema check can fail: an item group with an undeclared attribute is refused.
    broken = done.stdout.replace("<ItemGroupData ", '<ItemGroupData Colour="red" ', 1)
    assert not schema.is_valid(broken)


# Refusals -------------------------------------------------------------------------------------


def test_no_subject_map_an_unmapped_patient_or_a_bad_record_file_exports_nothing(folder, tmp_path):
    out = tmp_path / "out.csv"
    cases = [
        ([*records(folder), "--format", "redcap"], "--map-subjects FILE is needed"),
        ([*records(folder), "--format", "odm", "--map-subjects", str(tmp_path / "partial.csv")],
         "is not in the subject map; nothing was exported"),
        ([str(tmp_path / "not-a-record.json"), "--format", "fhir", "--map-subjects",
          "subjects.csv"], "not an rtcheck eligibility record"),
        (["--db", str(tmp_path / "none.db"), "--format", "fhir", "--map-subjects",
          "subjects.csv"], "no results database at"),
    ]  # fmt: skip
    (tmp_path / "partial.csv").write_text("patient_id,subject_key\nPHANTOM-001,ESO-0001\n")
    (tmp_path / "not-a-record.json").write_text('{"record_version": "1.2"}')
    for args, message in cases:
        done = export(folder, *args, "--out", str(out))
        assert done.returncode == 2, args
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not out.exists()
        assert "PHANTOM-00" not in done.stderr  # the study UID is named, not the PatientID


def test_export_from_the_results_database(folder, tmp_path):
    archive = tmp_path / "archive"
    for patient in ("PHANTOM-002", "PHANTOM-003"):
        shutil.copytree(folder / patient, archive / patient)
    db = tmp_path / "results.db"
    batch = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "batch", str(archive), "--db", str(db),
         "--workers", "1"], capture_output=True, text=True, timeout=300,
        env={**os.environ},
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    done = export(folder, "--db", str(db), "--format", "redcap", "--map-subjects", "subjects.csv")
    assert done.returncode == 0, done.stderr
    rows = {r["record_id"]: r["rtdl_decision"] for r in csv.DictReader(io.StringIO(done.stdout))}
    assert rows == {"ESO-0002": "1", "ESO-0003": "3"}
