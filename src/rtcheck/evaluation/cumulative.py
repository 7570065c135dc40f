"""A patient irradiated before: the earlier courses summed with the current one in EQD2 and
judged against the protocol's cumulative limits, with the interval between the courses and the
earlier dose of every lesion.

Each earlier course's physical dose is sampled on the current dose grid (trilinear, through its
registration), converted to EQD2 voxel by voxel with its own fractions and the limit's α/β, and
added to the current course's EQD2; the sum goes through the same DVH engine as any dose.
Recovery between courses is applied only where the protocol states a rule, and the result
then shows the dose without it too. An organ that both courses irradiate and that no
cumulative limit covers is ``not_evaluated``: never a silent pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import numpy as np

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.plan import Plan
from rtcheck.dicom.prior import EarlierCourse, Placement
from rtcheck.dicom.resample import Resampled, resample
from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import Metric, evaluate_metric, parse_metric
from rtcheck.dvh.regions import Region
from rtcheck.errors import RtcheckError
from rtcheck.evaluation.doses import PlanDoses
from rtcheck.evaluation.limits import judge, not_evaluated
from rtcheck.evaluation.matching import StructureResolver
from rtcheck.evaluation.results import (
    CourseSummary,
    EarlierCourses,
    EarlierDose,
    LimitResult,
    NotEvaluable,
)
from rtcheck.protocol import lq
from rtcheck.protocol.definition import Comparison, CumulativeLimit, Limit, Protocol
from rtcheck.protocol.lesions import Lesion

#: Days in a month, on average, for the interval between courses.
MONTH_DAYS = 30.4375
#: The trial admits patients whose earlier treatment ended more than this many months before.
MIN_INTERVAL_MONTHS = 6.0
_LESION_METRICS = (parse_metric("D98%[Gy]"), parse_metric("D50%[Gy]"), parse_metric("Max[Gy]"))


@dataclass(frozen=True, eq=False)
class _Placed:
    course: EarlierCourse
    placement: Placement
    resampled: Resampled
    interval_months: float | None


def evaluate_cumulative(
    plan: Plan,
    protocol: Protocol,
    structures: StructureResolver,
    doses: PlanDoses,
    earlier: Sequence[tuple[EarlierCourse, Placement]],
    lesions: Sequence[Lesion],
) -> tuple[list[LimitResult], EarlierCourses]:
    """The cumulative limits' results and what the earlier courses add to the evaluation."""
    rules = protocol.reirradiation
    plan_date, plan_date_source = _plan_date(plan)
    target = plan.doses[0].grid
    placed = [
        _Placed(
            course,
            placement,
            resample(course.dose, target, placement.point_map),
            _months(course.end_date, plan_date),
        )
        for course, placement in earlier
    ]
    sums = _Sums(doses, placed)
    results: list[LimitResult] = []
    covered: set[str] = set()
    for cumulative in rules.limits:
        result, added = _judge(cumulative, structures, sums, placed, rules.irradiated_gy)
        covered.update(added or (cumulative.limit.structure,))
        if rules.status:
            result = replace(result, source=f"{result.source} [{rules.status}]")
        results.append(result)
    results += _uncovered(protocol, structures, doses, sums, covered)
    flags = []
    for p in placed:
        if p.interval_months is not None and p.interval_months < MIN_INTERVAL_MONTHS:
            flags.append(
                f"inclusion 4: the earlier course {p.course.label!r} ended "
                f"{p.interval_months:.1f} months before the plan ({p.course.end_date_source}; "
                f"plan {plan_date_source}): fewer than {MIN_INTERVAL_MONTHS:g}"
            )
    lesion_doses = _lesion_doses(plan, protocol, lesions, doses, placed)
    for dose in lesion_doses:
        if dose.inside_field:
            flags.append(
                f"exclusion 2 / inclusion 6: lesion {dose.lesion} lies inside the field of the "
                f"earlier course {dose.course!r} (D50% {dose.d50_gy:.1f} Gy, "
                f"{dose.d50_percent:.0f}% of its prescription; the protocol's threshold "
                f"{rules.prior_field_percent:g}%): a person decides progression and measurability"
            )
    summary = EarlierCourses(
        courses=tuple(_summary(p) for p in placed),
        lesion_doses=tuple(lesion_doses),
        flags=tuple(flags),
        plan_date=plan_date.isoformat() if plan_date else None,
        plan_date_source=plan_date_source,
        status=rules.status,
    )
    return results, summary


