"""The plan report a physicist signs: one self-contained HTML file (no external resources).

Decision first, then identification, the limits (failures first), the lesions, a DVH plot of
every structure the protocol names with its limit points, and the warnings. Colours follow the
Okabe-Ito colour-blind-safe palette and every state is also written as a word and a symbol, so
the page reads the same printed in black and white. Tables and figures do not split across A4
pages.
"""

from __future__ import annotations

import html
import io
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rtcheck import __version__
from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import parse_metric
from rtcheck.errors import RtcheckError
from rtcheck.evaluation.results import Eligibility, Evaluation, Grade, LimitResult
from rtcheck.outputs.table import (
    format_value,
    merge_by_lesion,
    metric_unit,
    shown_limit,
    shown_margin,
    sort_key,
    structure_terms,
)

# Okabe-Ito palette: distinguishable with any colour vision deficiency.
COLOURS = {
    Grade.FAIL: "#D55E00",
    Grade.MAJOR_DEVIATION: "#D55E00",
    Grade.MINOR_DEVIATION: "#CC79A7",
    Grade.NOT_EVALUATED: "#E69F00",
    Grade.PASS: "#009E73",
    "absent": "#999999",
}
LABELS = {
    Grade.FAIL: "✗ FAIL",
    Grade.MAJOR_DEVIATION: "✗ MAJOR DEVIATION",
    Grade.MINOR_DEVIATION: "~ minor deviation",
    Grade.NOT_EVALUATED: "? NOT EVALUATED",
    Grade.PASS: "✓ pass",
    "absent": "– not contoured (optional)",
}
DECISIONS: dict[str, tuple[str, str]] = {
    Eligibility.EXCLUDED: ("#D55E00", "✗ EXCLUDED"),
    Eligibility.INDETERMINATE: ("#E69F00", "? INDETERMINATE"),
    Eligibility.NOT_EXCLUDED: ("#009E73", "✓ NOT EXCLUDED"),
}

CSS = """
@page { size: A4; margin: 14mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #111; margin: 0 auto;
       max-width: 182mm; }
h1 { font-size: 15pt; margin: 0 0 4pt; }
h2 { font-size: 12pt; margin: 14pt 0 4pt; break-after: avoid; }
@media print { body { max-width: none; } }
.decision { border: 3px solid; padding: 6pt 10pt; margin: 8pt 0; break-inside: avoid; }
.decision .state { font-size: 16pt; font-weight: bold; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th, td { border: 1px solid #777; padding: 2pt 4pt; text-align: left; vertical-align: top; }
thead { display: table-header-group; } tr { break-inside: avoid; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.result { font-weight: bold; border-left-width: 6px; min-width: 5.5em; }
th { overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content auto; gap: 1pt 10pt; margin: 0; }
dt { font-weight: bold; } dd { margin: 0; overflow-wrap: anywhere; }
.plots { display: flex; flex-wrap: wrap; gap: 6pt; }
figure { margin: 0; width: 88mm; break-inside: avoid; }
figure svg { width: 100%; height: auto; }
figcaption { font-size: 8pt; }
.small { font-size: 8pt; color: #333; }
"""


