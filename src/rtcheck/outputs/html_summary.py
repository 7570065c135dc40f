"""The archive summary: one HTML page for a batch, from the stored plans' rows and the limits
that fail most often (read from the results database by :mod:`rtcheck.archive.store`).

Counts by decision, the protocols and when the page was made, a table of plans by patient
(sortable by clicking a column heading; the decision coloured as in the counts) with links to
each plan's report, and the limits that fail most often.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtcheck import __version__
from rtcheck.evaluation.results import Eligibility
from rtcheck.outputs.filenames import report_name
from rtcheck.outputs.html_report import COLOURS, CSS, DECISIONS

_SORT_SCRIPT = """
document.querySelectorAll('th[data-sort]').forEach(function (th, column) {
  th.style.cursor = 'pointer';
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var ascending = th.dataset.order !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[column].innerText, y = b.cells[column].innerText;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    th.dataset.order = ascending ? 'asc' : 'desc';
  });
});
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


@dataclass(frozen=True)
class FailingLimit:
    """A limit and the number of stored plans in which it fails (or is a deviation)."""

    structure: str
    metric: str
    priority: str
    plans: int


def archive_summary_html(
    plan_rows: Iterable[Mapping[str, Any]],
    failing: Sequence[FailingLimit],
    page: Path,
    report_dir: Path | None,
) -> str:
    """The summary page of the stored plans (``plan_rows``, one per plan, as the store lists
    them) and the limits that fail most often; links point to reports in ``report_dir``
    (relative to ``page``)."""
    # By patient, each patient's plans in the order they were checked.
    rows = sorted(plan_rows, key=lambda r: (str(r["patient_id"] or ""), str(r["checked_at"])))
    protocols = Counter(str(r["protocol"]) for r in rows if r["protocol"])
    patients = len({r["patient_id"] for r in rows})
    made = datetime.now(UTC).isoformat(" ", "seconds").replace("+00:00", " UTC")
    counts = Counter(r["decision"] or r["status"] for r in rows if r.get("kind") != "screen")
    total = len(rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>rtcheck archive summary</title>',
        f"<style>{CSS} body {{ max-width: 277mm; }} @page {{ size: A4 landscape; }}</style>",
        "</head><body><h1>Archive summary — exclusion criterion 19</h1>",
        f'<p id="total">{total} plans of {patients} patients in the database.</p>',
        '<dl id="made">',
        "<dt>Protocol</dt><dd>"
        + ("; ".join(f"{_e(name)} ({n} plans)" for name, n in sorted(protocols.items())) or "–")
        + "</dd>",
        f"<dt>Page made</dt><dd>{_e(made)}</dd>",
        f"<dt>Software</dt><dd>rtcheck {_e(__version__)}</dd>",
        "</dl>",
        '<table id="counts"><thead><tr><th>Decision</th><th>Plans</th></tr></thead><tbody>',
    ]
    for decision in (
        Eligibility.EXCLUDED,
        Eligibility.INDETERMINATE,
        Eligibility.NOT_EXCLUDED,
        "error",
    ):
        colour, label = DECISIONS.get(decision, (COLOURS["absent"], "! ERROR"))
        parts.append(
            f'<tr data-decision="{decision}"><td style="color:{colour}; font-weight:bold">'
            f'{label}</td><td class="num">{counts.get(decision, 0)}</td></tr>'
        )
    parts += [
        "</tbody></table><h2>Plans</h2>",
        '<table id="plans"><thead><tr>',
        *(
            f'<th data-sort="{i}">{h}</th>'
            for i, h in enumerate(
                [
                    "Patient ID",
                    "Decision",
                    "Failed mandatory limits",
                    "Lesions",
                    "Checked",
                    "Report / error",
                ]
            )
        ),
        "</tr></thead><tbody>",
    ]
    for r in rows:
        decision = r["decision"] or r["status"]
        link = "–"
        if report_dir is not None and r["status"] == "ok":
            target = report_dir / report_name(r["patient_id"], r["plan_key"])
            if target.exists():
                href = _relative(target, page.parent)
                link = f'<a href="{_e(href)}">report</a>'
        if r["error"]:
            link = f'<span class="small">{_e(r["error"])}</span>'
        colour, label = DECISIONS.get(decision, (COLOURS["absent"], "! ERROR"))
        if r.get("kind") == "screen" and r["status"] == "ok":
            # A screen of the contours, never shown as a plan check.
            colour, label = COLOURS["absent"], f"SCREEN: {_e(decision)}"
        parts.append(
            f'<tr class="plan" data-decision="{_e(decision)}" data-patient="{_e(r["patient_id"])}">'
            f"<td>{_e(r['patient_id'])}</td>"
            f'<td class="verdict" style="color:{colour}; font-weight:bold">{label}</td>'
            f"<td>{_e(r['failed_mandatory'])}</td>"
            f'<td class="num">{_e(r["lesion_count"])}</td>'
            f"<td>{_e(str(r['checked_at'])[:16].replace('T', ' '))} UTC</td>"
            f"<td>{link}</td></tr>"
        )
    parts += [
        "</tbody></table><h2>Limits that fail most often</h2>",
        '<table id="failing"><thead><tr><th>Structure</th><th>Metric</th><th>Priority</th>'
        "<th>Plans failing</th></tr></thead><tbody>",
        *(
            f"<tr><td>{_e(f.structure)}</td><td>{_e(f.metric)}</td><td>{_e(f.priority)}</td>"
            f'<td class="num">{f.plans}</td></tr>'
            for f in failing
        ),
        f"</tbody></table><script>{_SORT_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _relative(target: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()
