"""The terminal view of a criterion 19 evaluation, within :data:`WIDTH` columns: the decision
first, then the limits with the failures first, each with its value, limit and margin; then
numbered notes, the ROIs each structure was matched to, and the lesions.

A limit that holds for several lesions with the same value (the cord's limit near M1, M2 and
M3) is one row naming the lesions. Doses are printed to 0.01 Gy, volumes to 0.1 cc or 0.1 %;
margins carry their unit.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Sequence

from rtcheck.evaluation.results import Evaluation, Grade, LimitResult
from rtcheck.protocol.lesions import Lesion

#: Columns the table and its notes fit in.
WIDTH = 100
#: Decision reasons listed one by one up to this many; more are counted by cause.
REASONS_LISTED = 5

_ORDER = {
    (Grade.FAIL, "mandatory"): 0,
    (Grade.MAJOR_DEVIATION, "mandatory"): 0,
    (Grade.NOT_EVALUATED, "mandatory"): 1,
    (Grade.FAIL, "optimal"): 2,
    (Grade.MAJOR_DEVIATION, "optimal"): 2,
    (Grade.MINOR_DEVIATION, "mandatory"): 2,
    (Grade.MINOR_DEVIATION, "optimal"): 2,
    (Grade.NOT_EVALUATED, "optimal"): 3,
    (Grade.PASS, "mandatory"): 4,
    (Grade.PASS, "optimal"): 5,
}
_SHOWN = {
    Grade.FAIL: "FAIL",
    Grade.MAJOR_DEVIATION: "MAJOR dev.",
    Grade.MINOR_DEVIATION: "minor dev.",
    Grade.NOT_EVALUATED: "N/E",
    Grade.PASS: Grade.PASS,
}
#: Decimals a value is printed with, by the unit of the metric's result.
_DECIMALS = {"Gy": 2, "cc": 1, "%": 1}
_UNIT = re.compile(r"\[([^\]]+)\]\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_HEADER = ("Result", "Priority", "Structure", "Metric", "Value", "Limit", "Margin")
_STRUCTURE = _HEADER.index("Structure")


def sort_key(result: LimitResult) -> tuple[int, float]:
    """Failures first, then what could not be evaluated, then passes by margin."""
    margin = result.margin if result.margin is not None else 0.0
    return (6 if result.absent_optional else _ORDER[(result.result, result.priority)], margin)


def metric_unit(metric: str) -> str:
    """The unit of a metric's result ("Gy", "cc" or "%"), from its bracket; "" when none."""
    found = _UNIT.search(metric)
    return found.group(1) if found else ""


def format_value(value: float | None, unit: str) -> str:
    """A metric value to the precision its unit is read at (0.01 Gy, 0.1 cc, 0.1 %)."""
    if value is None:
        return "-"
    return f"{value:.{_DECIMALS.get(unit, 2)}f}"


def check_table(evaluation: Evaluation) -> str:
    """The terminal view of an evaluation, each line within :data:`WIDTH` columns."""
    decision = evaluation.decision
    protocol = evaluation.protocol
    lines = [f"Criterion 19: {decision.decision.upper()}", *_reasons(evaluation)]
    lines.append(
        f"Protocol {protocol.name} {protocol.version}; dose: {evaluation.dose_mode}; "
        f"lesions: {len(evaluation.lesions)} in {evaluation.organ_count} organ(s)"
    )
    notes: dict[str, int] = {}
    rows = [
        _row(group, notes) for group in merge_by_lesion(sorted(evaluation.limits, key=sort_key))
    ]
    lines += ["", *_layout(rows)]
    if any(r.acceptable for r in evaluation.limits):
        lines += _wrapped(
            "Limits 'a | b': a per protocol, b the acceptable variation (a minor deviation); "
            "beyond b, a major one.",
            indent=2,
        )
    if notes:
        lines.append("")
        for text, number in notes.items():
            lines += _wrapped(f"[{number}] {text}", indent=len(f"[{number}] "))
    matched = structure_terms(evaluation.limits)
    if matched:
        lines += ["", "Structures (protocol name = ROIs in the plan):"]
        for text in matched:
            lines += _wrapped(f"  {text}", indent=4)
    if evaluation.lesions:
        lines.append("")
        for lesion in evaluation.lesions:
            rx = "?" if lesion.prescription_gy is None else f"{lesion.prescription_gy:g} Gy"
            fx = "?" if lesion.fractions is None else f"{lesion.fractions} fx"
            lines += _wrapped(
                f"Lesion {lesion.name}: {lesion.target_roi}; site {lesion.site or '?'} "
                f"({lesion.site_evidence}); {rx} in {fx} ({lesion.prescription_evidence})",
                indent=2,
            )
        for lesion, why in evaluation.excluded_sites:
            lines += _wrapped(
                f"FLAG lesion {lesion.name}: site {lesion.site} ({lesion.site_evidence}): {why}; "
                "a trial exclusion apart from criterion 19",
                indent=2,
            )
        lines += lesion_map_hint(evaluation.lesions)
    lines += _earlier_lines(evaluation)
    for warning in [*evaluation.plan.warnings, *evaluation.warnings]:
        lines += _wrapped(f"Warning: {warning}", indent=2)
    return "\n".join(lines) + "\n"


