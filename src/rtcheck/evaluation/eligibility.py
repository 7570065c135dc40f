"""Evaluating a protocol's limits on a plan and deciding exclusion criterion 19.

Dose used for each limit:

- one plan: its physical dose; a limit published for another number of fractions is converted
  to the plan's fractionation with the LQ model (iso-BED, the structure's α/β) and says so;
- several plans: the voxel-wise sum of each plan's EQD2 (each grid converted with its own number
  of fractions, with the structure's α/β), and limits converted to EQD2.

Lesion coverage is evaluated on the lesion's own plan, relative to its own prescription.

Decision: ``excluded`` when a mandatory limit fails; otherwise ``indeterminate`` when a
mandatory limit could not be evaluated (missing or ambiguous structure, structure not fully
inside the dose grid, unknown fractionation or prescription); otherwise ``not_excluded``.
Optimal limits that fail are minor deviations and do not change the decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.plan import DoseSet, Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.engine import DVH, compute_dvh
from rtcheck.dvh.metrics import Metric, evaluate_metric, undefined_reason
from rtcheck.dvh.regions import Region
from rtcheck.errors import RtcheckError
from rtcheck.protocol import lq
from rtcheck.protocol.definition import Comparison, Limit, Protocol
from rtcheck.protocol.lesions import Lesion, find_lesions, primary_targets
from rtcheck.protocol.names import StructureMatch, is_target, match_structure, words

EXCLUDED = "excluded"
NOT_EXCLUDED = "not_excluded"
INDETERMINATE = "indeterminate"
_MISSING = "not found among the ROIs"
#: Dose coverage below which a structure counts as not fully inside the dose grid.
COVERAGE_TOLERANCE = 0.999


@dataclass(frozen=True)
class LimitResult:
    """The evidence for one limit.

    Attributes
    ----------
    structure
        The protocol's structure name (or the lesion's target for coverage limits).
    rois
        The ROI names matched to it.
    metric
        The metric evaluated (after any fractionation conversion of its threshold).
    limit
        The comparison (after any conversion), e.g. ``<= 45``; None when no published column
        can be chosen for this plan (its fractionation unknown: the reason lists them).
    value, margin
        The metric's value and how far inside the limit it is (negative: failing), or None.
    result
        ``pass``, ``fail`` or ``not_evaluated``.
    priority
        ``mandatory`` or ``optimal``.
    group
        ``oar``, ``lesion_coverage`` or ``lesion_oar``.
    lesion
        The lesion the limit is evaluated for, or None.
    reason
        Why it was not evaluated, or None.
    conversion
        How the published limit was converted to this plan's fractionation, or None.
    source
        Where the published numbers come from.
    optional
        True when the protocol allows the structure to be absent.
    dose_coverage
        Fraction of the structure inside the dose grid, when computed.
    """

    structure: str
    rois: tuple[str, ...]
    metric: str
    limit: str | None
    value: float | None
    margin: float | None
    result: str
    priority: str
    group: str
    lesion: str | None
    reason: str | None
    conversion: str | None
    source: str
    optional: bool = False
    dose_coverage: float | None = None

    @property
    def absent_optional(self) -> bool:
        """True for a limit on an optional structure that the plan does not have: not a
        finding, and no reason for an indeterminate decision."""
        return self.optional and self.result == "not_evaluated" and _MISSING in (self.reason or "")


@dataclass(frozen=True)
class Decision:
    """Criterion 19's decision and the reasons for it."""

    decision: str
    reasons: tuple[str, ...]
    minor_deviations: tuple[str, ...]


@dataclass(frozen=True)
class Evaluation:
    """Everything ``rtcheck check`` found about a plan; ``dvhs`` holds (structure, dose, DVH)
    for every DVH computed."""

    plan: Plan
    protocol: Protocol
    limits: tuple[LimitResult, ...]
    lesions: tuple[Lesion, ...]
    matches: tuple[StructureMatch, ...]
    decision: Decision
    dose_mode: str
    end_caps: EndCaps = EndCaps.HALF_SLAB
    warnings: tuple[str, ...] = field(default=())
    dvhs: tuple[tuple[str, str, DVH], ...] = field(default=())

    @property
    def organ_count(self) -> int:
        """Number of distinct metastatic organs (unknown sites not counted)."""
        return len({lesion.site for lesion in self.lesions if lesion.site})


class _NotEvaluable(Exception):
    """A limit cannot be evaluated; the message is the reason."""


