"""NRG-style deviation tiers: a limit with an acceptable threshold is per protocol (pass), a minor
deviation, or a major deviation (which excludes when the limit is mandatory); records 1.2
carry them, and records of earlier versions stay valid without them."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.record import SCHEMA_RESOURCE, eligibility_record
from rtcheck.outputs.table import check_table
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol import lq
from rtcheck.protocol.definition import ProtocolError, load_protocol

SCHEMA = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())
BUNDLED = yaml.safe_load(Path(load_protocol().path).read_text())
CORD = 20.19  # the phantom's cord D0.03cc (Gy), 25 fractions: see the check table


def protocol(tmp_path: Path, limit: str, acceptable: object) -> Path:
    document = copy.deepcopy(BUNDLED)
    for entry in document["oar_limits"]["limits"]:
        conventional = entry.get("regime") == "conventional"
        if entry["structure"] == "SpinalCord" and entry["metric"] == "D0.03cc[Gy]" and conventional:
            entry["limit"], entry["acceptable"] = limit, copy.deepcopy(acceptable)
    path = tmp_path / f"tiers{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def plan(phantom_dir):
    return load_plan([phantom_dir])


@pytest.mark.parametrize(
    ("limit", "acceptable", "result", "decision"),
    [
        ("<= 45", "<= 50", "pass", "not_excluded"),
        ("<= 19", "<= 21", "minor_deviation", "not_excluded"),
        ("<= 18", "<= 19", "major_deviation", "excluded"),
    ],
)
def test_the_cord_limit_graded_by_tiers(plan, tmp_path, limit, acceptable, result, decision):
    evaluation = evaluate(plan, load_protocol(str(protocol(tmp_path, limit, acceptable))))
    cord = next(r for r in evaluation.limits
                if r.structure == "SpinalCord" and r.lesion is None)  # fmt: skip
    assert cord.value == pytest.approx(CORD, abs=0.01)
    assert cord.result == result and cord.acceptable == acceptable
    assert cord.margin == pytest.approx(float(limit.split()[-1]) - cord.value)
    assert evaluation.decision.decision == decision
    if result == "minor_deviation":
        assert any("acceptable <= 21: minor deviation" in d
                   for d in evaluation.decision.minor_deviations)  # fmt: skip
    record = eligibility_record(evaluation)
    assert record["record_version"] == "1.4"
    jsonschema.validate(record, SCHEMA)
    table = check_table(evaluation)
    assert f"{limit} | {acceptable.split()[-1]}" in table and "a per protocol" in table


def test_a_tier_by_fractions_is_converted_as_its_limit(tmp_path):
    # A stereotactic plan of 4 fractions: both thresholds converted from the nearest column of
    # its regime (5 fractions).
    write_thorax_phantom(tmp_path / "plan", ThoraxPhantom(prescription_gy=32.0, fractions=4,
                                                          seed="tiers-4fx"))  # fmt: skip
    document = copy.deepcopy(BUNDLED)
    for entry in document["lesions"]["oar_limits"]:
        if entry["structure"] == "SpinalCord" and entry["metric"] == "D0.03cc[Gy]":
            entry["acceptable"] = {1: "<= 16", 3: "<= 24", 5: "<= 32"}
    path = tmp_path / "lesion-tiers.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    evaluation = evaluate(load_plan([tmp_path / "plan"]), load_protocol(str(path)))
    near = [r for r in evaluation.limits
            if r.structure == "SpinalCord" and r.lesion and r.metric == "D0.03cc[Gy]"]  # fmt: skip
    assert len(near) == 3 and all(r.result == "pass" for r in near)
    expected = round(lq.convert(32.0, 5, 4, 2.0), 3)
    assert {r.acceptable for r in near} == {f"<= {expected:g}"}
    assert {r.limit for r in near} == {f"<= {round(lq.convert(30.0, 5, 4, 2.0), 3):g}"}


@pytest.mark.parametrize(
    ("limit", "acceptable", "message"),
    [
        ("<= 45", "<= 40", "<= 40 is stricter than the limit <= 45"),
        ("<= 45", ">= 50", "point opposite ways"),
        ("<= 45", {1: "<= 50"}, "give the same fraction columns as the limit"),
        ("<= 45", "about 50", "must be a comparator and a number"),
    ],
)
def test_tiers_written_wrongly_are_refused(tmp_path, limit, acceptable, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as error:
        load_protocol(str(protocol(tmp_path, limit, acceptable)))
    assert "oar_limits.limits[3] (SpinalCord D0.03cc[Gy]).acceptable" in str(error.value)


def test_records_before_1_2_stay_valid_and_carry_no_tiers(plan):
    record = eligibility_record(evaluate(plan, load_protocol()))
    old = copy.deepcopy(record)
    old["record_version"] = "1.1"
    for entry in old["limits"]:
        del entry["acceptable"]
    jsonschema.validate(old, SCHEMA)
    old["limits"][0]["result"] = "minor_deviation"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(old, SCHEMA)
    old["limits"][0]["result"] = "pass"
    old["limits"][0]["acceptable"] = None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(old, SCHEMA)