def _earlier_lines(evaluation: Evaluation) -> list[str]:
    """The earlier courses: each with its dates, interval and registration; the flags."""
    earlier = evaluation.earlier
    if earlier is None:
        return []
    lines = ["", "Earlier courses ((sum): limits on the EQD2 sum with them):"]
    for c in earlier.courses:
        rx = "?" if c.prescription_gy is None else f"{c.prescription_gy:g} Gy"
        fx = "?" if c.fractions is None else f"{c.fractions} fx"
        interval = "?" if c.interval_months is None else f"{c.interval_months:.1f} months"
        placed = c.placement
        if c.registration_uid:
            placed += f" registration {c.registration_uid}"
            placed += f" ({c.registration_creator})" if c.registration_creator else ""
        lines += _wrapped(
            f"  {c.label}: {rx} in {fx}; ended {c.end_date or '?'} ({c.end_date_source}); "
            f"{interval} before the plan; {placed}",
            indent=4,
        )
        for warning in c.warnings:
            lines += _wrapped(f"    Warning: {warning}", indent=6)
    for d in earlier.lesion_doses:
        percent = "" if d.d50_percent is None else f", {d.d50_percent:.0f}% of its prescription"
        lines += _wrapped(
            f"  Lesion {d.lesion} in {d.course}: D98% {d.d98_gy:.1f}, D50% {d.d50_gy:.1f}, "
            f"max {d.max_gy:.1f} Gy{percent}",
            indent=4,
        )
    if earlier.status:
        lines += _wrapped(f"  Cumulative limits: {earlier.status}", indent=4)
    for flag in earlier.flags:
        lines += _wrapped(f"FLAG {flag}", indent=2)
    return lines


def lesion_map_hint(lesions: Sequence[Lesion]) -> list[str]:
    """Lines showing the ``--map`` entry that gives what is unknown of some lesions, or none."""
    entries = []
    for lesion in lesions:
        wanted = []
        if lesion.site is None:
            wanted.append("site: <lung|liver|bone|...>")
        if lesion.prescription_gy is None:
            wanted.append("prescription_gy: <Gy>")
        if lesion.fractions is None:
            wanted.append("fractions: <n>")
        if wanted:
            entries.append(f'    "{_quoted(lesion.target_roi)}": {{{", ".join(wanted)}}}')
    if not entries:
        return []
    return [
        "",
        "What is unknown of a lesion can be given in a --map file (rtcheck check --map FILE):",
        "  lesions:",
        *entries,
    ]


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _reasons(evaluation: Evaluation) -> list[str]:
    """The decision's reasons; when there are many, counted by cause."""
    reasons = evaluation.decision.reasons
    if len(reasons) <= REASONS_LISTED:
        return [line for r in reasons for line in _wrapped(f"  - {r}", indent=4)]
    limits = [r for r in evaluation.limits if r.priority == "mandatory" and not r.absent_optional]
    failed = [r for r in limits if r.result == Grade.FAIL]
    if failed:
        shown = ", ".join(f"{r.structure} {r.metric}" for r in failed)
        return _wrapped(f"  - {len(failed)} mandatory limits fail: {shown}", indent=4)
    causes = Counter(
        (r.reason or "").split("; published: ")[0]
        for r in limits
        if r.result == Grade.NOT_EVALUATED
    )
    lines = [f"  - {sum(causes.values())} mandatory limits could not be evaluated:"]
    for cause, count in causes.most_common():
        lines += _wrapped(f"    {count:>3} limits: {cause}", indent=16)
    return lines


