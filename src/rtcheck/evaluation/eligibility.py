"""Evaluating a protocol's limits on a plan and deciding exclusion criterion 19.

:func:`evaluate` runs the pieces, each in a module of its own: the structures a limit names
(:mod:`~rtcheck.evaluation.matching`), the dose it is evaluated on
(:mod:`~rtcheck.evaluation.doses`), its column for the plan's fractionation
(:mod:`~rtcheck.evaluation.fractionation`), its result (:mod:`~rtcheck.evaluation.limits`),
and the decision (:mod:`~rtcheck.evaluation.decision`). Lesion coverage is evaluated on the
lesion's own plan, relative to its own prescription; near-lesion OAR limits by the lesion's
site and fractionation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rtcheck.dicom.plan import Plan
from rtcheck.dicom.prior import EarlierCourse, Placement
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dvh.regions import Region
from rtcheck.errors import RtcheckError
from rtcheck.evaluation.cumulative import evaluate_cumulative, unsummed_course
from rtcheck.evaluation.decision import decide
from rtcheck.evaluation.doses import PlanDoses
from rtcheck.evaluation.limits import LimitEvaluator
from rtcheck.evaluation.matching import StructureResolver
from rtcheck.evaluation.results import Evaluation, LimitResult
from rtcheck.protocol.definition import Protocol
from rtcheck.protocol.lesions import Lesion, find_lesions, primary_targets


def evaluate(
    plan: Plan,
    protocol: Protocol,
    mapping: Mapping[str, str] | None = None,
    lesion_map: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    fractions: int | None = None,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
    earlier: Sequence[tuple[EarlierCourse, Placement]] = (),
    unsummed: Sequence[str] = (),
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
    earlier
        Earlier courses of the patient with how each is placed in the plan's frame: the
        protocol's cumulative limits are then evaluated on the EQD2 sum
        (:mod:`~rtcheck.evaluation.cumulative`).
    unsummed
        Earlier courses known to exist that could not be summed, each said with why: each is a
        limit not evaluated (the decision is then indeterminate).
    """
    structures = StructureResolver(plan.structure_set.structures, protocol, mapping or {}, end_caps)
    doses = PlanDoses(plan, fractions, end_caps)
    evaluator = LimitEvaluator(protocol, structures, doses)
    lesions = find_lesions(plan, lesion_map or {}, fractions)
    # A limit of another regime than the course (None) does not apply: no result.
    results: list[LimitResult] = []
    for i, limit in enumerate(protocol.oar_limits):
        whole = evaluator.oar_limit(limit, None)
        if whole is not None:
            results.append(evaluator.with_origin(whole, "oar_limits", i, limit, None))
    for lesion in lesions:
        for i, limit in enumerate(protocol.lesion_coverage):
            result = evaluator.coverage_limit(limit, lesion)
            if result is not None:  # None: a stereotactic-only limit, a conventional lesion
                results.append(evaluator.with_origin(result, "lesion_coverage", i, limit, lesion))
        for i, limit in enumerate(protocol.lesion_oar_limits):
            near: LimitResult | None = None
            if not limit.sites or lesion.site in limit.sites:
                near = evaluator.oar_limit(limit, lesion)
            elif lesion.site is None:
                near = evaluator.site_unknown(limit, lesion)
            if near is not None:
                results.append(evaluator.with_origin(near, "lesion_oar_limits", i, limit, lesion))
    earlier_courses = None
    if earlier:
        cumulative, earlier_courses = evaluate_cumulative(
            plan, protocol, structures, doses, earlier, lesions
        )
        results += cumulative
    results += [unsummed_course(note) for note in unsummed]
    warnings = _count_warnings(lesions, protocol)
    _primary_ptv_dvhs(plan, doses)
    _lesion_ptv_dvhs(plan, lesions, doses)
    if not primary_targets(plan) and not lesions:
        warnings.append("no target ROI (PTV/GTV/CTV/ITV) found in the structure set")
    return Evaluation(
        plan=plan,
        protocol=protocol,
        limits=tuple(results),
        lesions=tuple(lesions),
        matches=tuple(structures.matches.values()),
        decision=decide(results),
        dose_mode=doses.mode,
        end_caps=end_caps,
        warnings=tuple(warnings),
        dvhs=tuple((name, dose, dvh) for (name, dose), dvh in doses.dvhs.items()),
        earlier=earlier_courses,
    )


def _primary_ptv_dvhs(plan: Plan, doses: PlanDoses) -> None:
    """The DVHs of the primary tumour's PTVs on the plan's dose, for the report: no limit
    reads them, so they are computed only where the dose that treats them is unambiguous
    (a single dose set, for the whole course) and the ROI is sound."""
    if len(plan.doses) != 1 or plan.doses[0].per_fraction:
        return
    dose = plan.doses[0]
    for target in primary_targets(plan):
        if not target.name.strip().upper().startswith("PTV") or target.is_empty:
            continue
        if target.defects:
            continue
        try:
            doses.dvh(Region.of(target), dose.grid, f"plan:{dose.label}")
        except RtcheckError:  # e.g. wholly outside the dose grid: no figure, no finding
            continue


def _lesion_ptv_dvhs(plan: Plan, lesions: list[Lesion], doses: PlanDoses) -> None:
    """The DVH of every lesion's PTV on the dose of its own plan, for the report, also where
    no limit read it (an unknown prescription): in physical dose, where that dose is known
    (the lesion's plan, or the only one) and is the whole course's."""
    drawn = {name for name, key in doses.dvhs if key.startswith("plan:")}
    by_name = {s.name: s for s in plan.structure_set.structures}
    for lesion in lesions:
        target = by_name.get(lesion.target_roi)
        if lesion.target_roi in drawn or target is None or target.is_empty or target.defects:
            continue
        dose = doses.lesion_dose(lesion)
        if dose is None or dose.per_fraction:
            continue
        try:
            doses.dvh(Region.of(target), dose.grid, f"plan:{dose.label}")
        except RtcheckError:  # e.g. wholly outside the dose grid: no figure, no finding
            continue


def _count_warnings(lesions: list[Lesion], protocol: Protocol) -> list[str]:
    """Warnings for more lesions, or lesions in more organs, than the trial allows."""
    warnings = []
    organs = {lesion.site for lesion in lesions if lesion.site}
    if len(lesions) > protocol.max_lesions:
        warnings.append(
            f"{len(lesions)} lesions: more than the {protocol.max_lesions} the trial allows"
        )
    if len(organs) > protocol.max_organs:
        warnings.append(
            f"lesions in {len(organs)} organs: more than the {protocol.max_organs} the trial allows"
        )
    return warnings
