"""One limit evaluated on a plan: an OAR limit (the whole plan's, or one near a lesion) or a
lesion's coverage limit, each giving a :class:`~rtcheck.evaluation.results.LimitResult` with its
evidence, or the reason it could not be evaluated and the limit that would have applied."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import Metric, evaluate_metric, undefined_reason
from rtcheck.dvh.regions import Region
from rtcheck.errors import RtcheckError
from rtcheck.evaluation.doses import PlanDoses
from rtcheck.evaluation.fractionation import convert_limit, published_columns
from rtcheck.evaluation.matching import StructureResolver, trusted
from rtcheck.evaluation.results import Grade, LimitOrigin, LimitResult, NotEvaluable
from rtcheck.protocol.definition import Comparison, Limit, Protocol
from rtcheck.protocol.lesions import Lesion

if TYPE_CHECKING:
    from rtcheck.dvh.quality import LesionQuality

#: Dose coverage below which a structure counts as not fully inside the dose grid.
COVERAGE_TOLERANCE = 0.999

Applied = tuple[Metric, Comparison, str | None]


class LimitEvaluator:
    """Evaluates limits with the plan's structures and doses."""

    def __init__(self, protocol: Protocol, structures: StructureResolver, doses: PlanDoses):
        self.protocol, self.structures, self.doses = protocol, structures, doses
        self._quality: dict[str, LesionQuality] = {}

    def applied(self, limit: Limit, lesion: Lesion | None) -> Applied:
        """The limit that applies to this plan (see :func:`convert_limit`), or
        ``NotEvaluable`` when its fractionation is unknown or only another regime's column
        was published."""
        alpha_beta = self.protocol.alpha_beta(limit.structure)
        _, _, plan_fx = self.dose_for(limit, lesion)
        wanted_fx = lesion.fractions if lesion is not None else plan_fx
        if lesion is not None and wanted_fx is None:
            raise NotEvaluable(f"fractionation of lesion {lesion.name} unknown")
        return convert_limit(limit, wanted_fx, plan_fx, alpha_beta, self.protocol.regime_of)

    def dose_for(self, limit: Limit, lesion: Lesion | None) -> tuple[DoseGrid, str, int | None]:
        """The dose a limit is evaluated on, its key, and its number of fractions (None for an
        EQD2 sum). Near a lesion of a plan of its own among several, that plan's dose: the
        lesion's limits were published for its course, not for the sum."""
        alpha_beta = self.protocol.alpha_beta(limit.structure)
        plan = self.doses.plan
        if lesion is not None and len(plan.doses) > 1 and lesion.plan_label:
            own = self.doses.own_doses(lesion)
            if len(own) == 1 and not own[0].per_fraction:
                return own[0].grid, f"plan:{own[0].label}", self.doses.fractions_of(own[0])
        return self.doses.for_limits(alpha_beta)

    def applies(self, limit: Limit, lesion: Lesion | None) -> bool:
        """False where the limit is of another regime than the course it would be checked
        on (a stereotactic limit and a conventional plan or lesion); True where that course's
        fractionation is unknown (the limit is then not evaluated, saying why)."""
        if limit.regime is None:
            return True
        if lesion is not None:
            if lesion.fractions is None:
                return True
            return self.protocol.regime_of(lesion.fractions) == limit.regime
        try:
            _, _, fractions = self.dose_for(limit, None)
        except NotEvaluable:
            return True
        return self.protocol.regime_of(fractions) == limit.regime

    def acceptable(self, limit: Limit, lesion: Lesion | None) -> Comparison | None:
        """The limit's minor-deviation threshold for this plan, chosen and converted exactly
        as the limit is; None for a one-threshold limit."""
        if not limit.acceptable:
            return None
        looser = dict(limit.acceptable)
        tier = replace(
            limit, by_fractions=tuple((n, m, looser[n]) for n, m, _ in limit.by_fractions)
        )
        return self.applied(tier, lesion)[1]

    def oar_limit(self, limit: Limit, lesion: Lesion | None) -> LimitResult | None:
        """An OAR limit: the whole plan's (``lesion`` None) or one near a lesion; None where
        it is of another regime (see :meth:`applies`)."""
        if not self.applies(limit, lesion):
            return None
        lesion_name = lesion.name if lesion else None
        rois: tuple[str, ...] = ()
        try:
            applied: Applied | None = self.applied(limit, lesion)
            unknown_fx = ""
        except (NotEvaluable, RtcheckError) as exc:
            applied, unknown_fx = None, str(exc)
        try:
            region, rois = self.structures.region(limit.structure)
            if applied is None:
                raise NotEvaluable(unknown_fx)
            metric, comparison, conversion = applied
            grid, key, _ = self.dose_for(limit, lesion)
            dvh = self.doses.dvh(region, grid, key)
        except (NotEvaluable, RtcheckError) as exc:
            if applied is None:
                reason = f"{exc}; published: {published_columns(limit)}"
                return not_evaluated(
                    limit, limit.label, None, rois=rois, reason=reason, lesion=lesion_name
                )
            stated = (applied[0].text, str(applied[1]))
            return not_evaluated(limit, *stated, rois=rois, reason=str(exc), lesion=lesion_name)
        acceptable = self.acceptable(limit, lesion)
        return judge(
            limit,
            metric,
            comparison,
            dvh,
            rois=rois,
            lesion=lesion_name,
            conversion=conversion,
            prescription=None,
            acceptable=acceptable,
        )

    def with_origin(
        self, result: LimitResult, entry: str, index: int, limit: Limit, lesion: Lesion | None
    ) -> LimitResult:
        """``result`` with the evidence a what-if needs (see :class:`LimitOrigin`)."""
        plan_fx: int | None = None
        key: str | None = None
        ptv_cc: float | None = None
        if entry == "lesion_coverage" and lesion is not None:
            plan_fx = lesion.fractions
            for (name, dose), dvh in self.doses.dvhs.items():
                if name == lesion.target_roi and dose.startswith("plan:"):
                    key, ptv_cc = dose, dvh.volume_cc
                    break
        else:
            try:
                _, key, plan_fx = self.dose_for(limit, lesion)
            except (NotEvaluable, RtcheckError):
                key = None
        wanted = lesion.fractions if lesion is not None else plan_fx
        origin = LimitOrigin(
            entry,
            index,
            wanted,
            plan_fx,
            key,
            ptv_cc,
            lesion.prescription_gy if lesion is not None else None,
        )
        return replace(result, origin=origin)

    def site_unknown(self, limit: Limit, lesion: Lesion) -> LimitResult:
        """A near-lesion limit of a site the lesion may be in: not evaluated, stating the limit
        that would apply (or every published column)."""
        reason = f"site of lesion {lesion.name} unknown ({lesion.site_evidence})"
        try:
            metric, comparison, _ = self.applied(limit, lesion)
        except (NotEvaluable, RtcheckError):
            reason += f"; published: {published_columns(limit)}"
            return not_evaluated(
                limit, limit.label, None, rois=(), reason=reason, lesion=lesion.name
            )
        return not_evaluated(
            limit, metric.text, str(comparison), rois=(), reason=reason, lesion=lesion.name
        )

    def coverage_limit(self, limit: Limit, lesion: Lesion) -> LimitResult | None:
        """A lesion's own limit (coverage, or a plan-quality index), on the lesion's own plan,
        relative to its prescription; None where it does not apply (a stereotactic-only limit
        and a lesion treated in more fractions)."""
        _, metric, comparison = limit.by_fractions[0]
        rois = (lesion.target_roi,)
        if not self.applies(limit, lesion):  # e.g. a stereotactic limit, a conventional lesion
            return None

        def unevaluated(reason: str) -> LimitResult:
            # Named by its target ROI, as an evaluated coverage limit is.
            own = replace(limit, structure=lesion.target_roi)
            return not_evaluated(
                own, metric.text, str(comparison), rois=rois, reason=reason, lesion=lesion.name
            )

        if lesion.prescription_gy is None:
            return unevaluated(
                f"prescription of lesion {lesion.name} unknown ({lesion.prescription_evidence})"
            )
        if limit.regime is not None and lesion.fractions is None:
            return unevaluated(
                f"fractionation of lesion {lesion.name} unknown; the limit applies to "
                f"{limit.regime} lesions"
            )
        dose = self.doses.lesion_dose(lesion)
        if dose is None:
            return unevaluated(f"the plan treating lesion {lesion.name} is not known")
        if dose.per_fraction:
            return unevaluated("the RTDOSE is the dose of one fraction")
        try:
            target = trusted(self.structures.by_name(lesion.target_roi), lesion.name)
        except NotEvaluable as exc:
            return unevaluated(str(exc))
        dvh = self.doses.dvh(Region.of(target), dose.grid, f"plan:{dose.label}")
        acceptable = limit.acceptable[0][1] if limit.acceptable else None
        note = None
        if limit.by_ptv_cc:
            try:
                comparison, acceptable, note = by_ptv_volume(limit, dvh.volume_cc)
            except NotEvaluable as exc:
                return unevaluated(str(exc))
        own = replace(limit, structure=lesion.target_roi)
        if metric.quantity != "Index":
            return judge(
                own,
                metric,
                comparison,
                dvh,
                rois=rois,
                lesion=lesion.name,
                conversion=note,
                prescription=lesion.prescription_gy,
                acceptable=acceptable,
            )
        try:
            quality = self.quality(lesion, target, dvh, dose.grid)
        except NotEvaluable as exc:
            return unevaluated(str(exc))
        reason = quality.undefined(metric.text)
        if reason:
            return replace(unevaluated(reason), conversion=note)
        base = not_evaluated(
            own, metric.text, str(comparison), rois=rois, reason="", lesion=lesion.name
        )
        return graded(base, quality.value(metric.text), comparison, acceptable, note)

    def quality(self, lesion: Lesion, target: Structure, dvh: DVH, grid: DoseGrid) -> LesionQuality:
        """The lesion's plan-quality figures (computed once per lesion)."""
        if lesion.name not in self._quality:
            # Imported here: only plans with stereotactic lesions need it (and scipy.ndimage).
            from rtcheck.dvh.quality import lesion_quality

            assert lesion.prescription_gy is not None
            others = [s for s in self.structures.group("PTVs") if s.name != target.name]
            self._quality[lesion.name] = lesion_quality(
                target,
                dvh,
                others=others,
                body=self.structures.body(),
                grid=grid,
                prescription_gy=lesion.prescription_gy,
                end_caps=self.doses.end_caps,
            )
        return self._quality[lesion.name]