def lesion_list(names: Sequence[str]) -> str:
    """Lesion names for a row: ``M1-M3`` for three or more numbered in a run, else listed."""
    found = [re.fullmatch(r"(.*?)(\d+)", n) for n in names]
    if len(names) >= 3 and all(found):
        prefixes = {m.group(1) for m in found if m}
        numbers = [int(m.group(2)) for m in found if m]
        if len(prefixes) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{names[0]}-{names[-1]}"
    return ", ".join(names)


def merge_by_lesion(results: Sequence[LimitResult]) -> list[list[LimitResult]]:
    """Results that differ only in their lesion, as groups (in first-seen order)."""
    groups: dict[tuple[object, ...], list[LimitResult]] = {}
    for r in results:
        if r.lesion is None:
            groups[(id(r),)] = [r]
            continue
        key = (
            r.result,
            r.priority,
            r.absent_optional,
            r.structure,
            r.rois,
            r.metric,
            r.limit,
            r.value,
            r.reason,
            r.conversion,
        )
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _row(group: list[LimitResult], notes: dict[str, int]) -> list[str]:
    r = group[0]
    lesions = [g.lesion for g in group if g.lesion]
    structure = r.structure + (f" [{lesion_list(lesions)}]" if lesions else "")
    if r.group == "cumulative":
        structure += " (sum)"
    unit = metric_unit(r.metric)
    shown, tier = shown_limit(r)
    limit = shown or "-"
    if tier:
        limit = f"{limit} | {tier.split()[-1]}"
    note = None if r.absent_optional else (r.reason or r.conversion)
    if note:
        number = notes.setdefault(f"{r.structure} {r.metric}: {note}", len(notes) + 1)
        limit = f"{limit} [{number}]"
    margin = shown_margin(r)
    return [
        # An optional structure the plan lacks is no finding, whatever the priority.
        "not contoured" if r.absent_optional else _SHOWN[r.result],
        "(optional)" if r.absent_optional else r.priority,
        structure,
        r.metric,
        format_value(r.value, unit),
        limit,
        margin,
    ]


def shown_limit(r: LimitResult) -> tuple[str | None, str | None]:
    """A result's limit and acceptable tier as shown: a threshold converted to another
    fractionation, or interpolated between a table's rows, is computed, so it is read at its
    unit's precision; a published one (and every volume limit) keeps the digits its source
    gave."""
    unit = metric_unit(r.metric)
    # A cumulative limit's note says how the sum was made; its threshold is the protocol's own.
    converted = bool(r.conversion) and r.group != "cumulative"
    computed = converted and unit in ("Gy", "", "%") and not r.metric.startswith("V")

    def shown(text: str | None) -> str | None:
        if text is None or not computed:
            return text
        return _NUMBER.sub(lambda m: format_value(float(m.group()), unit), text, count=1)

    return shown(r.limit), shown(r.acceptable)


def shown_margin(r: LimitResult) -> str:
    """A result's margin with its unit, at the unit's precision; "-" when it has none."""
    unit = metric_unit(r.metric)
    if r.margin is None:
        return "-"
    return f"{r.margin:+.{_DECIMALS.get(unit, 2)}f} {unit}".rstrip()


def _layout(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell; a Structure cell that would take the table past
    :data:`WIDTH` is wrapped onto continuation lines rather than cut."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(_HEADER)]
    spare = WIDTH - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[_STRUCTURE] = max(len(_HEADER[_STRUCTURE]), widths[_STRUCTURE] + spare)
    lines = [_join(list(_HEADER), widths)]
    for row in rows:
        parts = textwrap.wrap(
            row[_STRUCTURE], widths[_STRUCTURE], subsequent_indent="  ", break_on_hyphens=False
        ) or [""]
        lines.append(_join([*row[:_STRUCTURE], parts[0], *row[_STRUCTURE + 1 :]], widths))
        for part in parts[1:]:
            blank = [""] * len(row)
            blank[_STRUCTURE] = part
            lines.append(_join(blank, widths))
    return lines


def _join(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def structure_terms(results: Sequence[LimitResult]) -> list[str]:
    """``Name = ROI + ROI - ROI`` for each protocol structure whose ROIs differ from its name."""
    seen: dict[str, tuple[str, ...]] = {}
    for r in results:
        if r.rois and r.structure not in seen:
            seen[r.structure] = r.rois
    shown = []
    for name, rois in seen.items():
        if rois == (name,):
            continue
        terms = [f"- {roi[1:]}" if roi.startswith("-") else f"+ {roi}" for roi in rois]
        shown.append(f"{name} = {' '.join(terms).removeprefix('+ ')}")
    return shown


def _wrapped(text: str, indent: int) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
        break_long_words=True,
    ) or [""]
