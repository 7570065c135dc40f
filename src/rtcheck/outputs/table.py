"""The terminal view of a criterion 19 evaluation: the decision first, then the limits with the
failures first, each with its value, limit and margin."""

from __future__ import annotations

from rtcheck.evaluation.results import Evaluation, LimitResult

_ORDER = {
    ("fail", "mandatory"): 0,
    ("not_evaluated", "mandatory"): 1,
    ("fail", "optimal"): 2,
    ("not_evaluated", "optimal"): 3,
    ("pass", "mandatory"): 4,
    ("pass", "optimal"): 5,
}
_SHOWN = {"fail": "FAIL", "not_evaluated": "N/E", "pass": "pass"}


def sort_key(result: LimitResult) -> tuple[int, float]:
    """Failures first, then what could not be evaluated, then passes by margin."""
    margin = result.margin if result.margin is not None else 0.0
    return (6 if result.absent_optional else _ORDER[(result.result, result.priority)], margin)


def check_table(evaluation: Evaluation) -> str:
    """A table a physicist reads in ten seconds."""
    decision = evaluation.decision
    protocol = evaluation.protocol
    lines = [
        f"Criterion 19: {decision.decision.upper()}",
        *(f"  - {reason}" for reason in decision.reasons),
        f"Protocol {protocol.name} {protocol.version}; dose: {evaluation.dose_mode}; "
        f"lesions: {len(evaluation.lesions)} in {evaluation.organ_count} organ(s)",
        "",
    ]
    header = ["Result", "Priority", "Structure", "ROI", "Metric", "Value", "Limit", "Margin"]
    rows = []
    for r in sorted(evaluation.limits, key=sort_key):
        structure = r.structure + (f" [{r.lesion}]" if r.lesion else "")
        rows.append(
            [
                # An optional structure the plan lacks is no finding, whatever the priority.
                "not contoured" if r.absent_optional else _SHOWN[r.result],
                "(optional)" if r.absent_optional else r.priority,
                structure,
                _shorten(", ".join(r.rois) or "-"),
                r.metric,
                "-" if r.value is None else f"{r.value:.2f}",
                r.limit or "-",
                "-" if r.margin is None else f"{r.margin:+.2f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    notes = [
        r
        for r in sorted(evaluation.limits, key=sort_key)
        if (r.reason or r.conversion) and not r.absent_optional  # an absence is no finding
    ]
    shown = dict.fromkeys(
        f"* {r.structure} {r.metric}: {r.reason if r.result == 'not_evaluated' else r.conversion}"
        for r in notes
    )
    if shown:
        lines.append("")
        lines.extend(shown)
    if evaluation.lesions:
        lines.append("")
        for lesion in evaluation.lesions:
            rx = "?" if lesion.prescription_gy is None else f"{lesion.prescription_gy:g} Gy"
            fx = "?" if lesion.fractions is None else f"{lesion.fractions} fx"
            lines.append(
                f"Lesion {lesion.name}: {lesion.target_roi}; site {lesion.site or '?'} "
                f"({lesion.site_evidence}); {rx} in {fx} ({lesion.prescription_evidence})"
            )
    for warning in [*evaluation.plan.warnings, *evaluation.warnings]:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines) + "\n"


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
