"""A screening's outputs: the screening record (JSON, its own versioned schema
``data/screening-record.schema.json``), the terminal table and the report page. A screen is
never shown as a plan check: its decisions are ``excluded_by_geometry``, ``plan_needed`` and
``indeterminate``, and every page says what geometry proves and what it does not."""

from __future__ import annotations

import html
import math
from typing import Any

from rtcheck import __version__
from rtcheck.logs import printable
from rtcheck.numbers import json_number
from rtcheck.screening.screen import ScreenedLimit, Screening, Verdict

SCREENING_VERSION = "1.0"
SCHEMA_RESOURCE = "data/screening-record.schema.json"
#: What a screen proves, and what it does not, as every output says it.
SCOPE = (
    "A screen proves only what any plan meeting the protocol's mandatory coverage limits must "
    "give an organ that overlaps a target; 'not excluded by geometry' is not 'will be met': "
    "the plan decides. No dose fall-off model is used."
)


def screening_record(result: Screening) -> dict[str, Any]:
    """The machine-readable screening record."""
    plan, protocol = result.plan, result.protocol
    return {
        "record_type": "screening",
        "record_version": SCREENING_VERSION,
        "created": result.evaluated_at,
        "software": {"name": "rtcheck", "version": __version__},
        "patient_id": plan.patient_id,
        "study_instance_uid": plan.study_instance_uid,
        "rtstruct_sop_instance_uid": plan.structure_set.sop_instance_uid,
        "inputs": [
            {
                "path": f.path,
                "modality": f.modality,
                "sop_instance_uid": f.sop_instance_uid,
                "sha256": f.sha256,
            }
            for f in plan.files
        ],  # fmt: skip
        "protocol": {
            "name": protocol.name,
            "version": protocol.version,
            "sha256": protocol.sha256,
            "path": protocol.path,
        },
        "end_caps": result.end_caps.value,
        "scope": SCOPE,
        "criterion_19": {"decision": result.decision, "reasons": list(result.reasons)},
        "courses": [
            {
                "name": c.name,
                "target_roi": c.target,
                "target_cc": json_number(c.target_cc),
                "prescription_gy": json_number(c.prescription_gy),
                "fractions": c.fractions,
                "prescription_evidence": c.evidence,
                "site": c.site,
            }
            for c in result.courses
        ],
        "limits": [_limit_row(r) for r in result.limits],
        "proximity": [
            {
                "structure": p.structure,
                "roi": list(p.rois),
                "course": p.course,
                "target_roi": p.target,
                "organ_cc": json_number(p.organ_cc),
                "distance_mm": json_number(p.distance_mm) if math.isfinite(p.distance_mm) else None,
                "within_cc": [
                    {"distance_mm": d, "volume_cc": json_number(v)} for d, v in p.within_cc
                ],
                "at_risk": p.at_risk,
            }
            for p in result.proximity
        ],
        "warnings": [*plan.warnings, *result.warnings],
    }


def _limit_row(r: ScreenedLimit) -> dict[str, Any]:
    return {
        "structure": r.structure,
        "roi": list(r.rois),
        "course": r.course,
        "group": r.group,
        "metric": r.metric,
        "limit": r.limit,
        "priority": r.priority,
        "optional": r.optional,
        "verdict": r.verdict,
        "bound": json_number(r.bound),
        "bound_is_lower": r.bound_is_lower,
        "evidence": r.evidence,
        "reason": r.reason,
        "conversion": r.conversion,
        "source": r.source,
    }


_SHOWN = {
    Verdict.CANNOT_BE_MET: "CANNOT BE MET",
    Verdict.NOT_EXCLUDED: "not excluded",
    Verdict.NOT_EVALUATED: "not evaluated",
}


