"""DVH results as JSON-ready data, CSV rows and a terminal table."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from rtcheck import __version__
from rtcheck.dicom.plan import Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dvh.plandvh import StructureDVH
from rtcheck.numbers import json_number
from rtcheck.outputs import cells


def dvh_document(
    plan: Plan, results: Sequence[StructureDVH], end_caps: EndCaps = EndCaps.HALF_SLAB
) -> dict[str, Any]:
    """The ``rtcheck dvh --json`` document. Holds UIDs, never the patient's name."""
    doses = []
    for dose in plan.doses:
        doses.append(
            {
                "label": dose.label,
                "plan_sop_instance_uid": dose.plan.sop_instance_uid if dose.plan else None,
                "summation_type": dose.grid.summation_type,
                "per_fraction": dose.per_fraction,
                "fractions": dose.plan.fractions if dose.plan else None,
                "prescription_gy": dose.plan.prescription_gy if dose.plan else None,
                "rtdose_sop_instance_uids": list(dose.source_uids),
                "max_gy": json_number(dose.grid.max_gy),
            }
        )
    structures = []
    for r in results:
        dvh = r.dvh
        structures.append(
            {
                "name": r.structure.name,
                "roi_number": r.structure.number,
                "interpreted_type": r.structure.interpreted_type,
                "dose": r.dose.label,
                "empty": dvh is None,
                "volume_cc": json_number(dvh.volume_cc) if dvh else 0.0,
                "volume_in_grid_cc": json_number(dvh.volume_in_grid_cc) if dvh else 0.0,
                "dose_coverage": json_number(dvh.dose_coverage, 6) if dvh else None,
                "metrics": {k: json_number(v) for k, v in r.metrics.items()},
                "warnings": list(r.warnings),
            }
        )
    return {
        "rtcheck_version": __version__,
        "study_instance_uid": plan.study_instance_uid,
        "rtstruct_sop_instance_uid": plan.structure_set.sop_instance_uid,
        "end_caps": end_caps.value,
        "doses": doses,
        "structures": structures,
        "warnings": list(plan.warnings),
    }


def dvh_csv(results: Sequence[StructureDVH]) -> str:
    """One CSV row per structure and dose set."""
    metric_names = list(results[0].metrics) if results else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["structure", "dose", "volume_cc", "dose_coverage", *metric_names])
    for r in results:
        dvh = r.dvh
        writer.writerow(
            cells.row(
                [
                    r.structure.name,
                    r.dose.label,
                    "" if dvh is None else f"{dvh.volume_cc:.4f}",
                    "" if dvh is None else f"{dvh.dose_coverage:.6f}",
                    *(
                        "" if not math.isfinite(r.metrics[m]) else f"{r.metrics[m]:.4f}"
                        for m in metric_names
                    ),
                ]
            )
        )
    return out.getvalue()


def dvh_table(results: Sequence[StructureDVH]) -> str:
    """A fixed-width table for the terminal, one block per dose set."""
    if not results:
        return "no structures\n"
    metric_names = list(results[0].metrics)
    header = ["Structure", "Volume cc", "In grid", *metric_names]
    lines: list[str] = []
    for label in dict.fromkeys(r.dose.label for r in results):
        rows = []
        for r in (r for r in results if r.dose.label == label):
            dvh = r.dvh
            rows.append(
                [
                    r.structure.name,
                    "empty" if dvh is None else f"{dvh.volume_cc:.2f}",
                    "" if dvh is None else f"{100 * dvh.dose_coverage:.1f}%",
                    *(
                        "-" if not math.isfinite(r.metrics[m]) else f"{r.metrics[m]:.2f}"
                        for m in metric_names
                    ),
                ]
            )
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append(f"Dose: {label}")
        lines.append(
            "  ".join(
                h.ljust(w) if i == 0 else h.rjust(w)
                for i, (h, w) in enumerate(zip(header, widths, strict=True))
            )
        )
        for row in rows:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        lines.append("")
    return "\n".join(lines)
