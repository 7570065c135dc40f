"""TG-263 metric grammar and evaluation on DVHs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import evaluate_metric, parse_metric, undefined_reason
from rtcheck.errors import MetricEvaluationError, MetricSyntaxError


def uniform_dvh(volume_cc: float = 100.0, low: float = 10.0, high: float = 60.0) -> DVH:
    """A DVH whose dose is spread uniformly over [low, high) Gy."""
    width = 0.005
    edges = np.arange(0, high + width, width)
    diff = np.where((edges[:-1] >= low) & (edges[:-1] < high), 1.0, 0.0)
    diff *= volume_cc / diff.sum()
    return DVH("uniform", volume_cc, volume_cc, width, diff, (low + high) / 2, low, high)


@pytest.mark.parametrize(
    ("text", "quantity", "threshold", "unit", "result"),
    [
        ("D95%[Gy]", "D", 95.0, "%", "Gy"),
        ("D0.03cc[Gy]", "D", 0.03, "cc", "Gy"),
        ("D2%[%]", "D", 2.0, "%", "%"),
        ("D50%[cGy]", "D", 50.0, "%", "cGy"),
        ("V20Gy[%]", "V", 20.0, "Gy", "%"),
        ("V20Gy[cc]", "V", 20.0, "Gy", "cc"),
        ("V2000cGy[%]", "V", 2000.0, "cGy", "%"),
        ("V95%[%]", "V", 95.0, "%", "%"),
        ("CV12.5Gy[cc]", "CV", 12.5, "Gy", "cc"),
        ("DC1000cc[Gy]", "DC", 1000.0, "cc", "Gy"),
        ("Mean[Gy]", "Mean", None, None, "Gy"),
        ("Max[cGy]", "Max", None, None, "cGy"),
        ("Min[Gy]", "Min", None, None, "Gy"),
        (" V.5Gy[%] ", "V", 0.5, "Gy", "%"),
    ],
)
def test_parse_valid(text, quantity, threshold, unit, result):
    m = parse_metric(text)
    assert (m.quantity, m.threshold, m.threshold_unit, m.result_unit) == (
        quantity,
        threshold,
        unit,
        result,
    )


@pytest.mark.parametrize(
    "text",
    ["", "D95", "D95%", "V20[%]", "V20Gy[Gy]", "D95%[cc]", "Dmax[Gy]", "Mean", "X20Gy[%]",
     "D-5%[Gy]", "V20Gy[%]x", "D95 %[Gy]", "CV20cc[cc]", "DC20Gy[Gy]", "Mean[cc]"],
)  # fmt: skip
def test_parse_malformed_names_the_metric(text):
    with pytest.raises(MetricSyntaxError, match="malformed DVH metric"):
        parse_metric(text)


def test_values_on_a_uniform_dvh():
    dvh = uniform_dvh()  # 100 cc uniform over 10-60 Gy: V(d) = 100 (60 - d) / 50
    assert evaluate_metric("V20Gy[%]", dvh) == pytest.approx(80.0, abs=1e-6)
    assert evaluate_metric("V20Gy[cc]", dvh) == pytest.approx(80.0, abs=1e-6)
    assert evaluate_metric("V2000cGy[%]", dvh) == pytest.approx(80.0, abs=1e-6)
    assert evaluate_metric("CV20Gy[cc]", dvh) == pytest.approx(20.0, abs=1e-6)
    assert evaluate_metric("D95%[Gy]", dvh) == pytest.approx(12.5, abs=1e-6)
    assert evaluate_metric("D50%[Gy]", dvh) == pytest.approx(35.0, abs=1e-6)
    assert evaluate_metric("D50%[cGy]", dvh) == pytest.approx(3500.0, abs=1e-4)
    assert evaluate_metric("D10cc[Gy]", dvh) == pytest.approx(55.0, abs=1e-6)
    assert evaluate_metric("DC10cc[Gy]", dvh) == pytest.approx(15.0, abs=1e-6)
    assert evaluate_metric("Mean[Gy]", dvh) == 35.0
    assert evaluate_metric("Max[Gy]", dvh) == 60.0
    assert evaluate_metric("Min[Gy]", dvh) == 10.0
    assert evaluate_metric("D0%[Gy]", dvh) == 60.0
    assert evaluate_metric("D100%[Gy]", dvh) == 10.0
    assert evaluate_metric("V70Gy[%]", dvh) == 0.0
    assert evaluate_metric("V5Gy[%]", dvh) == pytest.approx(100.0)


def test_interpolates_inside_bins():
    dvh = uniform_dvh()
    # 12.5 % falls inside a 0.005 Gy bin: the value must not snap to a bin edge.
    value = evaluate_metric("D12.3456%[Gy]", dvh)
    assert value == pytest.approx(60 - 0.123456 * 50, abs=1e-6)


def test_relative_metrics_need_a_prescription():
    dvh = uniform_dvh()
    assert evaluate_metric("V50%[%]", dvh, prescription_gy=60.0) == pytest.approx(
        100 * (60 - 30) / 50
    )
    assert evaluate_metric("D50%[%]", dvh, prescription_gy=70.0) == pytest.approx(50.0)
    assert evaluate_metric("Mean[%]", dvh, prescription_gy=35.0) == pytest.approx(100.0)
    with pytest.raises(MetricEvaluationError, match="prescription"):
        evaluate_metric("V95%[%]", dvh)


def test_empty_dvh_gives_nan():
    dvh = DVH("outside", 1.0, 0.0, 0.005, np.zeros(1), math.nan, math.nan, math.nan)
    assert math.isnan(evaluate_metric("D95%[Gy]", dvh))
    assert dvh.dose_coverage == 0.0


def test_a_dose_at_more_volume_than_the_roi_has_is_undefined():
    dvh = uniform_dvh()  # 100 cc
    assert evaluate_metric("D100cc[Gy]", dvh) == pytest.approx(10.0)  # the whole ROI: its Min
    for text in ("D100.5cc[Gy]", "DC150cc[Gy]"):
        assert math.isnan(evaluate_metric(text, dvh))
        assert "has 100.00 cc, less than" in undefined_reason(text, dvh)
    assert undefined_reason("D99cc[Gy]", dvh) is None
    assert undefined_reason("V200Gy[cc]", dvh) is None  # a volume of 0 cc is a value


def test_every_metric_of_an_roi_without_volume_is_undefined():
    outside = DVH("outside", 1.0, 0.0, 0.005, np.zeros(1), math.nan, math.nan, math.nan)
    for text in ("V20Gy[cc]", "D2%[Gy]", "Mean[Gy]"):
        assert math.isnan(evaluate_metric(text, outside))
        assert "inside the dose grid" in undefined_reason(text, outside)
    assert "no contours" in undefined_reason("V20Gy[cc]", None)


def test_an_roi_partly_outside_the_grid_says_so_in_the_reason():
    dvh = uniform_dvh()
    partial = DVH("part", 150.0, dvh.volume_in_grid_cc, dvh.bin_width_gy, dvh.differential_cc,
                  dvh.mean_gy, dvh.min_gy, dvh.max_gy)  # fmt: skip
    assert "100.00 cc inside the dose grid, less than 120 cc" in undefined_reason(
        "D120cc[Gy]", partial
    )