def not_evaluated(
    limit: Limit,
    metric: str,
    comparison: str | None,
    *,
    rois: tuple[str, ...],
    reason: str,
    lesion: str | None,
    coverage: float | None = None,
) -> LimitResult:
    """The result of a limit that could not be evaluated, and why."""
    return LimitResult(
        structure=limit.structure or (lesion or ""),
        rois=rois,
        metric=metric,
        limit=comparison,
        value=None,
        margin=None,
        result=Grade.NOT_EVALUATED,
        priority=limit.priority,
        group=limit.group,
        lesion=lesion,
        reason=reason,
        conversion=None,
        source=limit.source,
        optional=limit.optional,
        dose_coverage=coverage,
    )


def judge(
    limit: Limit,
    metric: Metric,
    comparison: Comparison,
    dvh: DVH,
    *,
    rois: tuple[str, ...],
    lesion: str | None,
    conversion: str | None,
    prescription: float | None,
    acceptable: Comparison | None = None,
) -> LimitResult:
    """A limit's result on a DVH: pass or fail with value and margin, or not evaluated where the
    structure is not wholly inside the dose grid or the metric is undefined. A limit with an
    acceptable tier is ``pass``, ``minor_deviation`` (within the tier) or ``major_deviation``;
    its margin is always to the limit itself."""
    if dvh.dose_coverage < COVERAGE_TOLERANCE:
        result = not_evaluated(
            limit,
            metric.text,
            str(comparison),
            rois=rois,
            reason=f"{limit.structure or lesion} is not fully inside the dose grid "
            f"({100 * dvh.dose_coverage:.1f}% inside)",
            lesion=lesion,
            coverage=dvh.dose_coverage,
        )
        return replace(result, conversion=conversion)
    value = evaluate_metric(metric, dvh, prescription)
    if math.isnan(value):
        reason = undefined_reason(metric, dvh) or "no dose in the structure"
        return not_evaluated(
            limit, metric.text, str(comparison), rois=rois, reason=reason, lesion=lesion
        )
    evaluated = not_evaluated(
        limit,
        metric.text,
        str(comparison),
        rois=rois,
        reason="",
        lesion=lesion,
        coverage=dvh.dose_coverage,
    )
    return graded(evaluated, value, comparison, acceptable, conversion)