class _Sums:
    """The cumulative EQD2 grids (one per α/β and recovery), and each course's resampled dose,
    with their keys for the DVH cache."""

    def __init__(self, doses: PlanDoses, placed: list[_Placed]) -> None:
        self.doses, self.placed = doses, placed
        self._grids: dict[str, DoseGrid] = {}

    def grid(self, alpha_beta: float, recovery: Sequence[float]) -> tuple[DoseGrid, str]:
        """The sum at ``alpha_beta`` with each earlier course counted ``1 - recovery[i]/100``."""
        key = f"cumulative:{alpha_beta:g}" + "".join(f":{r:g}" for r in recovery)
        if key not in self._grids:
            current = self.doses.eqd2(alpha_beta)
            total = current.dose_gy.astype(np.float64)
            for p, percent in zip(self.placed, recovery, strict=True):
                if p.course.fractions is None:
                    raise NotEvaluable(
                        f"the fractions of the earlier course {p.course.label!r} are unknown "
                        "(no RTPLAN given with it)"
                    )
                earlier = lq.eqd2_grid(p.resampled.grid.dose_gy, p.course.fractions, alpha_beta)
                total += earlier.astype(np.float64) * (1.0 - percent / 100.0)
            self._grids[key] = current.with_dose(total.astype(np.float32), "EQD2_CUMULATIVE")
        return self._grids[key], key

    def earlier_dvh(self, region: Region, index: int) -> DVH:
        """The DVH of ``region`` in earlier course ``index``'s physical dose."""
        return self.doses.dvh(region, self.placed[index].resampled.grid, f"earlier:{index + 1}")


def _judge(
    cumulative: CumulativeLimit,
    structures: StructureResolver,
    sums: _Sums,
    placed: list[_Placed],
    irradiated_gy: float,
) -> tuple[LimitResult, tuple[str, ...]]:
    """The limit's result, and the ROIs its structure adds up (the organs it covers)."""
    limit = cumulative.limit
    _, metric, comparison = limit.by_fractions[0]
    rois: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    recovery = [cumulative.recovery_percent(p.interval_months) for p in placed]
    try:
        region, rois = structures.region(limit.structure)
        added = tuple(s.name for s in region.plus)
        _refuse_open_grid(region, placed, irradiated_gy)
        grid, key = sums.grid(cumulative.alpha_beta, recovery)
        dvh = sums.doses.dvh(region, grid, key)
        conversion = (
            f"EQD2 sum of {len(placed) + 1} courses, alpha/beta {cumulative.alpha_beta:g} Gy"
        )
        if any(recovery):
            plain_grid, plain_key = sums.grid(cumulative.alpha_beta, [0.0] * len(placed))
            plain = evaluate_metric(metric, sums.doses.dvh(region, plain_grid, plain_key), None)
            parts = ", ".join(
                f"{p.course.label!r} {r:g}% after {p.interval_months:.1f} months"
                for p, r in zip(placed, recovery, strict=True)
                if r
            )
            unit = metric.result_unit
            conversion += (
                f"; recovery stated by the protocol: {parts}; without it {plain:.2f} {unit}"
            )
        elif cumulative.recovery:
            unknown = [p.course.label for p in placed if p.interval_months is None]
            if unknown:
                conversion += "; no recovery applied: the interval is unknown"
    except (NotEvaluable, RtcheckError) as exc:
        return (
            not_evaluated(
                limit, metric.text, str(comparison), rois=rois, reason=str(exc), lesion=None
            ),
            added,
        )
    return (
        judge(
            limit,
            metric,
            comparison,
            dvh,
            rois=rois,
            lesion=None,
            conversion=conversion,
            prescription=None,
        ),
        added,
    )


def _refuse_open_grid(region: Region, placed: list[_Placed], irradiated_gy: float) -> None:
    """Refuse a region that reaches beyond an earlier dose grid whose dose at its edge is still
    at least ``irradiated_gy``: 0 Gy beyond it would be a guess."""
    lo, hi = region.xy_bounds()
    z = [p.bottom_mm for s in region.plus for p in s.planes] + [
        p.top_mm for s in region.plus for p in s.planes
    ]
    for p in placed:
        if p.resampled.edge_max_gy < irradiated_gy or not p.resampled.outside.any():
            continue
        grid = p.resampled.grid
        xs = (grid.x_mm >= lo[0]) & (grid.x_mm <= hi[0])
        ys = (grid.y_mm >= lo[1]) & (grid.y_mm <= hi[1])
        zs = (grid.z_mm >= min(z)) & (grid.z_mm <= max(z))
        box = p.resampled.outside[np.ix_(zs, ys, xs)]
        if box.any():
            raise NotEvaluable(
                f"{region.name} reaches beyond the dose grid of the earlier course "
                f"{p.course.label!r}, whose dose at its edge is still "
                f"{p.resampled.edge_max_gy:.1f} Gy: the earlier dose there is unknown"
            )