def _escape(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _state(result: LimitResult) -> str:
    return "absent" if result.absent_optional else result.result


def _number(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def plan_report_html(evaluation: Evaluation) -> str:
    """The report of one evaluated plan, as a complete HTML document."""
    decision = evaluation.decision
    colour, label = DECISIONS[decision.decision]
    plan = evaluation.plan
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rtcheck report {_escape(plan.patient_id)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Radiotherapy dose limits — exclusion criterion 19</h1>",
        f'<section class="decision" id="decision" style="border-color:{colour}">',
        f'<div class="state" style="color:{colour}" data-decision="{decision.decision}">'
        f"{label}</div><ul>",
        *(f"<li>{_escape(r)}</li>" for r in decision.reasons),
        "</ul>",
    ]
    for lesion, why in evaluation.excluded_sites:
        parts.append(
            f'<p class="flag" data-flag="excluded-site"><b>⚑ Lesion {_escape(lesion.name)}</b>: '
            f"site {_escape(lesion.site)} ({_escape(lesion.site_evidence)}): {_escape(why)}; a "
            "trial exclusion apart from criterion 19.</p>"
        )
    if decision.minor_deviations:
        parts.append("<p>Minor deviations (optimal limits):</p><ul>")
        parts += [f"<li>{_escape(d)}</li>" for d in decision.minor_deviations]
        parts.append("</ul>")
    parts.append("</section>")

    parts += _identification(evaluation)

    parts += _limits_table(evaluation)

    if evaluation.lesions:
        parts += [
            "<h2>Lesions</h2>",
            '<table id="lesions"><thead><tr><th>Lesion</th><th>Target</th><th>Site</th>'
            "<th>How the site was found</th><th>Prescription</th><th>Fractions</th>"
            "<th>Coverage V100%</th></tr></thead><tbody>",
        ]
        for lesion in evaluation.lesions:
            coverage = next(
                (
                    r.value
                    for r in evaluation.limits
                    if r.lesion == lesion.name and r.metric == "V100%[%]" and r.value is not None
                ),
                None,
            )
            rx = "?" if lesion.prescription_gy is None else f"{lesion.prescription_gy:g} Gy"
            parts.append(
                f"<tr><td>{_escape(lesion.name)}</td><td>{_escape(lesion.target_roi)}</td>"
                f"<td>{_escape(lesion.site or '?')}</td><td>{_escape(lesion.site_evidence)}</td>"
                f"<td>{_escape(rx)} <span class='small'>"
                f"({_escape(lesion.prescription_evidence)})</span></td>"
                f'<td class="num">{_escape(lesion.fractions or "?")}</td>'
                f'<td class="num">{_number(coverage)}{"%" if coverage is not None else ""}</td>'
                "</tr>"
            )
        parts.append("</tbody></table>")

    parts += _earlier_section(evaluation)

    parts += ["<h2>Dose-volume histograms</h2>", LEGEND, '<div class="plots">']
    parts += _plots(evaluation)
    parts.append("</div>")

    warnings = [*plan.warnings, *evaluation.warnings]
    for _, _, dvh in evaluation.dvhs:
        warnings += [w for w in dvh.warnings if w not in warnings]
    parts.append("<h2>Warnings</h2>")
    if warnings:
        parts += ['<ul id="warnings">', *(f"<li>{_escape(w)}</li>" for w in warnings), "</ul>"]
    else:
        parts.append('<p id="warnings">None.</p>')
    parts.append(
        '<p class="small">Checked by: ____________________ Date: __________ Signature: '
        "____________________</p></body></html>"
    )
    return "\n".join(parts)


def private_matplotlib_config() -> None:
    """Point matplotlib at a private folder of this user's in the temporary directory, unless
    the user chose one (MPLCONFIGDIR): matplotlib otherwise writes its font cache into $HOME,
    a path the user never gave rtcheck."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"rtcheck-matplotlib-{uid}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        owned = folder.stat().st_uid == uid and not folder.is_symlink()
    except OSError:
        owned = False
    if not owned:  # taken by someone else: a fresh folder of its own
        folder = Path(tempfile.mkdtemp(prefix="rtcheck-matplotlib-"))
    os.environ["MPLCONFIGDIR"] = str(folder)


def _identification(evaluation: Evaluation) -> list[str]:
    """What was evaluated, when, by what and against what: enough to find the inputs again."""
    plan, protocol = evaluation.plan, evaluation.protocol
    plans = "; ".join(
        f"{p.label} ({p.fractions or '?'} fx, {p.prescription_gy or '?'} Gy)" for p in plan.plans
    )
    rtplans = [p.sop_instance_uid for p in plan.plans]
    rtdoses = [uid for dose in plan.doses for uid in dose.source_uids]

    def uids(values: Sequence[str]) -> str:
        return "<br>".join(f"<code>{_escape(v)}</code>" for v in values) or "–"

    return [
        '<h2>Identification</h2><dl id="identification">',
        f"<dt>Patient ID</dt><dd>{_escape(plan.patient_id)}</dd>",
        f"<dt>Study UID</dt><dd><code>{_escape(plan.study_instance_uid)}</code></dd>",
        f"<dt>Plans</dt><dd>{_escape(plans or 'no RTPLAN')}</dd>",
        f"<dt>Lesions</dt><dd>{len(evaluation.lesions)} in {evaluation.organ_count} organ(s)</dd>",
        "</dl>",
        '<h2>Evaluation</h2><dl id="evaluation">',
        f'<dt>Evaluated</dt><dd data-evaluated="{_escape(evaluation.evaluated_at)}">'
        f"{_escape(evaluation.evaluated_at.replace('T', ' ').replace('+00:00', ' UTC'))}</dd>",
        f"<dt>Software</dt><dd>rtcheck {_escape(__version__)}</dd>",
        f"<dt>Protocol</dt><dd>{_escape(protocol.name)} version {_escape(protocol.version)} "
        f'<span class="small">sha256 {_escape(protocol.sha256[:16])}…</span></dd>',
        f"<dt>Dose evaluated</dt><dd>{_escape(evaluation.dose_mode)}</dd>",
        f"<dt>DVH end caps</dt><dd>{_escape(evaluation.end_caps.value)}</dd>",
        f'<dt>RTPLAN</dt><dd data-inputs="RTPLAN">{uids(rtplans)}</dd>',
        f'<dt>RTDOSE</dt><dd data-inputs="RTDOSE">{uids(rtdoses)}</dd>',
        f'<dt>RTSTRUCT</dt><dd data-inputs="RTSTRUCT">'
        f"{uids([plan.structure_set.sop_instance_uid])}</dd>",
        "</dl>",
    ]


def _limits_table(evaluation: Evaluation) -> list[str]:
    """Failures first; a limit equal for several lesions is one row naming them; notes (LQ
    conversions, why a limit could not be evaluated) are numbered footnotes under the table,
    and the ROIs each protocol structure was matched to are listed after them."""
    parts = [
        "<h2>Limits</h2>",
        '<table id="limits"><thead><tr><th>Result</th><th>Priority</th><th>Structure</th>'
        "<th>Metric</th><th>Limit</th><th>Value</th><th>Margin</th></tr></thead><tbody>",
    ]
    notes: dict[str, int] = {}
    for group in merge_by_lesion(sorted(evaluation.limits, key=sort_key)):
        r = group[0]
        state = _state(r)
        lesions = [g.lesion for g in group if g.lesion]
        structure = r.structure + (f" [{', '.join(lesions)}]" if lesions else "")
        unit = metric_unit(r.metric)
        note = None if r.absent_optional else (r.reason or r.conversion)
        mark = ""
        if note:
            number = notes.setdefault(f"{r.structure} {r.metric}: {note}", len(notes) + 1)
            mark = f' <a class="note" href="#note-{number}">[{number}]</a>'
        shown, acceptable = shown_limit(r)
        tier = f" (acceptable {acceptable})" if acceptable else ""
        margin = "–" if r.margin is None else shown_margin(r)
        parts.append(
            f'<tr class="limit {state}" data-result="{state}">'
            f'<td class="result" style="border-left-color:{COLOURS[state]}">{LABELS[state]}</td>'
            f"<td>{_escape(r.priority)}</td><td>{_escape(structure)}</td>"
            f"<td>{_escape(r.metric)}</td>"
            f'<td class="num">{_escape(shown or "—")}{_escape(tier)}{mark}</td>'
            f'<td class="num">{_escape(format_value(r.value, unit))}</td>'
            f'<td class="num">{_escape(margin)}</td></tr>'
        )
    parts.append("</tbody></table>")
    if notes:
        parts.append('<ol class="notes small" id="notes">')
        parts += [
            f'<li id="note-{number}" value="{number}">{_escape(text)}</li>'
            for text, number in notes.items()
        ]
        parts.append("</ol>")
    terms = structure_terms(evaluation.limits)
    if terms:
        parts.append(
            '<p class="small" id="structures">Structures (protocol name = ROIs in the '
            "plan): " + "; ".join(_escape(t) for t in terms) + "</p>"
        )
    return parts


#: What the marks on the DVHs mean, said once above them.
LEGEND = (
    '<p class="small" id="legend">Each limit is a point on its structure\'s cumulative DVH: '
    "<b>▼</b> an upper limit (≤, or a critical-volume limit read on the curve): the curve must "
    "pass at or below and left of the point; <b>▲</b> a lower limit (≥): at or above and right "
    "of it. Colour gives the result: "
    f'<span style="color:{COLOURS[Grade.PASS]}">green pass</span>, '
    f'<span style="color:{COLOURS[Grade.FAIL]}">vermilion fail</span>. Targets are drawn on the '
    "dose of their own plan, their coverage limits at their own prescription (dashed line). "
    "Mean-dose limits have no point; they are in the table.</p>"
)


def _plots(evaluation: Evaluation) -> list[str]:
    """One inline SVG figure per structure with a DVH (organs, then targets), its limits drawn."""
    private_matplotlib_config()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    prescriptions = {lesion.target_roi: lesion.prescription_gy for lesion in evaluation.lesions}
    by_structure: dict[str, dict[tuple[str, str | None], LimitResult]] = {}
    for r in evaluation.limits:
        if r.value is not None and r.group != "cumulative":
            # The same limit for several lesions is one point.
            by_structure.setdefault(r.structure, {}).setdefault((r.metric, r.limit), r)
    figures = []
    # The earlier courses' DVHs and their sums are drawn together in their own section.
    own = [item for item in evaluation.dvhs if not item[1].startswith(_EARLIER_KEYS)]
    ordered = sorted(own, key=lambda item: item[1].startswith("plan:"))
    for name, key, dvh in ordered:
        target = key.startswith("plan:")
        prescription = prescriptions.get(name) if target else None
        figure = Figure(figsize=(4.2, 2.9), dpi=100)
        axes = figure.add_subplot()
        _draw(axes, dvh, list(by_structure.get(name, {}).values()), prescription)
        title = f"{name} (target)" if target else name
        axes.set_title(title, fontsize=9, parse_math=False)  # a "$" in a name is text
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        svg = buffer.getvalue()
        svg = svg[svg.index("<svg") :]
        rx = "" if prescription is None else f", prescription {prescription:g} Gy"
        kind = "target" if target else "organ"
        figures.append(
            f'<figure class="dvh" data-structure="{_escape(name)}" data-kind="{kind}">{svg}'
            f"<figcaption>{_escape(name)} ({_escape(key)}); volume {dvh.volume_cc:.1f} cc, "
            f"mean {dvh.mean_gy:.2f} Gy{_escape(rx)}</figcaption></figure>"
        )
    return figures


_EARLIER_KEYS = ("earlier:", "cumulative:")


def _earlier_section(evaluation: Evaluation) -> list[str]:
    """The earlier courses: dates, interval, registration, the lesions' earlier doses, the
    flags, and for each structure with a cumulative limit its DVH in each course and of the
    sum."""
    earlier = evaluation.earlier
    if earlier is None:
        return []
    parts = [
        "<h2>Earlier course</h2>",
        f'<p class="small">{_escape(earlier.resampling)}. The plan is dated '
        f"{_escape(earlier.plan_date or '?')} ({_escape(earlier.plan_date_source)}).</p>",
    ]
    if earlier.status:
        parts.append(f'<p class="flag">Cumulative limits: {_escape(earlier.status)}</p>')
    parts += [
        f'<p class="flag" data-flag="earlier-course">⚑ {_escape(flag)}</p>'
        for flag in earlier.flags
    ]
    parts.append(
        '<table id="earlier-courses"><thead><tr><th>Course</th><th>Prescription</th>'
        "<th>Fractions</th><th>Ended</th><th>Interval</th><th>Registration</th>"
        "<th>Current point → earlier frame</th></tr></thead><tbody>"
    )
    for c in earlier.courses:
        registration = c.placement
        if c.registration_uid:
            registration += f" {c.registration_uid}"
        if c.registration_creator:
            registration += f" ({c.registration_creator})"
        matrix = (
            "<br>".join(" ".join(f"{v:.4f}" for v in row) for row in c.matrix) if c.matrix else "—"
        )
        interval = "?" if c.interval_months is None else f"{c.interval_months:.1f} months"
        parts.append(
            f"<tr><td>{_escape(c.label)}</td><td class='num'>{_number(c.prescription_gy)}</td>"
            f"<td class='num'>{_escape(c.fractions or '?')}</td>"
            f"<td>{_escape(c.end_date or '?')} <span class='small'>"
            f"({_escape(c.end_date_source)})</span></td><td>{_escape(interval)}</td>"
            f"<td>{_escape(registration)}</td><td class='num small'>{matrix}</td></tr>"
        )
    parts.append("</tbody></table>")
    if earlier.lesion_doses:
        parts.append(
            '<table id="earlier-lesion-doses"><thead><tr><th>Lesion</th><th>Course</th>'
            "<th>D98% (Gy)</th><th>D50% (Gy)</th><th>Max (Gy)</th><th>D50% EQD2 (Gy)</th>"
            "<th>D50% of its prescription</th><th>Inside its field</th></tr></thead><tbody>"
        )
        for d in earlier.lesion_doses:
            inside = {True: "yes", False: "no", None: "?"}[d.inside_field]
            parts.append(
                f"<tr><td>{_escape(d.lesion)}</td><td>{_escape(d.course)}</td>"
                f"<td class='num'>{_number(d.d98_gy)}</td><td class='num'>{_number(d.d50_gy)}</td>"
                f"<td class='num'>{_number(d.max_gy)}</td>"
                f"<td class='num'>{_number(d.d50_eqd2_gy)}</td>"
                f"<td class='num'>{_number(d.d50_percent)}</td><td>{inside}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts += ['<div class="plots">', *_sum_plots(evaluation), "</div>"]
    return parts


def _sum_plots(evaluation: Evaluation) -> list[str]:
    """For each structure with a cumulative DVH: the current course's, each earlier course's
    (physical, resampled) and the sum's (EQD2) on one figure."""
    private_matplotlib_config()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sums = [(n, k, d) for n, k, d in evaluation.dvhs if k.startswith("cumulative:")]
    figures = []
    for name, key, total in sums:
        curves = [(f"sum, EQD2 α/β {key.split(':')[1]} Gy", total, "#D55E00")]
        curves += [
            (f"earlier course {k.split(':')[1]} (physical)", d, "#009E73")
            for n, k, d in evaluation.dvhs
            if n == name and k.startswith("earlier:")
        ]
        curves += [
            ("current course", d, "#0072B2")
            for n, k, d in evaluation.dvhs
            if n == name and not k.startswith(_EARLIER_KEYS)
        ][:1]
        figure = Figure(figsize=(4.2, 2.9), dpi=100)
        axes = figure.add_subplot()
        for label, dvh, colour in curves:
            if dvh.volume_in_grid_cc > 0:
                percent = 100 * dvh.cumulative_cc / dvh.volume_in_grid_cc
                axes.plot(dvh.dose_edges_gy, percent, color=colour, linewidth=1.2, label=label)
        limits = [r for r in evaluation.limits if r.group == "cumulative" and r.structure == name]
        for r in limits:
            point = limit_point(r, total)
            if point is not None:
                axes.plot(
                    point[0], point[1], marker="v" if point[2] else "^",
                    color=COLOURS[r.result], markersize=7, markeredgecolor="black",
                    linestyle="none",
                )  # fmt: skip
        axes.legend(fontsize=6, loc="best", framealpha=0.8)
        axes.set_xlabel("Dose (Gy)", fontsize=8)
        axes.set_ylabel("Volume (%)", fontsize=8)
        axes.set_ylim(0, 102)
        axes.tick_params(labelsize=7)
        axes.grid(True, linewidth=0.3)
        axes.set_title(f"{name}: the courses and their sum", fontsize=9, parse_math=False)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        svg = buffer.getvalue()
        figures.append(
            f'<figure class="dvh" data-structure="{_escape(name)}" data-kind="sum">'
            f"{svg[svg.index('<svg') :]}<figcaption>{_escape(name)} ({_escape(key)})"
            "</figcaption></figure>"
        )
    return figures


def _draw(
    axes: object, dvh: DVH, limits: Sequence[LimitResult], prescription_gy: float | None
) -> None:
    total = dvh.volume_in_grid_cc
    edges = dvh.dose_edges_gy
    percent = 100 * dvh.cumulative_cc / total if total > 0 else edges * 0
    axes.plot(edges, percent, color="#0072B2", linewidth=1.2)  # type: ignore[attr-defined]
    if prescription_gy:
        axes.axvline(  # type: ignore[attr-defined]
            prescription_gy, color="#555555", linewidth=0.8, linestyle="--"
        )
    for r in limits:
        point = limit_point(r, dvh, prescription_gy)
        if point is None:
            continue
        dose, volume, upper = point
        axes.plot(  # type: ignore[attr-defined]
            dose,
            volume,
            marker="v" if upper else "^",
            color=COLOURS[r.result],
            markersize=7,
            markeredgecolor="black",
            linestyle="none",
            label=f"{r.metric} {r.limit}",
        )
    if axes.get_legend_handles_labels()[0]:  # type: ignore[attr-defined]
        axes.legend(fontsize=6, loc="best", framealpha=0.8)  # type: ignore[attr-defined]
    axes.set_xlabel("Dose (Gy)", fontsize=8)  # type: ignore[attr-defined]
    axes.set_ylabel("Volume (%)", fontsize=8)  # type: ignore[attr-defined]
    axes.set_ylim(0, 102)  # type: ignore[attr-defined]
    axes.tick_params(labelsize=7)  # type: ignore[attr-defined]
    axes.grid(True, linewidth=0.3)  # type: ignore[attr-defined]


def limit_point(
    r: LimitResult, dvh: DVH, prescription_gy: float | None = None
) -> tuple[float, float, bool] | None:
    """Where a limit sits on the cumulative DVH: (dose Gy, volume % of the part in the grid,
    True for an upper limit that the curve must pass below), or None when it has no place
    (a mean, a dose in % without a prescription, a limit without a number).

    A critical-volume limit ``CV<d>Gy[cc] >= X`` (at least X cc below d) is the upper limit
    ``V<d>Gy <= total - X`` on the curve.
    """
    total = dvh.volume_in_grid_cc
    if total <= 0 or r.limit is None:
        return None
    comparator, _, number = r.limit.strip().partition(" ")
    try:
        bound = float(number)
        metric = parse_metric(r.metric)
    except (ValueError, RtcheckError):
        return None
    upper = comparator.startswith("<")

    def dose_gy(value: float, unit: str | None) -> float | None:
        if unit == "Gy":
            return value
        if unit == "cGy":
            return value / 100
        return None if not prescription_gy else value / 100 * prescription_gy

    def volume_pct(value: float, unit: str | None) -> float:
        return value if unit == "%" else 100 * value / total

    if metric.threshold is None:
        return None
    if metric.quantity in ("V", "CV"):
        dose = dose_gy(metric.threshold, metric.threshold_unit)
        if dose is None:
            return None
        volume = volume_pct(bound, metric.result_unit)
        if metric.quantity == "CV":
            return dose, 100 - volume, not upper
        return dose, volume, upper
    dose = dose_gy(bound, metric.result_unit)
    if dose is None:
        return None
    volume = volume_pct(metric.threshold, metric.threshold_unit)
    if metric.quantity == "DC":  # the coldest x stay under: the rest receives at least
        volume = 100 - volume
    return dose, volume, upper
