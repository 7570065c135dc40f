"""TG-263 DVH metrics: parsing and evaluation.

Grammar (AAPM Report 263, 2018), with ``x`` a non-negative number:

- ``D<x>%[Gy]``, ``D<x>cc[Gy]``: dose that the hottest x % or x cc receive; ``[%]`` gives it
  in percent of the prescription, ``[cGy]`` in cGy.
- ``DC<x>cc[Gy]``, ``DC<x>%[Gy]``: dose complement, the dose that the coldest x cc / x % stay under.
- ``V<x>Gy[%]``, ``V<x>Gy[cc]``, ``V<x>cGy[...]``, ``V<x>%[...]``: volume receiving at least x
  (x in % of the prescription for ``V<x>%``).
- ``CV<x>Gy[cc]``, ``CV<x>Gy[%]``: volume complement, the volume receiving less than x.
- ``Mean[Gy]``, ``Max[Gy]``, ``Min[Gy]``, also in ``[cGy]`` or ``[%]`` of the prescription.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from rtcheck.dvh.engine import DVH
from rtcheck.errors import MetricEvaluationError, MetricSyntaxError

#: ``Index``: a plan-quality index of a lesion (:mod:`rtcheck.dvh.quality`), not read from one DVH.
Quantity = Literal["D", "DC", "V", "CV", "Mean", "Max", "Min", "Index"]

_NUMBER = r"(?P<x>\d+(?:\.\d+)?|\.\d+)"
_DOSE_AT_VOLUME = re.compile(rf"^(?P<q>DC|D){_NUMBER}(?P<u>%|cc)\[(?P<r>Gy|cGy|%)\]$")
_VOLUME_AT_DOSE = re.compile(rf"^(?P<q>CV|V){_NUMBER}(?P<u>Gy|cGy|%)\[(?P<r>%|cc)\]$")
_STATISTIC = re.compile(r"^(?P<q>Mean|Max|Min)\[(?P<r>Gy|cGy|%)\]$")


@dataclass(frozen=True)
class Metric:
    """A parsed DVH metric.

    Attributes
    ----------
    text
        The metric as written.
    quantity
        ``D``, ``DC``, ``V``, ``CV``, ``Mean``, ``Max`` or ``Min``.
    threshold
        The number after the quantity (None for Mean/Max/Min).
    threshold_unit
        ``%``, ``cc``, ``Gy`` or ``cGy`` (None for Mean/Max/Min).
    result_unit
        ``Gy``, ``cGy``, ``%`` or ``cc``.
    """

    text: str
    quantity: Quantity
    threshold: float | None
    threshold_unit: str | None
    result_unit: str

    @property
    def needs_prescription(self) -> bool:
        """True when evaluating needs the prescription dose."""
        is_dose_result = self.quantity in ("D", "DC", "Mean", "Max", "Min")
        return (is_dose_result and self.result_unit == "%") or (
            self.quantity in ("V", "CV") and self.threshold_unit == "%"
        )

    @property
    def is_dose(self) -> bool:
        """True when the metric's value is a dose (Gy, cGy or % of prescription)."""
        return self.quantity in ("D", "DC", "Mean", "Max", "Min")


def parse_metric(text: str) -> Metric:
    """Parse a TG-263 DVH metric such as ``V20Gy[%]`` or ``D0.03cc[Gy]``.

    Raises
    ------
    MetricSyntaxError
        If ``text`` does not follow the grammar; the message names it.
    """
    stripped = text.strip()
    for pattern in (_DOSE_AT_VOLUME, _VOLUME_AT_DOSE):
        match = pattern.match(stripped)
        if match:
            return Metric(
                text=stripped,
                quantity=match["q"],  # type: ignore[arg-type]
                threshold=float(match["x"]),
                threshold_unit=match["u"],
                result_unit=match["r"],
            )
    match = _STATISTIC.match(stripped)
    if match:
        return Metric(stripped, match["q"], None, None, match["r"])  # type: ignore[arg-type]
    raise MetricSyntaxError(
        f"malformed DVH metric {text!r}: expected TG-263 syntax such as D95%[Gy], D0.03cc[Gy], "
        "V20Gy[%], V20Gy[cc], V95%[%], CV12.5Gy[cc], DC1000cc[Gy], Mean[Gy], Max[Gy]"
    )


