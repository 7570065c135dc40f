"""Criterion 19 at screening, before a plan exists: what the contours alone prove.

For each course (each lesion, and the primary tumour) with its prescription and fractions, the
OAR limits that ``check`` would apply to it (by regime; near a lesion, by its site) are given the
lowest value any plan meeting the protocol's mandatory coverage limits must have
(:mod:`~rtcheck.screening.bounds`). A limit whose bound already breaks it **cannot be met**; a
mandatory one makes the screen ``excluded_by_geometry``. Everything else is
``not_excluded_by_geometry`` — never "will be met" — and the screen ``plan_needed``, unless a
structure or a prescription is missing (``indeterminate``). Beside the proof, as evidence only:
each organ's volume within 0–20 mm of each target and its smallest distance to it, and
``at_risk`` where a rule the protocol states (``screen:``) trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rtcheck.dicom.plan import Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.regions import Region
from rtcheck.errors import RtcheckError
from rtcheck.evaluation.fractionation import convert_limit, published_columns
from rtcheck.evaluation.matching import StructureResolver
from rtcheck.evaluation.results import MISSING, NotEvaluable
from rtcheck.protocol.definition import Limit, Protocol
from rtcheck.protocol.lesions import Lesion, find_lesions, primary_targets
from rtcheck.screening.bounds import Bound, bound, forcings
from rtcheck.screening.geometry import (
    OVH_DISTANCES_MM,
    overlap_cc,
    overlap_histogram,
    smallest_distance_mm,
    volume_cc,
)


class Verdict(StrEnum):
    """What geometry says of one limit."""

    CANNOT_BE_MET = "cannot_be_met"
    NOT_EXCLUDED = "not_excluded_by_geometry"
    NOT_EVALUATED = "not_evaluated"


class ScreenDecision(StrEnum):
    """The screen's answer to criterion 19 before a plan exists."""

    EXCLUDED_BY_GEOMETRY = "excluded_by_geometry"
    PLAN_NEEDED = "plan_needed"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Course:
    """A target with its prescription: a lesion's, or the primary tumour's."""

    name: str
    target: str
    target_cc: float
    prescription_gy: float | None
    fractions: int | None
    evidence: str
    site: str | None = None


@dataclass(frozen=True)
class ScreenedLimit:
    """One limit at screening: its bound and verdict, with the evidence."""

    structure: str
    rois: tuple[str, ...]
    course: str
    group: str
    metric: str
    limit: str | None
    priority: str
    optional: bool
    source: str
    verdict: Verdict
    bound: float | None = None
    bound_is_lower: bool | None = None
    evidence: str | None = None
    reason: str | None = None
    conversion: str | None = None

    @property
    def where(self) -> str:
        """Which course's limit it is, as the outputs say it: ``M1, whole plan`` or ``near
        M1``."""
        return f"near {self.course}" if self.group == "lesion_oar" else f"{self.course}, whole plan"

    @property
    def absent_optional(self) -> bool:
        """An optional structure the plan does not have: no finding."""
        return (
            self.optional
            and self.verdict == Verdict.NOT_EVALUATED
            and MISSING in (self.reason or "")
        )


@dataclass(frozen=True)
class Proximity:
    """An organ near a target: evidence, not proof."""

    structure: str
    rois: tuple[str, ...]
    course: str
    target: str
    organ_cc: float
    distance_mm: float
    within_cc: tuple[tuple[float, float], ...]
    at_risk: str | None = None


@dataclass(frozen=True)
class Screening:
    """Everything ``rtcheck screen`` found."""

    plan: Plan
    protocol: Protocol
    courses: tuple[Course, ...]
    lesions: tuple[Lesion, ...]
    limits: tuple[ScreenedLimit, ...]
    proximity: tuple[Proximity, ...]
    decision: ScreenDecision
    reasons: tuple[str, ...]
    end_caps: EndCaps
    warnings: tuple[str, ...] = ()
    evaluated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat("T", "seconds"))


