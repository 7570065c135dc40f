"""Lesions at a site the trial excludes by another criterion (brain: 4; meninges, pleura,
pericardium: 5) are flagged with their evidence in the table, the report and the record; the
criterion 19 decision is unchanged."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.html_report import plan_report_html
from rtcheck.outputs.record import SCHEMA_RESOURCE, eligibility_record
from rtcheck.outputs.table import check_table
from rtcheck.protocol.definition import ProtocolError, load_protocol
from rtcheck.protocol.lesions import SITE_WORDS
from rtcheck.protocol.names import read_lesion_map

SCHEMA = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())


def test_a_pleural_lesion_is_flagged_and_the_decision_is_unchanged(phantom_dir, tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text('lesions:\n  "PTV_M1_lungR": {site: pleura}\n')
    plan, protocol = load_plan([phantom_dir]), load_protocol()
    flagged = evaluate(plan, protocol, None, read_lesion_map(mapping, SITE_WORDS.values()))
    plain = evaluate(plan, protocol)
    assert flagged.decision.decision == plain.decision.decision == "not_excluded"
    assert [(x.name, why) for x, why in flagged.excluded_sites] == [
        ("M1", "exclusion criterion 5 (metastases of the meninges, pleura or pericardium)")
    ]
    assert not plain.excluded_sites
    table = check_table(flagged)
    assert "FLAG lesion M1: site pleura (map file): exclusion criterion 5" in table
    assert 'data-flag="excluded-site"' in plan_report_html(flagged)
    record = eligibility_record(flagged)
    jsonschema.validate(record, SCHEMA)
    sites = {x["name"]: x["excluded_site"] for x in record["lesions"]}
    assert sites["M1"].startswith("exclusion criterion 5") and sites["M2"] is None


@pytest.mark.parametrize(
    ("word", "site"),
    [("brain", "brain"), ("pleural", "pleura"), ("leptomeningeal", "meninges"),
     ("pericardial", "pericardium")],
)  # fmt: skip
def test_the_excluded_sites_are_found_by_name(word, site):
    assert SITE_WORDS[word] == site


def test_an_unknown_excluded_site_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "protocol: x\nversion: '1'\noar_limits: {fractions: 25, limits: []}\n"
        "lesions: {excluded_sites: {spleen: 'criterion 9'}}\n"
    )
    with pytest.raises(ProtocolError, match="'spleen' is no lesion site"):
        load_protocol(str(path))
