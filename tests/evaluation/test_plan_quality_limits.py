"""Plan-quality limits of stereotactic lesions in a protocol: thresholds by PTV volume
interpolated between rows (RTOG 0813/0915 Table 1), not evaluated outside the table unless the
protocol says otherwise, applied only to lesions of at most ``max_fractions`` fractions, and
graded by the table's minor column."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.quality import lesion_quality
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.limits import by_ptv_volume
from rtcheck.evaluation.results import NotEvaluable
from rtcheck.protocol.definition import ProtocolError, load_protocol
from rtcheck.protocol.names import read_lesion_map

BUNDLED = yaml.safe_load(Path(load_protocol().path).read_text())
R50 = next(e for e in BUNDLED["lesions"]["coverage"] if e["metric"] == "R50%")


@pytest.fixture(scope="module")
def plan(phantom_dir):
    return load_plan([phantom_dir])


@pytest.fixture(scope="module")
def stereotactic(tmp_path_factory):
    """A map giving the phantom's three lesions 50 Gy in 5 fractions."""
    path = tmp_path_factory.mktemp("map") / "map.yaml"
    path.write_text("lesions:\n" + "".join(
        f'  "{roi}": {{prescription_gy: 50, fractions: 5}}\n'
        for roi in ("PTV_M1_lungR", "ptv m2 liver", "PTV_M3_T8")
    ))  # fmt: skip
    return read_lesion_map(path)


def test_thresholds_are_interpolated_between_the_rows_that_bracket_the_ptv_volume():
    limit = next(lim for lim in load_protocol().lesion_coverage if lim.label == "R50%")
    # 5.6 cc lies between the 3.8 cc (5.5; minor 6.5) and 7.4 cc (5.1; minor 6.0) rows.
    comparison, acceptable, note = by_ptv_volume(limit, 5.6)
    assert comparison.value == pytest.approx(5.5 + (5.6 - 3.8) / (7.4 - 3.8) * (5.1 - 5.5))
    assert acceptable is not None
    assert acceptable.value == pytest.approx(6.5 + (5.6 - 3.8) / (7.4 - 3.8) * (6.0 - 6.5))
    assert "between the 3.8 and 7.4 cc rows" in note
    assert by_ptv_volume(limit, 13.2)[0].value == pytest.approx(4.7)  # on a row: the row
    with pytest.raises(NotEvaluable, match=r"outside the table's 1\.8-163 cc"):
        by_ptv_volume(limit, 1.2)
    nearest = type(limit)(**{**limit.__dict__, "outside_table": "nearest_row"})
    comparison, _, note = by_ptv_volume(nearest, 200.0)
    assert comparison.value == pytest.approx(2.9) and "its 163 cc row" in note


def test_stereotactic_lesions_get_the_indices_and_conventional_ones_do_not(plan, stereotactic):
    conventional = evaluate(plan, load_protocol())  # the phantom's lesions: 25 fractions
    assert not [r for r in conventional.limits if r.metric in ("R100%", "R50%", "D2cm[%]")]
    evaluation = evaluate(plan, load_protocol(), None, stereotactic)
    indices = [r for r in evaluation.limits if r.metric in ("R100%", "R50%", "D2cm[%]")]
    assert len(indices) == 9 and all(r.result == "pass" for r in indices)
    # Each value is the lesion's own quality figure, computed directly.
    m1 = plan.structure_set.by_name("PTV_M1_lungR")
    grid = plan.doses[0].grid
    others = [s for s in plan.structure_set.structures
              if s.name.upper().startswith("PTV") and s.name != m1.name]  # fmt: skip
    body = plan.structure_set.by_name("BODY")
    direct = lesion_quality(m1, compute_dvh(m1, grid), others=others, body=body, grid=grid,
                            prescription_gy=50.0)  # fmt: skip
    for r in (r for r in indices if r.lesion == "M1"):
        assert r.value == pytest.approx(direct.value(r.metric), rel=1e-9), r.metric
        assert r.conversion and "interpolated between" in r.conversion
    # The record says whose dose the isodose volumes are, and is valid.
    import json
    from importlib import resources

    import jsonschema

    from rtcheck.outputs.record import SCHEMA_RESOURCE, eligibility_record

    record = eligibility_record(evaluation)
    schema = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())
    jsonschema.validate(record, schema)
    assert "nearest target" in record["methods"]["plan_quality_attribution"]
    assert "methods" not in eligibility_record(conventional)


def test_the_minor_column_grades_the_deviation(plan, stereotactic, tmp_path):
    document = copy.deepcopy(BUNDLED)
    entry = next(e for e in document["lesions"]["coverage"] if e["metric"] == "R50%")
    entry["limit"] = {"ptv_cc": {1.0: "< 2.0", 200.0: "< 2.0"}}
    entry["acceptable"] = {"ptv_cc": {1.0: "< 3.0", 200.0: "< 3.0"}}
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    evaluation = evaluate(plan, load_protocol(str(path)), None, stereotactic)
    r50 = {r.lesion: r for r in evaluation.limits if r.metric == "R50%"}
    for r in r50.values():
        expected = "minor_deviation" if r.value < 3.0 else "major_deviation"
        assert r.value > 2.0 and r.result == expected
    assert {r.result for r in r50.values()} == {"minor_deviation", "major_deviation"}
    assert evaluation.decision.decision == "excluded"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limit": {"ptv_cc": {1.8: "< 5.9", 3.8: "<= 5.5"}}}, "the same comparator"),
        ({"limit": {"ptv_cc": {1.8: "< 5.9"}}}, "2 rows or more"),
        ({"acceptable": {"ptv_cc": {1.8: "< 7.5", 4.0: "< 6.5"}}}, "the same PTV volumes"),
        ({"acceptable": {"ptv_cc": {1.8: "< 5.0", 3.8: "< 6.5"}}}, "< 5 is not looser than < 5.9"),
        ({"outside_table": "extrapolate"}, "not_evaluated or nearest_row"),
    ],
)
def test_tables_written_wrongly_are_refused(tmp_path, change, message):
    document = copy.deepcopy(BUNDLED)
    entry = next(e for e in document["lesions"]["coverage"] if e["metric"] == "R50%")
    entry.update({"limit": {"ptv_cc": {1.8: "< 5.9", 3.8: "< 5.5"}},
                  "acceptable": {"ptv_cc": {1.8: "< 7.5", 3.8: "< 6.5"}}})  # fmt: skip
    entry.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ProtocolError, match=re.escape(message)):
        load_protocol(str(path))


def test_an_index_is_refused_outside_a_lesions_own_limits(tmp_path):
    document = copy.deepcopy(BUNDLED)
    document["oar_limits"]["limits"].append(
        {"structure": "Heart", "metric": "R50%", "limit": "< 5", "priority": "mandatory",
         "source": "x"})  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ProtocolError, match="give it in lesions.coverage"):
        load_protocol(str(path))
    assert R50["regime"] == "stereotactic"  # the bundled table is for stereotactic lesions
