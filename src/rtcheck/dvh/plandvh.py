"""DVHs and metric values for the structures of a loaded plan, for every dose set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rtcheck.dicom.plan import DoseSet, Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.engine import DVH, compute_dvh
from rtcheck.dvh.metrics import Metric, evaluate_metric, parse_metric, undefined_reason
from rtcheck.errors import InvalidStructureError

DEFAULT_METRICS = (
    "Min[Gy]",
    "Mean[Gy]",
    "Max[Gy]",
    "D98%[Gy]",
    "D95%[Gy]",
    "D50%[Gy]",
    "D2%[Gy]",
    "D0.03cc[Gy]",
)


@dataclass(frozen=True, eq=False)
class StructureDVH:
    """One structure's DVH in one dose set, with the metric values asked for.

    Attributes
    ----------
    structure
        The ROI.
    dose
        The dose set.
    dvh
        The DVH, or None for an ROI without contours.
    metrics
        Metric text → value in the metric's unit (NaN where it cannot be computed).
    warnings
        What the user must know before trusting the values.
    """

    structure: Structure
    dose: DoseSet
    dvh: DVH | None
    metrics: dict[str, float]
    warnings: tuple[str, ...]


def select_structures(plan: Plan, names: Sequence[str] = ()) -> list[Structure]:
    """The ROIs named (exact ROIName, else a unique case-insensitive match), or every ROI but the
    body outline when no name is given.

    Raises
    ------
    InvalidStructureError
        A name matches no ROI or several. A named ROI without contours is chosen: its results
        say it is empty.
    """
    structures = plan.structure_set.structures
    if not names:
        return [s for s in structures if not s.is_external]
    chosen = []
    for name in names:
        exact = [s for s in structures if s.name == name]
        folded = [s for s in structures if s.name.strip().casefold() == name.strip().casefold()]
        found = exact or folded
        if not found:
            available = ", ".join(s.name for s in structures)
            raise InvalidStructureError(f"no ROI named {name!r}; the structure set has {available}")
        if len(found) > 1:
            raise InvalidStructureError(f"{len(found)} ROIs match {name!r}")
        chosen.append(found[0])
    return chosen


def structure_dvhs(
    plan: Plan,
    structures: Sequence[Structure],
    metrics: Sequence[str] = DEFAULT_METRICS,
    prescription_gy: float | None = None,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> list[StructureDVH]:
    """Compute the DVH and metrics of each structure in each of the plan's dose sets.

    Parameters
    ----------
    plan
        The loaded plan.
    structures
        The ROIs to compute (see :func:`select_structures`).
    metrics
        TG-263 metrics to evaluate.
    prescription_gy
        Prescription (Gy) for relative metrics; by default each dose set's RTPLAN prescription.
    end_caps
        How far the outermost contour planes reach along z.

    Raises
    ------
    MetricSyntaxError
        A metric is malformed (checked before any computation).
    MetricEvaluationError
        A relative metric is asked for and no prescription is known.
    """
    parsed: list[Metric] = [parse_metric(m) for m in metrics]
    results = []
    for dose in plan.doses:
        rx = prescription_gy
        if rx is None and dose.plan is not None:
            rx = dose.plan.prescription_gy
        for structure in structures:
            if structure.is_empty:
                results.append(
                    StructureDVH(
                        structure,
                        dose,
                        None,
                        {m.text: float("nan") for m in parsed},
                        (*structure.warnings, f"ROI {structure.name!r} has no contours"),
                    )
                )
                continue
            dvh = compute_dvh(structure, dose.grid, end_caps=end_caps)
            values = {m.text: evaluate_metric(m, dvh, rx) for m in parsed}
            warnings = list(dvh.warnings)
            if dvh.volume_in_grid_cc > 0:  # else the DVH's own warning says it all
                warnings += [r for m in parsed if (r := undefined_reason(m, dvh)) is not None]
            if dose.per_fraction:
                warnings.append(f"dose set {dose.label!r} is the dose of one fraction")
            results.append(StructureDVH(structure, dose, dvh, values, tuple(warnings)))
    return results