def graded(
    base: LimitResult,
    value: float,
    comparison: Comparison,
    acceptable: Comparison | None,
    conversion: str | None,
) -> LimitResult:
    """``base`` with its value, its margin to the limit and its grade."""
    return replace(
        base,
        value=value,
        margin=comparison.margin(value),
        result=_graded(value, comparison, acceptable),
        reason=None,
        conversion=conversion,
        acceptable=None if acceptable is None else str(acceptable),
    )


def by_ptv_volume(limit: Limit, ptv_cc: float) -> tuple[Comparison, Comparison | None, str]:
    """The threshold (and acceptable one) of a table by PTV volume for a PTV of ``ptv_cc``,
    interpolated linearly between the rows that bracket it, as RTOG 0813/0915 Table 1's note
    requires, with a note saying which rows. Outside the table the source gives no rule: the
    limit is not evaluated, unless the protocol says to use the nearest row."""
    rows, tiers = limit.by_ptv_cc, limit.acceptable_by_ptv_cc
    volumes = [v for v, _ in rows]
    low, high = volumes[0], volumes[-1]
    if not low <= ptv_cc <= high:
        if limit.outside_table != "nearest_row":
            raise NotEvaluable(
                f"PTV of {ptv_cc:.2f} cc is outside the table's {low:g}-{high:g} cc, for which "
                "the source gives no rule"
            )
        i = 0 if ptv_cc < low else len(rows) - 1
        note = (
            f"PTV {ptv_cc:.2f} cc outside the table: its {volumes[i]:g} cc row, as the "
            "protocol says"
        )
        return rows[i][1], tiers[i][1] if tiers else None, note

    def at(table: tuple[tuple[float, Comparison], ...]) -> Comparison:
        k = min(int(np.searchsorted(volumes, ptv_cc, side="right")), len(volumes) - 1)
        (v0, c0), (v1, c1) = table[k - 1], table[k]
        t = 0.0 if v1 == v0 else (ptv_cc - v0) / (v1 - v0)
        return c0.with_value(round(c0.value + t * (c1.value - c0.value), 4))

    comparison = at(rows)
    k = min(int(np.searchsorted(volumes, ptv_cc, side="right")), len(volumes) - 1)
    note = (
        f"PTV {ptv_cc:.2f} cc: interpolated between the {volumes[k - 1]:g} and {volumes[k]:g} cc "
        f"rows: {comparison}"
    )
    return comparison, at(tiers) if tiers else None, note


def _graded(value: float, comparison: Comparison, acceptable: Comparison | None) -> Grade:
    if comparison.holds(value):
        return Grade.PASS
    if acceptable is None:
        return Grade.FAIL
    return Grade.MINOR_DEVIATION if acceptable.holds(value) else Grade.MAJOR_DEVIATION