def _uncovered(
    protocol: Protocol,
    structures: StructureResolver,
    doses: PlanDoses,
    sums: _Sums,
    covered: set[str],
) -> list[LimitResult]:
    """An organ the protocol limits that both courses irradiate and no cumulative limit covers:
    not evaluated, so that the decision is indeterminate."""
    results = []
    threshold = protocol.reirradiation.irradiated_gy
    for name in protocol.structures():
        try:
            region, rois = structures.region(name)
        except (NotEvaluable, RtcheckError):
            continue
        # A structure made of covered ROIs (Lungs - PTVs, where Lungs has a limit) is covered.
        if {s.name for s in region.plus} <= covered or name in covered:
            continue
        try:
            grid, key, _ = doses.for_limits(protocol.alpha_beta(name))
            now = doses.dvh(region, grid, key).max_gy
            # The earlier doses matter only for an organ this course irradiates.
            before = (
                max(sums.earlier_dvh(region, i).max_gy for i in range(len(sums.placed)))
                if now >= threshold
                else 0.0
            )
        except (NotEvaluable, RtcheckError):
            continue
        if not (now >= threshold and before >= threshold):
            continue
        stand_in = _stand_in(name, "protocol: cumulative_limits")
        reason = (
            f"no cumulative limit in the protocol for {name}, which both courses irradiate "
            f"(highest dose now {now:.1f} Gy, earlier {before:.1f} Gy)"
        )
        results.append(
            not_evaluated(stand_in, _MAX.text, None, rois=rois, reason=reason, lesion=None)
        )
    return results


_MAX: Metric = parse_metric("Max[Gy]")


def _stand_in(structure: str, source: str) -> Limit:
    """A mandatory cumulative limit standing for one the protocol (or rtcheck) cannot state:
    what a not-evaluated result is reported against."""
    return Limit(
        structure=structure,
        by_fractions=((0, _MAX, Comparison("<=", 0.0)),),
        priority="mandatory",
        source=source,
        optional=False,
        sites=(),
        group="cumulative",
    )


def unsummed_course(note: str) -> LimitResult:
    """An earlier course known to exist that was not summed with the plan (``note`` says which
    and why): not evaluated, so that a single-course result is never taken for the patient's."""
    stand_in = _stand_in("earlier course", "rtcheck: the cumulative dose of every course")
    reason = f"earlier courses exist but were not summed: {note}"
    return not_evaluated(stand_in, "EQD2 sum", None, rois=(), reason=reason, lesion=None)


def _lesion_doses(
    plan: Plan,
    protocol: Protocol,
    lesions: Sequence[Lesion],
    doses: PlanDoses,
    placed: list[_Placed],
) -> list[EarlierDose]:
    found = []
    threshold = protocol.reirradiation.prior_field_percent
    alpha_beta = protocol.alpha_beta("", is_target=True)
    for lesion in lesions:
        try:
            region = Region.of(plan.structure_set.by_name(lesion.target_roi))
        except RtcheckError:
            continue
        for i, p in enumerate(placed):
            try:
                dvh = doses.dvh(region, p.resampled.grid, f"earlier:{i + 1}")
            except RtcheckError:
                continue
            d98, d50, top = (evaluate_metric(m, dvh, None) for m in _LESION_METRICS)
            n, rx = p.course.fractions, p.course.prescription_gy
            percent = 100.0 * d50 / rx if rx else None
            found.append(
                EarlierDose(
                    lesion=lesion.name,
                    course=p.course.label,
                    d98_gy=d98,
                    d50_gy=d50,
                    max_gy=top,
                    d50_eqd2_gy=lq.eqd2(d50, n, alpha_beta) if n else None,
                    d50_percent=percent,
                    inside_field=bool(percent >= threshold) if percent is not None else None,
                )
            )
    return found


def _plan_date(plan: Plan) -> tuple[date | None, str]:
    if plan.plan_date is not None:
        return plan.plan_date, "RTPlanDate"
    return datetime.now(UTC).date(), "today (the plan states no RTPlanDate)"


def _months(end: date | None, plan_date: date | None) -> float | None:
    if end is None or plan_date is None:
        return None
    return (plan_date - end).days / MONTH_DAYS


def _summary(p: _Placed) -> CourseSummary:
    course, placement, resampled = p.course, p.placement, p.resampled
    registration = placement.registration
    creator = (
        " / ".join(x for x in (registration.manufacturer, registration.creator) if x)
        if registration
        else ""
    )
    warnings = list(course.warnings)
    outside = 100.0 * float(resampled.outside.mean()) if resampled.outside.size else 0.0
    if outside > 0:
        warnings.append(
            f"{outside:.1f}% of the current dose grid lies beyond the earlier dose grid (0 Gy "
            f"there; the earlier dose at its edge is at most {resampled.edge_max_gy:.2f} Gy)"
        )
    if course.end_date is None:
        warnings.append("the end of the earlier course is unknown: give --prior-end")
    beyond = placement.corners_beyond_deformation(resampled.grid)
    if beyond:
        warnings.append(
            f"the current dose grid reaches beyond the deformation grid ({beyond} of its 8 "
            "corners): there the nearest edge vector of the deformation is used"
        )
    return CourseSummary(
        label=course.label,
        fractions=course.fractions,
        prescription_gy=course.prescription_gy,
        end_date=course.end_date.isoformat() if course.end_date else None,
        end_date_source=course.end_date_source,
        interval_months=p.interval_months,
        placement=placement.method,
        registration_uid=registration.sop_instance_uid if registration else None,
        registration_creator=creator,
        matrix=placement.matrix,
        outside_percent=outside,
        edge_max_gy=resampled.edge_max_gy,
        files=tuple((f.path, f.sop_instance_uid, f.sha256) for f in course.files),
        warnings=tuple(warnings),
    )
