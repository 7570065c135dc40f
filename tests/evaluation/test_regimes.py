"""Fractionation regimes: a limit is chosen and LQ-converted only within the regime of the course
it is compared with (stereotactic up to 8 fractions, conventional beyond, an EQD2 sum
conventional), and a limit of another regime does not apply."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.fractionation import convert_limit
from rtcheck.evaluation.results import NotEvaluable
from rtcheck.protocol import lq
from rtcheck.protocol.definition import load_protocol

PROTOCOL = load_protocol()
TG101_CORD = next(
    limit for limit in PROTOCOL.oar_limits
    if limit.structure == "SpinalCord" and limit.regime == "stereotactic"
    and limit.label == "D0.03cc[Gy]"
)  # fmt: skip
CONVENTIONAL_CORD = next(
    limit for limit in PROTOCOL.oar_limits
    if limit.structure == "SpinalCord" and limit.regime == "conventional"
)  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "plan_fx", "expected"),
    [
        (TG101_CORD, 5, 30.0),
        (TG101_CORD, 4, lq.convert(30.0, 5, 4, 2.0)),  # the nearest column of the regime
        (TG101_CORD, 8, lq.convert(30.0, 5, 8, 2.0)),
        (TG101_CORD, 2, lq.convert(21.9, 3, 2, 2.0)),  # 3 is nearer than 1 on a log scale
        (TG101_CORD, 10, None),
        (TG101_CORD, 25, None),  # 35 -> 63 Gy stretching: refused
        (TG101_CORD, None, None),  # an EQD2 sum is conventional
        (CONVENTIONAL_CORD, 25, 45.0),
        (CONVENTIONAL_CORD, 30, lq.convert(45.0, 25, 30, 2.0)),
        (CONVENTIONAL_CORD, None, lq.eqd2(45.0, 25, 2.0)),
        (CONVENTIONAL_CORD, 5, None),
    ],
)
def test_columns_are_chosen_and_converted_only_within_the_regime(limit, plan_fx, expected):
    if expected is None:
        with pytest.raises(NotEvaluable, match="no conversion across regimes"):
            convert_limit(limit, plan_fx, plan_fx, 2.0, PROTOCOL.regime_of)
        return
    _, comparison, _ = convert_limit(limit, plan_fx, plan_fx, 2.0, PROTOCOL.regime_of)
    assert comparison.value == pytest.approx(expected, abs=5e-4)


def test_the_regime_boundary_is_the_protocols():
    assert [PROTOCOL.regime_of(n) for n in (1, 8, 9, 25, None)] == [
        "stereotactic", "stereotactic", "conventional", "conventional", "conventional"]  # fmt: skip


def test_a_stereotactic_plan_gets_tg101_and_no_conventional_table(stereotactic_dir):
    evaluation = evaluate(load_plan([stereotactic_dir]), PROTOCOL)
    whole = [r for r in evaluation.limits if r.group == "oar"]
    assert {r.metric for r in whole if r.structure == "SpinalCord"} == {
        "D0.03cc[Gy]",
        f"V{lq.convert(23.0, 5, 4, 2.0):.2f}".rstrip("0").rstrip(".") + "Gy[cc]",
    }
    assert not [r for r in whole if r.structure == "Lungs-PTVs"]  # conventional only
    near = [r for r in evaluation.limits if r.group == "lesion_oar"]
    assert near and all(r.conversion and "published for 5 fractions" in r.conversion
                        for r in near if r.metric.startswith("D"))  # fmt: skip


def test_a_conventional_plan_gets_no_stereotactic_limit(phantom_dir):
    evaluation = evaluate(load_plan([phantom_dir]), PROTOCOL)
    assert not [r for r in evaluation.limits if r.group == "lesion_oar"]
    assert {r.structure for r in evaluation.limits if r.group == "oar"} >= {"Lungs-PTVs", "Heart"}
    assert not [r for r in evaluation.limits if r.conversion and "LQ" in r.conversion]


def test_a_limit_published_only_for_another_regime_is_not_evaluated(phantom_dir, tmp_path):
    # Without a regime key, a TG-101-only limit on a 25-fraction plan is not stretched: it is not
    # evaluated, and the plan is indeterminate.
    document = yaml.safe_load(Path(PROTOCOL.path).read_text())
    document = copy.deepcopy(document)
    for entry in document["oar_limits"]["limits"]:
        if entry.get("regime") == "stereotactic" and entry["structure"] == "Esophagus":
            del entry["regime"]
    path = tmp_path / "no-regime.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    evaluation = evaluate(load_plan([phantom_dir]), load_protocol(str(path)))
    esophagus = next(r for r in evaluation.limits if r.structure == "Esophagus")
    assert esophagus.result == "not_evaluated"
    assert "published for 1, 3, 5 fractions only" in (esophagus.reason or "")
    assert "no conversion across regimes" in (esophagus.reason or "")
    assert evaluation.decision.decision == "indeterminate"


def test_a_summed_plan_reaches_a_decision_each_limit_on_its_own_course(tmp_path):
    """A conventional primary plan (30 Gy in 25 fractions, uniform) summed with a stereotactic
    lesion plan (15 Gy in 3 fractions, uniform), with the bundled protocol: the whole plan is
    an EQD2 sum, so the conventional table applies, converted to EQD2 (the cord: 50.25 Gy
    against 42.75 Gy, see test_check); near the stereotactic lesion TG-101 applies on the
    lesion's own plan, in its own 3 fractions (the cord: 15 Gy against 21.9 Gy, unconverted)."""
    from tests.conftest import write_primary_and_lesion_plans

    write_primary_and_lesion_plans(tmp_path, "sum")
    evaluation = evaluate(load_plan([tmp_path]), PROTOCOL)
    assert evaluation.dose_mode == "EQD2 sum of plans"
    cord = [
        r for r in evaluation.limits if r.structure == "SpinalCord" and r.metric == "D0.03cc[Gy]"
    ]
    whole = next(r for r in cord if r.lesion is None)
    near = next(r for r in cord if r.lesion == "M1")
    assert whole.value == pytest.approx(50.25, abs=0.01) and whole.limit == "<= 42.75"
    assert whole.result == "fail"
    assert near.value == pytest.approx(15.0, abs=0.01) and near.limit == "<= 21.9"
    assert near.result == "pass" and near.conversion is None
    assert evaluation.decision.decision == "excluded"
