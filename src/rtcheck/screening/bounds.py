"""Lower bounds that geometry proves: what any plan meeting the protocol's coverage limits must
give an organ that overlaps a target.

A mandatory coverage limit such as ``V100%[%] >= 90`` lets at most 10 % of the PTV stay below the
prescription: of an organ's volume inside that PTV, at least (overlap − 10 % of the PTV's
volume) receives at least the prescription. ``D99%[%] >= 90`` forces (overlap − 1 % of the
PTV) to at least 90 % of it. Each such pair (dose level, forced volume) bounds the organ's
metrics from below:

- ``D<v>cc`` / ``D<v>%``: at least the level, where the forced volume reaches v;
- ``Max``: at least the level, where any volume is forced;
- ``Mean``: at least forced volume × level / organ volume;
- ``V<d>Gy``: at least the forced volume, where the level reaches d;
- ``CV<d>Gy`` (the volume below d): at most organ volume − forced volume.

Each bound stands alone (the highest over the pairs); none adds the doses of two targets. No
fall-off model is used: published R50 % or D2cm values are acceptance limits, not floors. The
forced volume is reduced by :data:`GEOMETRY_TOLERANCE` of the overlap (and 0.001 cc), the
error of the volumes themselves, so that a bound never exceeds what the contours prove.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtcheck.dvh.metrics import Metric
from rtcheck.protocol.definition import Comparison, Limit

#: Relative error of the contoured volumes (fractional occupancy: within 0.04 % on analytical
#: shapes); the forced volume is reduced by this share of the overlap.
GEOMETRY_TOLERANCE = 0.002
GEOMETRY_FLOOR_CC = 0.001


@dataclass(frozen=True)
class Forcing:
    """What a coverage limit forces on a target: at least ``level_gy`` everywhere in it but
    ``allowance_cc``.

    Attributes
    ----------
    target
        The target ROI.
    level_gy
        The dose (Gy) the covered part receives at least.
    allowance_cc
        The target's volume that may stay below it.
    limit
        The coverage limit, as the protocol writes it (``V100%[%] >= 90``).
    """

    target: str
    level_gy: float
    allowance_cc: float
    limit: str


@dataclass(frozen=True)
class Bound:
    """A bound on a metric that any compliant plan obeys.

    Attributes
    ----------
    value
        The bound, in the metric's unit.
    lower
        True: the metric is at least ``value``; False: at most.
    forcing
        The coverage limit and target that prove it.
    overlap_cc, forced_cc
        The organ's volume inside the target, and the part forced to the level.
    """

    value: float
    lower: bool
    forcing: Forcing
    overlap_cc: float
    forced_cc: float

    def breaks(self, comparison: Comparison) -> bool:
        """True when no value within the bound meets ``comparison``."""
        op, x = comparison.operator, comparison.value
        if self.lower:
            return (op == "<=" and self.value > x) or (op == "<" and self.value >= x)
        return (op == ">=" and self.value < x) or (op == ">" and self.value <= x)


def forcings(
    coverage: list[Limit], target: str, target_cc: float, prescription_gy: float
) -> list[Forcing]:
    """What the mandatory coverage limits force on a target of ``target_cc`` prescribed
    ``prescription_gy``; limits that force nothing (upper limits, indices, means) give none."""
    found = []
    for limit in coverage:
        if limit.priority != "mandatory":
            continue
        _, metric, comparison = limit.by_fractions[0]
        if comparison.operator not in (">=", ">"):
            continue
        pair = _forced(metric, comparison.value, target_cc, prescription_gy)
        if pair is not None:
            level, allowance = pair
            found.append(Forcing(target, level, max(0.0, allowance), f"{metric.text} {comparison}"))
    return found


def _forced(
    metric: Metric, value: float, target_cc: float, rx_gy: float
) -> tuple[float, float] | None:
    """(level Gy, allowance cc) of one coverage limit, or None."""

    def dose(amount: float, unit: str | None) -> float | None:
        return {"Gy": amount, "cGy": amount / 100, "%": amount / 100 * rx_gy}.get(unit or "")

    if metric.quantity == "V" and metric.threshold is not None:
        level = dose(metric.threshold, metric.threshold_unit)
        covered = value / 100 * target_cc if metric.result_unit == "%" else value
        return None if level is None else (level, target_cc - covered)
    if metric.quantity == "D" and metric.threshold is not None:
        level = dose(value, metric.result_unit)
        unit = metric.threshold_unit
        covered = metric.threshold / 100 * target_cc if unit == "%" else metric.threshold
        return None if level is None else (level, target_cc - covered)
    if metric.quantity == "Min":
        level = dose(value, metric.result_unit)
        return None if level is None else (level, 0.0)
    return None


def bound(metric: Metric, pairs: list[tuple[Forcing, float]], organ_cc: float) -> Bound | None:
    """The strongest bound on an organ's ``metric`` from (forcing, overlap cc) pairs; None when
    they prove nothing about it."""
    best: Bound | None = None
    for forcing, overlap in pairs:
        forced = overlap - forcing.allowance_cc - GEOMETRY_TOLERANCE * overlap
        forced -= GEOMETRY_FLOOR_CC
        if forced <= 0:
            continue
        candidate = _one(metric, forcing, overlap, forced, organ_cc)
        if candidate is None:
            continue
        if best is None or (
            candidate.value > best.value if candidate.lower else candidate.value < best.value
        ):
            best = candidate
    return best


def _one(
    metric: Metric, forcing: Forcing, overlap: float, forced: float, organ_cc: float
) -> Bound | None:
    level = forcing.level_gy
    scale = {"Gy": 1.0, "cGy": 100.0}

    def made(value: float, lower: bool = True) -> Bound:
        return Bound(value, lower, forcing, overlap, forced)

    q = metric.quantity
    if q in ("D", "Max", "Mean") and metric.result_unit not in scale:
        return None  # a dose in % of a prescription: not an OAR's
    if q == "D" and metric.threshold is not None:
        volume = (
            metric.threshold
            if metric.threshold_unit == "cc"
            else (metric.threshold / 100 * organ_cc)
        )
        if volume > organ_cc or forced < volume:
            return None
        return made(level * scale[metric.result_unit])
    if q == "Max":
        return made(level * scale[metric.result_unit])
    if q == "Mean":
        return made(forced * level / organ_cc * scale[metric.result_unit]) if organ_cc else None
    if q in ("V", "CV") and metric.threshold is not None:
        threshold = {"Gy": metric.threshold, "cGy": metric.threshold / 100}.get(
            metric.threshold_unit or ""
        )
        if threshold is None or level < threshold:
            return None
        if q == "V":
            return made(forced if metric.result_unit == "cc" else 100 * forced / organ_cc)
        if metric.result_unit == "cc":
            return made(organ_cc - forced, lower=False)
    return None