def screen(
    plan: Plan,
    protocol: Protocol,
    mapping: Mapping[str, str] | None = None,
    lesion_map: Mapping[str, Mapping[str, Any]] | None = None,
    primary: Mapping[str, Any] | None = None,
    *,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> Screening:
    """Screen a structure set (``plan`` as :func:`~rtcheck.dicom.plan.load_contours` gives it)
    against ``protocol``.

    Parameters
    ----------
    mapping, lesion_map
        ROI names and lesion facts from a map file, as for ``check``.
    primary
        The primary tumour's ``{prescription_gy, fractions}`` from a map file.
    """
    structures = StructureResolver(plan.structure_set.structures, protocol, mapping or {}, end_caps)
    lesions = find_lesions(plan, lesion_map or {})
    by_name = {s.name: s for s in plan.structure_set.structures}
    warnings: list[str] = []
    courses = [_lesion_course(lesion, by_name, end_caps) for lesion in lesions]
    primary_course = _primary_course(plan, primary or {}, end_caps)
    if primary_course is not None:
        courses.insert(0, primary_course)
    if not courses:
        warnings.append("no target ROI (PTV/GTV/CTV/ITV) found in the structure set")
    work = _Work(protocol, structures, by_name, end_caps)
    limits: list[ScreenedLimit] = []
    for course in courses:
        lesion = next((x for x in lesions if x.name == course.name), None)
        for limit in protocol.oar_limits:
            row = work.judge(limit, course, "oar")
            if row is not None:
                limits.append(row)
        if lesion is None:
            continue
        for limit in protocol.lesion_oar_limits:
            if limit.sites and lesion.site is not None and lesion.site not in limit.sites:
                continue
            row = work.judge(limit, course, "lesion_oar")
            if row is not None:
                limits.append(row)
    proximity = work.proximity(courses)
    decision, reasons = _decide(limits)
    return Screening(
        plan=plan,
        protocol=protocol,
        courses=tuple(courses),
        lesions=tuple(lesions),
        limits=tuple(limits),
        proximity=tuple(proximity),
        decision=decision,
        reasons=tuple(reasons),
        end_caps=end_caps,
        warnings=tuple(warnings),
    )


class _Work:
    """The screen's geometry, computed once per organ and target."""

    def __init__(
        self,
        protocol: Protocol,
        structures: StructureResolver,
        by_name: Mapping[str, Structure],
        end_caps: EndCaps,
    ) -> None:
        self.protocol, self.structures, self.by_name = protocol, structures, by_name
        self.end_caps = end_caps
        self._volumes: dict[str, float] = {}
        self._overlaps: dict[tuple[str, str], float] = {}

    def organ_cc(self, region: Region) -> float:
        if region.name not in self._volumes:
            self._volumes[region.name] = volume_cc(region, self.end_caps)
        return self._volumes[region.name]

    def overlap(self, region: Region, target: str) -> float:
        key = (region.name, target)
        if key not in self._overlaps:
            self._overlaps[key] = overlap_cc(region, self.by_name[target], self.end_caps)
        return self._overlaps[key]

    def applies(self, limit: Limit, course: Course) -> bool:
        if limit.regime is None or course.fractions is None:
            return True
        return self.protocol.regime_of(course.fractions) == limit.regime

    def coverage(self, course: Course) -> list[Limit]:
        """The mandatory coverage limits that apply to a lesion's course (none to the
        primary's: the protocol's coverage limits are the lesions')."""
        if course.name == "primary":
            return []
        return [lim for lim in self.protocol.lesion_coverage if self.applies(lim, course)]

    def judge(self, limit: Limit, course: Course, group: str) -> ScreenedLimit | None:
        if not self.applies(limit, course):
            return None
        base = ScreenedLimit(
            structure=limit.structure,
            rois=(),
            course=course.name,
            group=group,
            metric=limit.label,
            limit=None,
            priority=limit.priority,
            optional=limit.optional,
            source=limit.source,
            verdict=Verdict.NOT_EVALUATED,
        )
        rois: tuple[str, ...] = ()

        def unevaluated(reason: str, metric: str, limit_text: str | None) -> ScreenedLimit:
            return replace(base, rois=rois, metric=metric, limit=limit_text, reason=reason)

        if group == "lesion_oar" and limit.sites and course.site is None:
            return unevaluated(
                f"site of lesion {course.name} unknown; the limit applies near lesions of "
                f"{', '.join(limit.sites)}",
                limit.label,
                None,
            )
        if course.fractions is None or course.prescription_gy is None:
            return unevaluated(
                f"prescription or fractions of {course.name} unknown ({course.evidence}); "
                "give them in the map file or an RTPLAN",
                limit.label,
                None,
            )
        alpha_beta = self.protocol.alpha_beta(limit.structure)
        try:
            metric, comparison, conversion = convert_limit(
                limit, course.fractions, course.fractions, alpha_beta, self.protocol.regime_of
            )
        except (NotEvaluable, RtcheckError) as exc:
            return unevaluated(f"{exc}; published: {published_columns(limit)}", limit.label, None)
        try:
            region, rois = self.structures.region(limit.structure)
        except (NotEvaluable, RtcheckError) as exc:
            return unevaluated(str(exc), metric.text, str(comparison))
        organ = self.organ_cc(region)
        found = forcings(
            self.coverage(course), course.target, course.target_cc, course.prescription_gy
        )
        pairs = [(f, self.overlap(region, f.target)) for f in found]
        proven: Bound | None = bound(metric, pairs, organ)
        verdict = Verdict.NOT_EXCLUDED
        evidence = None
        if proven is not None:
            evidence = _evidence(proven, region.name)
            if proven.breaks(comparison):
                verdict = Verdict.CANNOT_BE_MET
        elif not found:
            evidence = f"no coverage limit of the protocol forces a dose on {course.target}"
        return replace(
            base,
            rois=rois,
            metric=metric.text,
            limit=str(comparison),
            verdict=verdict,
            bound=proven.value if proven else None,
            bound_is_lower=proven.lower if proven else None,
            evidence=evidence,
            conversion=conversion,
        )

    def proximity(self, courses: list[Course]) -> list[Proximity]:
        rules = self.protocol.screen_rules
        found = []
        for name in self.protocol.structures():
            try:
                region, rois = self.structures.region(name)
            except (NotEvaluable, RtcheckError):
                continue
            organ = self.organ_cc(region)
            for course in courses:
                target = self.by_name[course.target]
                histogram = overlap_histogram(region, target, OVH_DISTANCES_MM, self.end_caps)
                inside = histogram[0][1]
                distance = (
                    0.0 if inside > 0 else smallest_distance_mm(region, target, self.end_caps)
                )
                at_risk = None
                rule = rules.get(name)
                if rule is not None and distance < rule.min_distance_mm:
                    regime_ok = rule.regime is None or (
                        course.fractions is not None
                        and self.protocol.regime_of(course.fractions) == rule.regime
                    )
                    if regime_ok:
                        at_risk = (
                            f"{name} within {rule.min_distance_mm:g} mm of {course.target} "
                            f"({distance:.1f} mm; the protocol's screen rule)"
                        )
                found.append(
                    Proximity(
                        name, rois, course.name, course.target, organ, distance, histogram, at_risk
                    )
                )
        return found


def _evidence(proven: Bound, organ: str) -> str:
    f = proven.forcing
    direction = "at least" if proven.lower else "at most"
    return (
        f"{organ} ∩ {f.target} {proven.overlap_cc:.2f} cc; {f.limit} leaves at most "
        f"{f.allowance_cc:.2f} cc of {f.target} below {f.level_gy:.2f} Gy, so "
        f"{proven.forced_cc:.2f} cc of {organ} receives at least {f.level_gy:.2f} Gy: the metric "
        f"is {direction} {proven.value:.2f}"
    )


def _lesion_course(lesion: Lesion, by_name: Mapping[str, Structure], end_caps: EndCaps) -> Course:
    target = by_name[lesion.target_roi]
    return Course(
        name=lesion.name,
        target=target.name,
        target_cc=volume_cc(Region.of(target), end_caps),
        prescription_gy=lesion.prescription_gy,
        fractions=lesion.fractions,
        evidence=lesion.prescription_evidence,
        site=lesion.site,
    )


def _primary_course(plan: Plan, primary: Mapping[str, Any], end_caps: EndCaps) -> Course | None:
    """The primary tumour's course: its PTV (the largest), prescription and fractions from the
    map file's ``primary:``, else the only RTPLAN's; None without a primary target."""
    targets = primary_targets(plan)
    ptvs = [s for s in targets if (s.interpreted_type or "").upper() == "PTV"] or [
        s for s in targets if s.name.upper().startswith("PTV")
    ]
    if not ptvs:
        return None
    sized = [(volume_cc(Region.of(s), end_caps), s) for s in ptvs]
    volume, target = max(sized, key=lambda item: item[0])
    rx, fx = primary.get("prescription_gy"), primary.get("fractions")
    evidence = "map file" if rx is not None else ""
    if len(plan.plans) == 1:
        info = plan.plans[0]
        if rx is None and info.prescription_gy is not None:
            rx, evidence = info.prescription_gy, f"RTPLAN {info.label!r}"
        fx = fx if fx is not None else info.fractions
    return Course(
        name="primary",
        target=target.name,
        target_cc=volume,
        prescription_gy=float(rx) if rx is not None else None,
        fractions=int(fx) if fx is not None else None,
        evidence=evidence or "unknown: no RTPLAN, no primary: in the map file",
    )


def _decide(limits: list[ScreenedLimit]) -> tuple[ScreenDecision, list[str]]:
    cannot = [r for r in limits if r.verdict == Verdict.CANNOT_BE_MET and r.priority == "mandatory"]
    if cannot:
        return ScreenDecision.EXCLUDED_BY_GEOMETRY, [
            f"{r.structure} {r.metric} {r.limit} ({r.where}) cannot be met: {r.evidence}"
            for r in cannot
        ]
    unknown = [
        r
        for r in limits
        if r.verdict == Verdict.NOT_EVALUATED
        and r.priority == "mandatory"
        and not r.absent_optional
    ]
    if unknown:
        return ScreenDecision.INDETERMINATE, [
            f"{r.structure} {r.metric} ({r.where}) not evaluated: {r.reason}" for r in unknown
        ]
    return ScreenDecision.PLAN_NEEDED, [
        "nothing the contours prove breaks a mandatory limit: the plan decides"
    ]