def evaluate(
    plan: Plan,
    protocol: Protocol,
    mapping: Mapping[str, str] | None = None,
    lesion_map: Mapping[str, Mapping[str, Any]] | None = None,
    fractions: int | None = None,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> Evaluation:
    """Evaluate every limit of ``protocol`` on ``plan`` and decide criterion 19.

    Parameters
    ----------
    plan
        The loaded plan.
    protocol
        The loaded protocol.
    mapping
        ROI name → TG-263 name, from a map file.
    lesion_map
        ROI name → lesion facts (site, prescription_gy, fractions), from a map file.
    fractions
        Number of fractions to assume where no RTPLAN says (``--fractions``).
    end_caps
        How far the outermost contour planes reach along z in every DVH.
    """
    return _Evaluator(plan, protocol, mapping or {}, lesion_map or {}, fractions, end_caps).run()


class _Evaluator:
    def __init__(
        self,
        plan: Plan,
        protocol: Protocol,
        mapping: Mapping[str, str],
        lesion_map: Mapping[str, Mapping[str, Any]],
        fractions: int | None,
        end_caps: EndCaps,
    ) -> None:
        self.plan, self.protocol, self.mapping = plan, protocol, mapping
        self.fractions_override = fractions
        self.end_caps = end_caps
        self.lesions = find_lesions(plan, lesion_map, fractions)
        self.structures = plan.structure_set.structures
        self.matches: dict[str, StructureMatch] = {}
        self.dvh_cache: dict[tuple[str, str], DVH] = {}
        self.eqd2_cache: dict[float, DoseGrid] = {}
        self.warnings: list[str] = []
        self.summed = len(plan.doses) > 1

    # -- structures ------------------------------------------------------------------------

    def match(self, name: str) -> StructureMatch:
        if name not in self.matches:
            self.matches[name] = match_structure(
                name, self.structures, self.mapping, self.protocol.allowed_synonyms.get(name, ())
            )
        return self.matches[name]

    def region(self, name: str) -> tuple[Region, tuple[str, ...]]:
        """The region of a protocol structure and the ROI names used, or _NotEvaluable."""
        if name in self.protocol.derived:
            direct = self.match(name)
            plus_names, minus_names = self.protocol.derived[name]
            try:
                plus = [self.single(n) for n in plus_names]
            except _NotEvaluable:
                if direct.status != "matched":
                    raise
                plus = [self.by_name(direct.rois[0])]  # the plan has the derived ROI itself
            minus = [s for n in minus_names for s in self.group(n)]
            rois = tuple(s.name for s in plus) + tuple(f"-{s.name}" for s in minus)
            return Region(name, tuple(plus), tuple(minus)), rois
        structure = self.single(name)
        return Region(name, (structure,)), (structure.name,)

    def single(self, name: str) -> Structure:
        found = self.match(name)
        if found.status == "missing":
            raise _NotEvaluable(f"structure {name} {_MISSING}")
        if found.status == "ambiguous":
            raise _NotEvaluable(
                f"structure {name} is ambiguous: {', '.join(repr(r) for r in found.rois)} match"
            )
        structure = self.by_name(found.rois[0])
        if structure.is_empty:
            raise _NotEvaluable(f"ROI {structure.name!r} ({name}) has no contours")
        return _trusted(structure, name)

    def group(self, name: str) -> list[Structure]:
        if name == "PTVs":
            return [
                _trusted(s, name)
                for s in self.structures
                if is_target(s)
                and not s.is_empty
                and (s.interpreted_type == "PTV" or (words(s.name) or [""])[0] == "ptv")
            ]
        return [self.single(name)]

    def by_name(self, roi: str) -> Structure:
        return next(s for s in self.structures if s.name == roi)

    # -- dose ------------------------------------------------------------------------------

    def plan_fractions(self, dose: DoseSet) -> int:
        n = dose.plan.fractions if dose.plan and dose.plan.fractions else self.fractions_override
        if not n:
            raise _NotEvaluable(
                f"unknown fractionation of dose {dose.label!r} (no RTPLAN; give --fractions)"
            )
        return n

    def dose_for(self, alpha_beta: float) -> tuple[DoseGrid, str, int | None]:
        """The grid to evaluate OAR limits on, its key, and its number of fractions (None for
        an EQD2 sum, which is in 2 Gy fractions)."""
        if not self.summed:
            dose = self.plan.doses[0]
            if dose.per_fraction:
                raise _NotEvaluable("the RTDOSE is the dose of one fraction, not of the course")
            return dose.grid, "physical", self.plan_fractions(dose)
        if alpha_beta not in self.eqd2_cache:
            grids = []
            for dose in self.plan.doses:
                n = self.plan_fractions(dose)
                if dose.per_fraction:
                    raise _NotEvaluable(f"dose {dose.label!r} is the dose of one fraction")
                grids.append((dose.grid, n))
            first = grids[0][0]
            for grid, _ in grids[1:]:
                if not first.same_geometry(grid):
                    raise _NotEvaluable(
                        "the plans' dose grids differ in geometry; cannot sum their EQD2"
                    )
            total = np.zeros(first.dose_gy.shape)
            for grid, n in grids:
                total += lq.eqd2_grid(grid.dose_gy, n, alpha_beta)
            self.eqd2_cache[alpha_beta] = first.with_dose(total.astype(np.float32), "EQD2_SUM")
        return self.eqd2_cache[alpha_beta], f"eqd2:{alpha_beta:g}", None

    def dvh(self, region: Region, grid: DoseGrid, key: str) -> DVH:
        cache_key = (region.name, key)
        if cache_key not in self.dvh_cache:
            self.dvh_cache[cache_key] = compute_dvh(region, grid, end_caps=self.end_caps)
        return self.dvh_cache[cache_key]

    # -- limits ----------------------------------------------------------------------------

    def run(self) -> Evaluation:
        results: list[LimitResult] = []
        for limit in self.protocol.oar_limits:
            results.append(self.oar_limit(limit, None))
        for lesion in self.lesions:
            for limit in self.protocol.lesion_coverage:
                results.append(self.coverage_limit(limit, lesion))
            for limit in self.protocol.lesion_oar_limits:
                if limit.sites and lesion.site not in limit.sites:
                    if lesion.site is None:
                        metric, comparison, columns = self.stated_limit(limit, lesion)
                        results.append(
                            self.not_evaluated(
                                limit, metric, comparison, (),
                                f"site of lesion {lesion.name} unknown ({lesion.site_evidence})"
                                + columns,
                                lesion.name,
                            )
                        )  # fmt: skip
                    continue
                results.append(self.oar_limit(limit, lesion))
        self.check_counts()
        if not primary_targets(self.plan) and not self.lesions:
            self.warnings.append("no target ROI (PTV/GTV/CTV/ITV) found in the structure set")
        return Evaluation(
            plan=self.plan,
            protocol=self.protocol,
            limits=tuple(results),
            lesions=tuple(self.lesions),
            matches=tuple(self.matches.values()),
            decision=decide(results),
            dose_mode="EQD2 sum of plans" if self.summed else "physical dose",
            end_caps=self.end_caps,
            warnings=tuple(self.warnings),
            dvhs=tuple((name, dose, dvh) for (name, dose), dvh in self.dvh_cache.items()),
        )

    def check_counts(self) -> None:
        organs = {lesion.site for lesion in self.lesions if lesion.site}
        if len(self.lesions) > self.protocol.max_lesions:
            self.warnings.append(
                f"{len(self.lesions)} lesions: more than the {self.protocol.max_lesions} "
                "the trial allows"
            )
        if len(organs) > self.protocol.max_organs:
            self.warnings.append(
                f"lesions in {len(organs)} organs: more than the {self.protocol.max_organs} "
                "the trial allows"
            )

    def not_evaluated(
        self,
        limit: Limit,
        metric: str,
        comparison: str | None,
        rois: tuple[str, ...],
        reason: str,
        lesion: str | None,
        coverage: float | None = None,
    ) -> LimitResult:
        return LimitResult(
            structure=limit.structure or (lesion or ""),
            rois=rois,
            metric=metric,
            limit=comparison,
            value=None,
            margin=None,
            result="not_evaluated",
            priority=limit.priority,
            group=limit.group,
            lesion=lesion,
            reason=reason,
            conversion=None,
            source=limit.source,
            optional=limit.optional,
            dose_coverage=coverage,
        )

    def converted(
        self, limit: Limit, lesion: Lesion | None
    ) -> tuple[Metric, Comparison, str | None]:
        """The limit that applies to this plan (see :func:`convert_limit`), or _NotEvaluable
        when its fractionation is unknown."""
        alpha_beta = self.protocol.alpha_beta(limit.structure)
        _, _, plan_fx = self.dose_for(alpha_beta)
        wanted_fx = lesion.fractions if lesion is not None else plan_fx
        if lesion is not None and wanted_fx is None:
            raise _NotEvaluable(f"fractionation of lesion {lesion.name} unknown")
        return convert_limit(limit, wanted_fx, plan_fx, alpha_beta)

    def stated_limit(self, limit: Limit, lesion: Lesion | None) -> tuple[str, str | None, str]:
        """For a limit that is not evaluated: the metric and limit that would apply to this
        plan, or None and the published columns (to add to the reason) when none can be
        chosen."""
        try:
            metric, comparison, _ = self.converted(limit, lesion)
        except (_NotEvaluable, RtcheckError):
            return limit.label, None, f"; published: {_published_columns(limit)}"
        return metric.text, str(comparison), ""

    def oar_limit(self, limit: Limit, lesion: Lesion | None) -> LimitResult:
        lesion_name = lesion.name if lesion else None
        rois: tuple[str, ...] = ()
        try:
            applied: tuple[Metric, Comparison, str | None] | None = self.converted(limit, lesion)
            unknown_fx = ""
        except (_NotEvaluable, RtcheckError) as exc:
            applied, unknown_fx = None, str(exc)
        try:
            region, rois = self.region(limit.structure)
            if applied is None:
                raise _NotEvaluable(unknown_fx)
            metric, comparison, conversion = applied
            grid, key, _ = self.dose_for(self.protocol.alpha_beta(limit.structure))
            dvh = self.dvh(region, grid, key)
        except (_NotEvaluable, RtcheckError) as exc:
            if applied is None:
                reason = f"{exc}; published: {_published_columns(limit)}"
                return self.not_evaluated(limit, limit.label, None, rois, reason, lesion_name)
            metric_text, stated = applied[0].text, str(applied[1])
            return self.not_evaluated(limit, metric_text, stated, rois, str(exc), lesion_name)
        return self.judge(limit, metric, comparison, dvh, rois, lesion_name, conversion, None)

    def coverage_limit(self, limit: Limit, lesion: Lesion) -> LimitResult:
        _, metric, comparison = limit.by_fractions[0]
        rois = (lesion.target_roi,)
        if lesion.prescription_gy is None:
            return self.not_evaluated(
                limit, metric.text, str(comparison), rois,
                f"prescription of lesion {lesion.name} unknown ({lesion.prescription_evidence})",
                lesion.name,
            )  # fmt: skip
        doses = [d for d in self.plan.doses if d.plan and d.plan.label == lesion.plan_label]
        if not doses and len(self.plan.doses) == 1:
            doses = list(self.plan.doses)
        if not doses:
            return self.not_evaluated(
                limit, metric.text, str(comparison), rois,
                f"the plan treating lesion {lesion.name} is not known", lesion.name,
            )  # fmt: skip
        dose = doses[0]
        if dose.per_fraction:
            return self.not_evaluated(
                limit, metric.text, str(comparison), rois,
                "the RTDOSE is the dose of one fraction", lesion.name,
            )  # fmt: skip
        try:
            region = Region.of(_trusted(self.by_name(lesion.target_roi), lesion.name))
        except _NotEvaluable as exc:
            return self.not_evaluated(
                limit, metric.text, str(comparison), rois, str(exc), lesion.name
            )
        dvh = self.dvh(region, dose.grid, f"plan:{dose.label}")
        return self.judge(
            replace(limit, structure=lesion.target_roi), metric, comparison, dvh, rois,
            lesion.name, None, lesion.prescription_gy,
        )  # fmt: skip

    def judge(
        self,
        limit: Limit,
        metric: Metric,
        comparison: Comparison,
        dvh: DVH,
        rois: tuple[str, ...],
        lesion: str | None,
        conversion: str | None,
        prescription: float | None,
    ) -> LimitResult:
        if dvh.dose_coverage < COVERAGE_TOLERANCE:
            result = self.not_evaluated(
                limit, metric.text, str(comparison), rois,
                f"{limit.structure or lesion} is not fully inside the dose grid "
                f"({100 * dvh.dose_coverage:.1f}% inside)",
                lesion, dvh.dose_coverage,
            )  # fmt: skip
            return replace(result, conversion=conversion)
        value = evaluate_metric(metric, dvh, prescription)
        if math.isnan(value):
            reason = undefined_reason(metric, dvh) or "no dose in the structure"
            return self.not_evaluated(limit, metric.text, str(comparison), rois, reason, lesion)
        unevaluated = self.not_evaluated(
            limit, metric.text, str(comparison), rois, "", lesion, dvh.dose_coverage
        )
        return replace(
            unevaluated,
            value=value,
            margin=comparison.margin(value),
            result="pass" if comparison.holds(value) else "fail",
            reason=None,
            conversion=conversion,
        )


def _trusted(structure: Structure, name: str) -> Structure:
    """The structure, or _NotEvaluable when its geometry has defects."""
    if structure.defects:
        raise _NotEvaluable(
            f"ROI {structure.name!r} ({name}) cannot be trusted: {'; '.join(structure.defects)}"
        )
    return structure


def convert_limit(
    limit: Limit, wanted_fractions: int | None, plan_fractions: int | None, alpha_beta: float
) -> tuple[Metric, Comparison, str | None]:
    """Choose the published column for ``wanted_fractions`` and convert it to the dose it is
    compared with: the plan's physical dose in ``plan_fractions``, or EQD2 when
    ``plan_fractions`` is None.

    Doses convert by iso-BED with ``alpha_beta``: a V/CV threshold in Gy, or a D/Mean/Max/Min
    limit value in Gy. Relative (% of prescription) and volume quantities do not change.
    """
    columns = limit.by_fractions
    if len(columns) == 1 and columns[0][0] == 0:
        _, metric, comparison = columns[0]
        return metric, comparison, None  # published without a fractionation
    wanted = wanted_fractions if wanted_fractions is not None else plan_fractions
    if wanted is None:
        if len(columns) > 1:
            raise _NotEvaluable("unknown fractionation: cannot choose a published column")
        source_fx, metric, comparison = columns[0]
    else:
        exact = [c for c in columns if c[0] == wanted]
        source_fx, metric, comparison = (
            exact[0] if exact else min(columns, key=lambda c: (abs(math.log(c[0] / wanted)), c[0]))
        )
    target_fx = plan_fractions

    def dose(value_gy: float) -> float:
        if target_fx is None:
            return lq.eqd2(value_gy, source_fx, alpha_beta)
        return lq.convert(value_gy, source_fx, target_fx, alpha_beta)

    if target_fx == source_fx:
        return metric, comparison, None
    to = "EQD2" if target_fx is None else f"{target_fx} fractions"
    note = f"published for {source_fx} fractions; converted to {to} (LQ, a/b {alpha_beta:g} Gy)"
    scale = {"Gy": 1.0, "cGy": 0.01}
    if metric.quantity in ("V", "CV") and metric.threshold_unit in scale:
        assert metric.threshold is not None
        gy = metric.threshold * scale[metric.threshold_unit]
        new_gy = dose(gy)
        text = f"{metric.quantity}{_fmt(new_gy)}Gy[{metric.result_unit}]"
        converted = Metric(text, metric.quantity, new_gy, "Gy", metric.result_unit)
        return converted, comparison, f"{note}: {metric.text} -> {text}"
    if metric.is_dose and metric.result_unit in scale:
        gy = comparison.value * scale[metric.result_unit]
        new_value = dose(gy) / scale[metric.result_unit]
        new = comparison.with_value(round(new_value, 3))
        return metric, new, f"{note}: {comparison} -> {new}"
    return metric, comparison, f"{note}: relative metric, unchanged"


def _published_columns(limit: Limit) -> str:
    """Every published column of a limit: ``<= 14 (1 fx), <= 21.9 (3 fx)``, each with its
    metric where the columns' metrics differ (``V10Gy[cc] <= 0.35 (1 fx), V18Gy[cc] ...``)."""
    columns = limit.by_fractions
    named = len({metric.text for _, metric, _ in columns}) > 1
    return ", ".join(
        f"{metric.text + ' ' if named else ''}{c}" + (f" ({n} fx)" if n else "")
        for n, metric, c in columns
    )


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def decide(results: Sequence[LimitResult]) -> Decision:
    """Criterion 19 from the limit results."""
    failed = [r for r in results if r.result == "fail" and r.priority == "mandatory"]
    unknown = [
        r
        for r in results
        if r.result == "not_evaluated" and r.priority == "mandatory" and not r.absent_optional
    ]
    minor = [r for r in results if r.result == "fail" and r.priority == "optimal"]
    if failed:
        return Decision(EXCLUDED, tuple(_describe(r) for r in failed), tuple(map(_describe, minor)))
    if unknown:
        return Decision(
            INDETERMINATE, tuple(_describe(r) for r in unknown), tuple(map(_describe, minor))
        )
    return Decision(
        NOT_EXCLUDED, ("every mandatory limit passes",), tuple(_describe(r) for r in minor)
    )


def _describe(r: LimitResult) -> str:
    who = f"{r.structure}" + (f" (lesion {r.lesion})" if r.lesion else "")
    if r.result == "not_evaluated":
        stated = f" {r.limit}" if r.limit else ""
        return f"{who} {r.metric}{stated}: not evaluated: {r.reason}"
    assert r.value is not None
    return f"{who} {r.metric} = {r.value:.2f}, limit {r.limit} ({r.priority})"
