"""The stored plans as a terminal table, grouped by patient: what ``rtcheck results`` prints
on a terminal (CSV and JSON are in :mod:`rtcheck.archive.batch`)."""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

#: Columns the table fits in.
WIDTH = 100
#: Characters of a plan's folder shown; a longer one keeps its end, which tells plans apart.
FOLDER_CHARS = 28
_HEADER = ("Patient", "Decision", "Lesions", "Checked (UTC)", "Folder", "Failed mandatory")


def results_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """One line per stored plan, grouped by patient (each patient's ID once), the newest check
    last; failed mandatory limits or the error wrap in the last column. Then the counts."""
    plans = sorted(rows, key=lambda r: (str(r.get("patient_id") or ""), str(r["checked_at"])))
    if not plans:
        return "no plans stored\n"
    cells = []
    previous = None
    for r in plans:
        patient = str(r.get("patient_id") or "(none)")
        decision = "error" if r.get("status") == "error" else str(r.get("decision") or "-")
        if r.get("kind") == "screen" and decision != "error":
            decision = f"screen: {decision}"  # never shown as a plan check's
        detail = r.get("error") if decision == "error" else r.get("failed_mandatory")
        cells.append(
            [
                patient if patient != previous else "",
                decision,
                "-" if r.get("lesion_count") is None else str(r["lesion_count"]),
                str(r["checked_at"])[:16].replace("T", " "),
                _folder(r.get("files")),
                str(detail or "-"),
            ]
        )
        previous = patient
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_HEADER[:-1])]
    left = sum(widths) + 2 * len(widths)
    last = max(len(_HEADER[-1]), WIDTH - left)
    lines = [_join(list(_HEADER), widths)]
    for c in cells:
        if c[0] and len(lines) > 1:
            lines.append("")
        detail = textwrap.wrap(c[-1], last, break_on_hyphens=False) or [""]
        lines.append(_join([*c[:-1], detail[0]], widths))
        lines += [" " * left + more for more in detail[1:]]
    counts = Counter(c[1] for c in cells)
    patients = len({str(r.get("patient_id") or "(none)") for r in plans})
    shown = ", ".join(f"{n} {d}" for d, n in sorted(counts.items()))
    lines += ["", f"{len(plans)} plans of {patients} patients: {shown}"]
    return "\n".join(lines) + "\n"


def _folder(files: object) -> str:
    try:
        paths = json.loads(str(files)) if files else []
    except ValueError:
        paths = []
    if not paths:
        return "-"
    try:
        folder = os.path.commonpath([os.path.dirname(str(p)) for p in paths]) or "."
    except ValueError:  # absolute and relative paths mixed
        folder = os.path.dirname(str(paths[0]))
    return folder if len(folder) <= FOLDER_CHARS else "…" + folder[-(FOLDER_CHARS - 1) :]


def _join(cells: list[str], widths: list[int]) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, widths, strict=False)]
    return "  ".join([*padded, *cells[len(widths) :]]).rstrip()
