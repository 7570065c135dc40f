"""rtcheck check end to end on phantoms where every decision happens, with the eligibility record
validated against its JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.record import SCHEMA_RESOURCE, eligibility_record
from rtcheck.phantom import synthetic as S
from rtcheck.phantom.thorax import (
    DEFAULT_LESIONS,
    PhantomLesion,
    ThoraxPhantom,
    write_thorax_phantom,
)
from rtcheck.protocol.definition import load_protocol
from tests.conftest import write_primary_and_lesion_plans

SCHEMA = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())


def check(folder: Path, *extra: str) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "check", str(folder), "--json", "-", *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode in (0, 1, 3), result.stderr
    record = json.loads(result.stdout)
    jsonschema.validate(record, SCHEMA)
    return result.returncode, record


def variant(tmp_path_factory: pytest.TempPathFactory, name: str, **params) -> Path:
    folder = tmp_path_factory.mktemp(name)
    write_thorax_phantom(folder, ThoraxPhantom(**params))
    return folder


def limits(record: dict, structure: str, metric: str | None = None) -> list[dict]:
    return [
        entry
        for entry in record["limits"]
        if entry["structure"] == structure and (metric is None or entry["metric"] == metric)
    ]


def test_all_limits_pass(phantom_dir):
    code, record = check(phantom_dir)
    assert code == 0
    assert record["criterion_19"]["decision"] == "not_excluded"
    assert record["lesion_count"] == 3 and record["organ_count"] == 3
    sites = {lesion["name"]: lesion["site"] for lesion in record["lesions"]}
    assert sites == {"M1": "lung", "M2": "liver", "M3": "bone"}
    cord = limits(record, "SpinalCord", "D0.03cc[Gy]")[0]
    assert cord["roi"] == ["Cord"] and cord["result"] == "pass"
    assert cord["margin"] == pytest.approx(45 - cord["value"])
    assert {i["modality"] for i in record["inputs"]} == {"RTSTRUCT", "RTPLAN", "RTDOSE"}
    assert "PHANTOM^THORAX" not in json.dumps(record)


def test_mandatory_cord_limit_fails(tmp_path_factory):
    folder = variant(tmp_path_factory, "cord", cord_dose_fraction=0.95)
    code, record = check(folder)
    assert code == 1 and record["criterion_19"]["decision"] == "excluded"
    cord = limits(record, "SpinalCord", "D0.03cc[Gy]")[0]
    assert cord["result"] == "fail" and cord["value"] > 45 and cord["margin"] < 0
    assert any("SpinalCord" in reason for reason in record["criterion_19"]["reasons"])


def test_optimal_limit_fails_only(tmp_path_factory):
    folder = variant(tmp_path_factory, "optimal", lesion_dose_scale=1.06)
    code, record = check(folder)
    assert code == 0 and record["criterion_19"]["decision"] == "not_excluded"
    failed = [e for e in record["limits"] if e["result"] == "fail"]
    assert failed and all(e["priority"] == "optimal" for e in failed)
    assert record["criterion_19"]["minor_deviations"]


def test_missing_mandatory_structure(tmp_path_factory, phantom_dir):
    folder = variant(tmp_path_factory, "missing", renamed=(("Cord", None),))
    code, record = check(folder)
    assert code == 3 and record["criterion_19"]["decision"] == "indeterminate"
    cord = limits(record, "SpinalCord", "D0.03cc[Gy]")[0]
    assert cord["result"] == "not_evaluated" and "not found" in cord["reason"]
    # The limits not evaluated state what would have applied to this 25-fraction plan, as when
    # the cord is there; TG-101's stereotactic limits apply neither to it nor near its lesions
    # (treated in the same 25 fractions), converted or not.
    _, evaluated = check(phantom_dir)
    shown = {(e["lesion"], e["metric"]): e["limit"] for e in limits(record, "SpinalCord")}
    applied = {(e["lesion"], e["metric"]): e["limit"] for e in limits(evaluated, "SpinalCord")}
    assert shown == applied == {(None, "D0.03cc[Gy]"): "<= 45"}


def test_a_structure_not_found_says_what_was_there_and_how_to_map_it(tmp_path_factory, tmp_path):
    folder = variant(tmp_path_factory, "myelon", renamed=(("Cord", "Myelon"),))
    code, record = check(folder)
    assert code == 3
    reason = limits(record, "SpinalCord", "D0.03cc[Gy]")[0]["reason"]
    assert "ROIs that match no TG-263 name: 'Myelon'" in reason
    assert 'a --map file line says so: "Myelon": SpinalCord' in reason
    mapping = tmp_path / "map.yaml"
    mapping.write_text(reason.split("says so: ")[1] + "\n")  # the line, as the reason gives it
    code, record = check(folder, "--map", str(mapping))
    assert code == 0 and limits(record, "SpinalCord", "D0.03cc[Gy]")[0]["roi"] == ["Myelon"]


def test_ambiguous_name_is_not_guessed(tmp_path_factory):
    twin = S.RoiSpec.from_shape(
        "Spinal Cord", "ORGAN", S.cylinder(0, 75, 6, -170, 150), list(np.arange(-180, 160.1, 2.5))
    )
    folder = variant(tmp_path_factory, "ambiguous", extra_rois=(twin,))
    code, record = check(folder)
    assert code == 3
    cord = limits(record, "SpinalCord", "D0.03cc[Gy]")[0]
    assert cord["result"] == "not_evaluated" and "ambiguous" in cord["reason"]
    assert "'Cord'" in cord["reason"] and "'Spinal Cord'" in cord["reason"]


def test_map_file_resolves_the_ambiguity(tmp_path_factory, tmp_path):
    twin = S.RoiSpec.from_shape(
        "Spinal Cord", "ORGAN", S.cylinder(0, 75, 6, -170, 150), list(np.arange(-180, 160.1, 2.5))
    )
    folder = variant(tmp_path_factory, "mapped", extra_rois=(twin,))
    mapping = tmp_path / "map.yaml"
    mapping.write_text("Cord: SpinalCord\n'Spinal Cord': SpinalCanal\n")
    code, record = check(folder, "--map", str(mapping))
    assert code == 0
    assert limits(record, "SpinalCord", "D0.03cc[Gy]")[0]["roi"] == ["Cord"]


def test_lesion_partly_outside_the_dose_grid(tmp_path_factory):
    folder = variant(tmp_path_factory, "outside", dose_z_range_mm=(-183.0, 88.0))
    code, record = check(folder)
    assert code == 3
    m1 = [e for e in record["limits"] if e["lesion"] == "M1" and e["group"] == "lesion_coverage"]
    assert m1 and all(e["result"] == "not_evaluated" for e in m1)
    assert all("not fully inside the dose grid" in e["reason"] for e in m1)
    assert all(e["dose_coverage"] < 1 for e in m1)


def test_six_lesions_are_flagged(tmp_path_factory):
    extra = (
        PhantomLesion("GTV M4 lung", "PTV_M4", (85.0, 0.0, 40.0), 6.0, 10.0),
        PhantomLesion("GTV M5 lung", "PTV_M5", (90.0, 20.0, 90.0), 6.0, 10.0),
        PhantomLesion("GTV M6 liver", "PTV_M6", (-20.0, -30.0, -140.0), 6.0, 10.0),
    )
    folder = variant(tmp_path_factory, "six", lesions=DEFAULT_LESIONS + extra)
    _, record = check(folder)
    assert record["lesion_count"] == 6 and record["organ_count"] == 3
    assert record["lesion_limits_exceeded"] is True
    assert any("6 lesions" in w for w in record["warnings"])


def test_two_plans_of_different_fractionation_are_summed_in_eqd2(tmp_path):
    """Uniform doses make the hand computation exact: the cord gets 30 Gy in 25 fractions
    (primary) and 15 Gy in 3 fractions (lesion). With a/b = 2 Gy:
    EQD2 = 30 (1.2 + 2) / 4 + 15 (5 + 2) / 4 = 24 + 26.25 = 50.25 Gy, against the 45 Gy / 25 fx
    limit converted to EQD2, 45 (1.8 + 2) / 4 = 42.75 Gy: excluded. Adding physical doses
    (45 Gy) would have passed."""
    write_primary_and_lesion_plans(tmp_path, "eqd2")
    protocol_file = tmp_path / "p.yaml"
    protocol_file.write_text(
        "protocol: eqd2-test\nversion: '1'\nalpha_beta_gy: {default: 3, SpinalCord: 2}\n"
        "oar_limits:\n  fractions: 25\n  limits:\n"
        "    - {structure: SpinalCord, metric: 'D0.03cc[Gy]', limit: '<= 45',"
        " priority: mandatory, source: test}\n"
        "lesions:\n  coverage:\n"
        "    - {metric: 'V100%[%]', limit: '>= 95', priority: mandatory, source: test}\n"
    )
    evaluation = evaluate(load_plan([tmp_path]), load_protocol(str(protocol_file)))
    record = eligibility_record(evaluation)
    jsonschema.validate(record, SCHEMA)
    assert record["dose_mode"] == "EQD2 sum of plans"
    cord = limits(record, "SpinalCord")[0]
    assert cord["reason"] is None, cord["reason"]
    assert cord["value"] == pytest.approx(50.25, abs=0.01)
    assert cord["limit"] == "<= 42.75"
    assert "EQD2" in cord["conversion"]
    assert record["criterion_19"]["decision"] == "excluded"
    lesion = record["lesions"][0]
    assert (lesion["prescription_gy"], lesion["fractions"], lesion["plan"]) == (15.0, 3, "SBRT")
    coverage = [e for e in record["limits"] if e["group"] == "lesion_coverage"][0]
    assert coverage["value"] == pytest.approx(100.0), coverage
    assert coverage["result"] == "pass"


def test_unknown_fractionation_is_indeterminate(tmp_path):
    src = Path(__file__).resolve().parents[2] / "phantom_data" / "thorax"
    for name in ("RS.thorax.dcm", "RD.thorax.dcm"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    code, record = check(tmp_path)
    assert code == 3
    assert any("fractionation" in r for r in record["criterion_19"]["reasons"])
    near = [e for e in limits(record, "SpinalCord") if e["group"] == "lesion_oar"]
    # No column can be chosen: no limit is stated, and the reason lists the published ones.
    assert near and all(e["limit"] is None for e in near)
    near_max = [e for e in near if e["metric"] == "D0.03cc[Gy]"]
    assert near_max and all("; published: <= 14 (1 fx), " in e["reason"] for e in near_max)
    code, record = check(tmp_path, "--fractions", "25")
    assert record["criterion_19"]["decision"] in ("not_excluded", "indeterminate")
    assert not any("fractionation" in r for r in record["criterion_19"]["reasons"])
