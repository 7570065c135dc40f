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
from rtcheck.evaluation.results import Evaluation, LimitResult
from rtcheck.outputs.table import sort_key

# Okabe-Ito palette: distinguishable with any colour vision deficiency.
COLOURS = {"fail": "#D55E00", "not_evaluated": "#E69F00", "pass": "#009E73", "absent": "#999999"}
LABELS = {
    "fail": "✗ FAIL",
    "not_evaluated": "? NOT EVALUATED",
    "pass": "✓ pass",
    "absent": "– not contoured (optional)",
}
DECISIONS = {
    "excluded": ("#D55E00", "✗ EXCLUDED"),
    "indeterminate": ("#E69F00", "? INDETERMINATE"),
    "not_excluded": ("#009E73", "✓ NOT EXCLUDED"),
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
td.result { font-weight: bold; white-space: nowrap; border-left-width: 6px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 1pt 10pt; margin: 0; }
dt { font-weight: bold; } dd { margin: 0; overflow-wrap: anywhere; }
.plots { display: flex; flex-wrap: wrap; gap: 6pt; }
figure { margin: 0; width: 92mm; break-inside: avoid; }
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
    plan, protocol = evaluation.plan, evaluation.protocol
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
    if decision.minor_deviations:
        parts.append("<p>Minor deviations (optimal limits):</p><ul>")
        parts += [f"<li>{_escape(d)}</li>" for d in decision.minor_deviations]
        parts.append("</ul>")
    parts.append("</section>")

    plans = "; ".join(
        f"{p.label} ({p.fractions or '?'} fx, {p.prescription_gy or '?'} Gy)" for p in plan.plans
    )
    parts += [
        "<h2>Identification</h2><dl>",
        f"<dt>Patient ID</dt><dd>{_escape(plan.patient_id)}</dd>",
        f"<dt>Study UID</dt><dd>{_escape(plan.study_instance_uid)}</dd>",
        f"<dt>Structure set</dt><dd>{_escape(plan.structure_set.sop_instance_uid)}</dd>",
        f"<dt>Plans</dt><dd>{_escape(plans or 'no RTPLAN')}</dd>",
        f"<dt>Dose evaluated</dt><dd>{_escape(evaluation.dose_mode)}</dd>",
        f"<dt>DVH end caps</dt><dd>{_escape(evaluation.end_caps.value)}</dd>",
        f"<dt>Protocol</dt><dd>{_escape(protocol.name)} {_escape(protocol.version)} "
        f'<span class="small">sha256 {_escape(protocol.sha256[:16])}…</span></dd>',
        f"<dt>Software</dt><dd>rtcheck {__version__}</dd>",
        f"<dt>Lesions</dt><dd>{len(evaluation.lesions)} in {evaluation.organ_count} organ(s)</dd>",
        "</dl>",
    ]

    parts += [
        "<h2>Limits</h2>",
        '<table id="limits"><thead><tr><th>Result</th><th>Priority</th><th>Structure</th>'
        "<th>ROI</th><th>Metric</th><th>Limit</th><th>Value</th><th>Margin</th>"
        "<th>Note</th></tr></thead><tbody>",
    ]
    for r in sorted(evaluation.limits, key=sort_key):
        state = _state(r)
        structure = r.structure + (f" [{r.lesion}]" if r.lesion else "")
        note = r.reason if r.result == "not_evaluated" else r.conversion
        parts.append(
            f'<tr class="limit {state}" data-result="{state}">'
            f'<td class="result" style="border-left-color:{COLOURS[state]}">{LABELS[state]}</td>'
            f"<td>{_escape(r.priority)}</td><td>{_escape(structure)}</td>"
            f"<td>{_escape(', '.join(r.rois) or '–')}</td><td>{_escape(r.metric)}</td>"
            f'<td class="num">{_escape(r.limit or "—")}</td><td class="num">{_number(r.value)}</td>'
            f'<td class="num">{_number(r.margin, signed=True)}</td>'
            f'<td class="small">{_escape(note or "")}</td></tr>'
        )
    parts.append("</tbody></table>")

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

    parts += ['<h2>Dose-volume histograms</h2><div class="plots">']
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


def _private_matplotlib_config() -> None:
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


def _plots(evaluation: Evaluation) -> list[str]:
    """One inline SVG figure per protocol structure with a DVH, limit points drawn on it."""
    _private_matplotlib_config()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    by_structure: dict[str, list[LimitResult]] = {}
    for r in evaluation.limits:
        if r.group != "lesion_coverage" and r.value is not None:
            by_structure.setdefault(r.structure, []).append(r)
    figures = []
    for name, key, dvh in evaluation.dvhs:
        if key.startswith("plan:"):
            continue  # lesion targets: their coverage is in the lesion table
        figure = Figure(figsize=(4.2, 2.8), dpi=100)
        axes = figure.add_subplot()
        _draw(axes, dvh, by_structure.get(name, []))
        axes.set_title(name, fontsize=9, parse_math=False)  # a "$" in a name is text
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        svg = buffer.getvalue()
        svg = svg[svg.index("<svg") :]
        figures.append(
            f'<figure class="dvh" data-structure="{_escape(name)}">{svg}'
            f"<figcaption>{_escape(name)} ({_escape(key)}); volume {dvh.volume_cc:.1f} cc, "
            f"mean {dvh.mean_gy:.2f} Gy</figcaption></figure>"
        )
    return figures


def _draw(axes: object, dvh: DVH, limits: Sequence[LimitResult]) -> None:
    total = dvh.volume_in_grid_cc
    edges = dvh.dose_edges_gy
    percent = 100 * dvh.cumulative_cc / total if total > 0 else edges * 0
    axes.plot(edges, percent, color="#0072B2", linewidth=1.2)  # type: ignore[attr-defined]
    markers = {"pass": "o", "fail": "X", "not_evaluated": "s"}
    for r in limits:
        point = _limit_point(r, dvh)
        if point is None:
            continue
        axes.plot(  # type: ignore[attr-defined]
            *point,
            marker=markers.get(r.result, "o"),
            color=COLOURS[r.result],
            markersize=7,
            markeredgecolor="black",
            linestyle="none",
        )
    axes.set_xlabel("Dose (Gy)", fontsize=8)  # type: ignore[attr-defined]
    axes.set_ylabel("Volume (%)", fontsize=8)  # type: ignore[attr-defined]
    axes.set_ylim(0, 102)  # type: ignore[attr-defined]
    axes.tick_params(labelsize=7)  # type: ignore[attr-defined]
    axes.grid(True, linewidth=0.3)  # type: ignore[attr-defined]


def _limit_point(r: LimitResult, dvh: DVH) -> tuple[float, float] | None:
    """Where a limit sits on the cumulative DVH (dose Gy, volume %), when it has a place."""
    metric = parse_metric(r.metric)
    total = dvh.volume_in_grid_cc
    if total <= 0 or r.limit is None:
        return None
    bound = float(r.limit.split()[-1])
    if metric.quantity == "V" and metric.threshold_unit == "Gy" and metric.threshold is not None:
        volume = bound if metric.result_unit == "%" else 100 * bound / total
        return metric.threshold, volume
    if metric.quantity == "D" and metric.result_unit == "Gy" and metric.threshold is not None:
        cc = metric.threshold if metric.threshold_unit == "cc" else metric.threshold / 100 * total
        return bound, 100 * cc / total
    return None