def evaluate_metric(metric: Metric | str, dvh: DVH, prescription_gy: float | None = None) -> float:
    """Evaluate a metric on a DVH.

    Parameters
    ----------
    metric
        A parsed metric, or its text.
    dvh
        The DVH.
    prescription_gy
        Prescription dose (Gy), needed by metrics in % of prescription.

    Returns
    -------
    float
        The value in the metric's result unit (Gy, cGy, cc, or %). NaN where the metric is
        undefined (:func:`undefined_reason` says why).

    Raises
    ------
    MetricEvaluationError
        If the metric needs a prescription and none is given.
    """
    m = parse_metric(metric) if isinstance(metric, str) else metric
    if m.needs_prescription and (prescription_gy is None or not prescription_gy > 0):
        raise MetricEvaluationError(
            f"{m.text} is relative to the prescription, and no prescription dose is known "
            "(give one, or provide the RTPLAN)"
        )
    if undefined_reason(m, dvh) is not None:
        return math.nan
    total = dvh.volume_in_grid_cc

    if m.is_dose:
        if m.quantity == "Mean":
            dose = dvh.mean_gy
        elif m.quantity == "Max":
            dose = dvh.max_gy
        elif m.quantity == "Min":
            dose = dvh.min_gy
        else:
            assert m.threshold is not None
            volume = m.threshold if m.threshold_unit == "cc" else m.threshold / 100.0 * total
            if m.quantity == "DC":
                volume = total - volume
            dose = dvh.dose_at_volume(volume)
        return _dose_in(dose, m.result_unit, prescription_gy)

    assert m.threshold is not None and m.threshold_unit is not None
    threshold_gy = _dose_from(m.threshold, m.threshold_unit, prescription_gy)
    volume = dvh.volume_at_dose(threshold_gy)
    if m.quantity == "CV":
        volume = total - volume
    return volume if m.result_unit == "cc" else 100.0 * volume / total


def undefined_reason(metric: Metric | str, dvh: DVH | None) -> str | None:
    """Why a metric has no value on a DVH, or None when it has one.

    A metric is undefined on an ROI with no volume (no contours, or none of it inside the dose
    grid), and a D-cc or DC-cc is undefined when it asks for more volume than the ROI has inside
    the dose grid: the hottest 15 cc of a 13 cc ROI do not exist, and its minimum dose is not
    their dose.
    """
    m = parse_metric(metric) if isinstance(metric, str) else metric
    if dvh is None:
        return f"{m.text} is undefined: the ROI has no contours"
    if dvh.volume_in_grid_cc <= 0:
        return f"{m.text} is undefined: no part of ROI {dvh.name!r} lies inside the dose grid"
    if m.quantity in ("D", "DC") and m.threshold_unit == "cc":
        assert m.threshold is not None
        if m.threshold > dvh.volume_in_grid_cc * (1 + 1e-9):
            where = " inside the dose grid" if dvh.dose_coverage < 1 - 1e-6 else ""
            return (
                f"{m.text} is undefined: ROI {dvh.name!r} has {dvh.volume_in_grid_cc:.2f} cc"
                f"{where}, less than {m.threshold:g} cc"
            )
    return None


def _dose_in(dose_gy: float, unit: str, prescription_gy: float | None) -> float:
    if unit == "Gy":
        return dose_gy
    if unit == "cGy":
        return 100.0 * dose_gy
    assert prescription_gy is not None
    return 100.0 * dose_gy / prescription_gy


def _dose_from(value: float, unit: str, prescription_gy: float | None) -> float:
    if unit == "Gy":
        return value
    if unit == "cGy":
        return value / 100.0
    assert prescription_gy is not None
    return value / 100.0 * prescription_gy
