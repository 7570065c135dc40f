"""The pieces of an evaluation, each on its own: the decision, the fractionation conversion,
structure matching, the dose chosen, and one limit's judgement, against values worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtcheck.dicom.structures import ContourPlane, Structure
from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import parse_metric
from rtcheck.evaluation.decision import decide
from rtcheck.evaluation.fractionation import convert_limit, published_columns
from rtcheck.evaluation.limits import judge, not_evaluated
from rtcheck.evaluation.matching import StructureResolver
from rtcheck.evaluation.results import Eligibility, NotEvaluable
from rtcheck.protocol.definition import Comparison, Limit, load_protocol


def limit(metric: str, columns: dict[int, str], priority: str = "mandatory", **extra) -> Limit:
    by_fractions = tuple(
        (n, parse_metric(metric), Comparison(text.split()[0], float(text.split()[1])))
        for n, text in columns.items()
    )
    fields = {"structure": "SpinalCord", "by_fractions": by_fractions, "priority": priority,
              "source": "test", "optional": False, "sites": (), "group": "oar"}  # fmt: skip
    return Limit(**{**fields, **extra})


def result(outcome: str, priority: str = "mandatory", optional: bool = False):
    published = limit("Max[Gy]", {0: "<= 45"}, priority, optional=optional)
    reason = "structure SpinalCord not found among the ROIs"
    base = not_evaluated(published, "Max[Gy]", "<= 45", rois=("Cord",), reason=reason, lesion=None)
    if outcome == "not_evaluated":
        return base
    from dataclasses import replace

    value = 50.0 if outcome == "fail" else 40.0
    return replace(base, result=outcome, value=value, margin=45 - value, reason=None)


def test_the_decision_follows_the_mandatory_limits():
    assert decide([result("pass"), result("fail", "optimal")]).decision == Eligibility.NOT_EXCLUDED
    assert decide([result("pass"), result("fail")]).decision == Eligibility.EXCLUDED
    assert decide([result("not_evaluated"), result("fail")]).decision == Eligibility.EXCLUDED
    assert decide([result("pass"), result("not_evaluated")]).decision == Eligibility.INDETERMINATE
    assert decide([result("not_evaluated", optional=True)]).decision == Eligibility.NOT_EXCLUDED
    minor = decide([result("fail", "optimal")])
    assert minor.minor_deviations and "= 50.00, limit <= 45 (optimal)" in minor.minor_deviations[0]


def test_a_limit_converts_by_iso_bed_to_the_plans_fractions():
    # 30 Gy in 5 fractions with a/b 2 Gy: BED = 30 (1 + 6/2) = 120 Gy. In 25 fractions,
    # D (1 + D/50) = 120 gives D = 25 (sqrt(10.6) - 1) = 56.395 Gy.
    cord = limit("D0.03cc[Gy]", {1: "<= 14", 3: "<= 21.9", 5: "<= 30"})
    metric, comparison, note = convert_limit(cord, 5, 25, 2.0)
    assert comparison.value == pytest.approx(25 * (math.sqrt(10.6) - 1), abs=5e-4)
    assert "published for 5 fractions; converted to 25 fractions" in note
    assert convert_limit(cord, 3, 3, 2.0) == (
        cord.by_fractions[1][1],
        cord.by_fractions[1][2],
        None,
    )
    # To EQD2 (a sum of plans): 120 / (1 + 2/2) = 60 Gy.
    _, eqd2, note = convert_limit(cord, 5, None, 2.0)
    assert eqd2.value == pytest.approx(60.0) and "EQD2" in note


def test_the_nearest_column_is_chosen_and_thresholds_of_volumes_convert():
    lung = limit("V20Gy[%]", {1: "<= 10", 3: "<= 10"})
    metric, comparison, note = convert_limit(lung, 4, 4, 3.0)  # nearest published: 3 fractions
    # 20 Gy in 3 fractions, a/b 3: BED = 20 (1 + 6.667/3) = 64.44; in 4: D (1 + D/12) = 64.44.
    expected = 6 * (math.sqrt(1 + 4 * 64.444444 / 12) - 1)
    assert metric.threshold == pytest.approx(expected, abs=0.005)
    assert comparison.value == 10 and "V20Gy[%] -> V" in note


def test_a_limit_of_several_columns_needs_a_fractionation():
    cord = limit("D0.03cc[Gy]", {1: "<= 14", 3: "<= 21.9"})
    with pytest.raises(NotEvaluable, match="unknown fractionation"):
        convert_limit(cord, None, None, 2.0)
    assert published_columns(cord) == "<= 14 (1 fx), <= 21.9 (3 fx)"
    assert published_columns(limit("Mean[Gy]", {0: "<= 20"})) == "<= 20"


def test_relative_metrics_do_not_convert():
    coverage = limit("V100%[%]", {5: ">= 90"})
    metric, comparison, note = convert_limit(coverage, 5, 25, 10.0)
    assert (metric.text, comparison.value) == ("V100%[%]", 90) and "unchanged" in note


def roi(number: int, name: str, defects: tuple[str, ...] = ()) -> Structure:
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    planes = tuple(ContourPlane(z, (square,), z - 1.0, z + 1.0) for z in (0.0, 2.0))
    return Structure(number, name, "ORGAN", planes, (), defects)


def test_structures_are_found_derived_refused_with_their_reason():
    protocol = load_protocol()
    rois = (roi(1, "Lung Lt"), roi(2, "Lung Rt"), roi(3, "Cord", ("a contour is repeated",)),
            roi(4, "heart"), roi(5, "HEART "))  # fmt: skip
    resolver = StructureResolver(rois, protocol, {})
    region, names = resolver.region("Lungs")
    assert names == ("Lung Lt", "Lung Rt") and len(region.plus) == 2
    with pytest.raises(NotEvaluable, match="'Cord' .SpinalCord. cannot be trusted: a contour"):
        resolver.region("SpinalCord")
    with pytest.raises(NotEvaluable, match="ambiguous: 'heart', 'HEART ' match"):
        resolver.region("Heart")
    with pytest.raises(NotEvaluable, match="structure Liver not found among the ROIs"):
        resolver.region("Liver")
    assert resolver.matches["Liver"].status == "missing"


def uniform_dvh(volume_cc: float = 100.0, in_grid_cc: float | None = None) -> DVH:
    """Dose uniform over 10..60 Gy in 0.005 Gy bins."""
    inside = volume_cc if in_grid_cc is None else in_grid_cc
    bins = np.zeros(int(60 / 0.005))
    bins[int(10 / 0.005) :] = inside / (50 / 0.005)
    return DVH("Cord", volume_cc, inside, 0.005, bins, 35.0, 10.0, 60.0)


def test_a_limit_is_judged_on_a_dvh_with_value_and_margin():
    cord = limit("D0.03cc[Gy]", {0: "<= 45"})
    metric, comparison = cord.by_fractions[0][1], cord.by_fractions[0][2]
    failed = judge(
        cord,
        metric,
        comparison,
        uniform_dvh(),
        rois=("Cord",),
        lesion=None,
        conversion=None,
        prescription=None,
    )
    assert failed.result == "fail" and failed.value == pytest.approx(60 - 0.03 * 0.5, abs=1e-6)
    assert failed.margin == pytest.approx(45 - failed.value)
    outside = judge(
        cord,
        metric,
        comparison,
        uniform_dvh(100, 90),
        rois=("Cord",),
        lesion=None,
        conversion=None,
        prescription=None,
    )
    assert outside.result == "not_evaluated" and "(90.0% inside)" in outside.reason
    big = limit("D150cc[Gy]", {0: "<= 45"})
    undefined = judge(
        big,
        big.by_fractions[0][1],
        comparison,
        uniform_dvh(),
        rois=(),
        lesion=None,
        conversion=None,
        prescription=None,
    )
    assert undefined.result == "not_evaluated" and "is undefined" in undefined.reason