def screening_table(result: Screening) -> str:
    """The terminal view: the decision, then each limit with a bound or a finding, the organs
    near each target, and what a screen proves."""
    lines = [f"Screening, criterion 19: {result.decision.upper()}"]
    lines += [f"  - {_line(reason)}" for reason in result.reasons]
    protocol = result.protocol
    lines.append(f"Protocol {protocol.name} {protocol.version}")
    lines.append("")
    for c in result.courses:
        rx = "?" if c.prescription_gy is None else f"{c.prescription_gy:g} Gy"
        fx = "?" if c.fractions is None else f"{c.fractions} fx"
        lines.append(
            _line(f"{c.name}: {c.target} {c.target_cc:.1f} cc; {rx} in {fx} ({c.evidence})")
        )
    rows = [["Verdict", "Course", "Structure", "Metric", "Limit", "Bound"]]
    shown = [
        r
        for r in result.limits
        if r.verdict != Verdict.NOT_EXCLUDED or r.bound is not None
        if not r.absent_optional
    ]
    for r in shown:
        bound = (
            "" if r.bound is None else ((">= " if r.bound_is_lower else "<= ") + f"{r.bound:.2f}")
        )
        rows.append(
            [_SHOWN[r.verdict], r.where, _line(r.structure), r.metric, r.limit or "-", bound]
        )
    quiet = len(result.limits) - len(shown)
    lines.append("")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.append(f"({quiet} more limits: nothing proven, or an optional structure not contoured)")
    for r in shown:
        note = r.evidence if r.verdict == Verdict.CANNOT_BE_MET else r.reason
        if note:
            lines.append(_line(f"  {r.structure} {r.metric} ({r.where}): {note}"))
    near = [p for p in result.proximity if p.distance_mm <= 20]
    if near:
        lines += [
            "",
            "Organs within 20 mm of a target (cc within 0/3/5/10/20 mm; smallest distance):",
        ]
        for p in near:
            volumes = "/".join(f"{v:.1f}" for _, v in p.within_cc)
            flag = f"  AT RISK: {p.at_risk}" if p.at_risk else ""
            lines.append(
                _line(
                    f"  {p.structure} near {p.target} ({p.course}): {volumes} cc; "
                    f"{p.distance_mm:.1f} mm{flag}"
                )
            )
    lines += ["", _line(SCOPE)]
    for warning in [*result.plan.warnings, *result.warnings]:
        lines.append(_line(f"Warning: {warning}"))
    return "\n".join(lines) + "\n"


def _line(text: str) -> str:
    """A text of the files on one printable line (a name with a newline cannot forge one)."""
    return printable(text)


def screening_html(result: Screening) -> str:
    """The screening's report page: one HTML document, every text of the files escaped."""

    def e(value: object) -> str:
        return html.escape(str(value), quote=True)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rtcheck screening {e(result.plan.patient_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}"
        ".cannot_be_met{background:#fdd}.small{font-size:85%;color:#444}</style></head><body>",
        "<h1>Screening before a plan — exclusion criterion 19</h1>",
        f'<p id="decision" data-decision="{e(result.decision)}"><b>{e(result.decision)}</b></p>',
        "<ul>",
        *(f"<li>{e(r)}</li>" for r in result.reasons),
        "</ul>",
        f'<p class="small" id="scope">{e(SCOPE)}</p>',
        "<h2>Courses</h2><table id='courses'><tr><th>Course</th><th>Target</th><th>Volume (cc)"
        "</th><th>Prescription</th><th>Fractions</th><th>From</th></tr>",
    ]
    for c in result.courses:
        rx = "?" if c.prescription_gy is None else f"{c.prescription_gy:g} Gy"
        parts.append(
            f"<tr><td>{e(c.name)}</td><td>{e(c.target)}</td><td>{c.target_cc:.1f}</td>"
            f"<td>{e(rx)}</td><td>{e(c.fractions or '?')}</td><td>{e(c.evidence)}</td></tr>"
        )
    parts.append(
        "</table><h2>Limits</h2><table id='limits'><tr><th>Verdict</th><th>Course</th>"
        "<th>Structure</th><th>Metric</th><th>Limit</th><th>Bound</th><th>Evidence</th></tr>"
    )
    for r in result.limits:
        bound = "" if r.bound is None else ("≥ " if r.bound_is_lower else "≤ ") + f"{r.bound:.2f}"
        parts.append(
            f'<tr class="{e(r.verdict)}"><td>{e(r.verdict)}</td><td>{e(r.where)}</td>'
            f"<td>{e(r.structure)}</td><td>{e(r.metric)}</td><td>{e(r.limit or '')}</td>"
            f"<td>{e(bound)}</td><td class='small'>{e(r.evidence or r.reason or '')}</td></tr>"
        )
    parts.append(
        "</table><h2>Organs near each target</h2><table id='proximity'><tr><th>Organ</th>"
        "<th>Target</th><th>Distance (mm)</th>"
        + "".join(
            f"<th>within {d:g} mm (cc)</th>"
            for d, _ in (result.proximity[0].within_cc if result.proximity else ())
        )
        + "<th>At risk</th></tr>"
    )
    for p in result.proximity:
        distance = f"{p.distance_mm:.1f}" if math.isfinite(p.distance_mm) else "—"
        parts.append(
            f"<tr><td>{e(p.structure)}</td><td>{e(p.target)} ({e(p.course)})</td>"
            f"<td>{distance}</td>"
            + "".join(f"<td>{v:.2f}</td>" for _, v in p.within_cc)
            + f"<td>{e(p.at_risk or '')}</td></tr>"
        )
    parts.append("</table>")
    warnings = [*result.plan.warnings, *result.warnings]
    if warnings:
        parts += ["<h2>Warnings</h2><ul>", *(f"<li>{e(w)}</li>" for w in warnings), "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
