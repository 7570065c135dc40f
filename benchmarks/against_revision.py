"""This tree's loading and DVHs against another revision's, in one process, in turn.

On a shared machine whose speed wanders by a quarter within an hour, whole processes of two
versions run in turn still differ by more than the changes worth measuring (a few per cent).
This benchmark takes the ``rtcheck`` package of a git revision (``--against``, by default the
parent commit), imports it beside this tree's under another name, and alternates the two in
the same process: each round loads the plan and computes the DVH of every ROI ``rtcheck dvh``
computes by default, once with each version, in the order of the round (old first in even
rounds). It prints the median and best time of each stage and version, their ratio, and the
largest difference between the two versions' DVHs (volume, mean, and any bin of the
differential histogram), so that a change meant to be bit for bit the same can be seen to be.

Both run with the allocator setting and the one BLAS thread that the ``rtcheck`` command
applies. The first round pays each version's first-call costs and is left out.

Usage: python benchmarks/against_revision.py [--against REV] [--rounds N] [--clinical]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rtcheck.runtime import keep_freed_memory, one_blas_thread  # noqa: E402

#: The name the other revision's package is imported under.
OTHER = "rtcheck_other"


def other_package(revision: str, into: Path) -> None:
    """Write ``src/rtcheck`` of ``revision`` into ``into`` as the package :data:`OTHER`, its
    absolute imports of ``rtcheck`` renamed."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src/rtcheck"],
        capture_output=True,
    )
    if found.returncode != 0:
        message = found.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(
            f"against_revision: {revision!r}: {message[-1] if message else 'no such revision'}"
        )
    archive = found.stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    source = into / "src" / "rtcheck"
    target = into / OTHER
    source.rename(target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = text.replace("from rtcheck.", f"from {OTHER}.").replace(
            "import rtcheck.", f"import {OTHER}."
        )
        text = text.replace("from rtcheck import", f"from {OTHER} import")
        path.write_text(text)


def stages(package: str) -> tuple[Any, Any, Any]:
    """The version's ``load_plan``, ``select_structures`` and ``compute_dvh``."""
    plan: ModuleType = importlib.import_module(f"{package}.dicom.plan")
    plandvh: ModuleType = importlib.import_module(f"{package}.dvh.plandvh")
    engine: ModuleType = importlib.import_module(f"{package}.dvh.engine")
    return plan.load_plan, plandvh.select_structures, engine.compute_dvh


def one_round(package: str, folder: Path) -> tuple[float, float, list[Any]]:
    """Seconds to load the plan and to compute its DVHs with ``package``, and the DVHs."""
    load_plan, select_structures, compute_dvh = stages(package)
    start = time.perf_counter()
    plan = load_plan([folder])
    loaded = time.perf_counter()
    grid = plan.doses[0].grid
    dvhs = [compute_dvh(s, grid) for s in select_structures(plan, [])]
    return loaded - start, time.perf_counter() - loaded, dvhs


def largest_difference(ours: list[Any], theirs: list[Any]) -> float:
    """The largest difference between two lists of DVHs: volume (cc), mean (Gy) and any bin of
    the differential histograms (cc); inf where their bins differ in number."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        if len(a.differential_cc) != len(b.differential_cc):
            return float("inf")
        worst = max(
            worst,
            abs(a.volume_cc - b.volume_cc),
            abs(a.mean_gy - b.mean_gy),
            float(np.max(np.abs(a.differential_cc - b.differential_cc), initial=0.0)),
        )
    return worst


def report(folder: Path, rounds: int) -> None:
    times: dict[str, dict[str, list[float]]] = {
        name: {"load": [], "dvh": []} for name in ("rtcheck", OTHER)
    }
    difference = 0.0
    for r in range(rounds + 1):
        order = ("rtcheck", OTHER) if r % 2 else (OTHER, "rtcheck")
        results = {}
        for name in order:
            load, dvh, results[name] = one_round(name, folder)
            if r > 0:
                times[name]["load"].append(load)
                times[name]["dvh"].append(dvh)
        difference = max(difference, largest_difference(results["rtcheck"], results[OTHER]))
    print(f"{folder}: {rounds} rounds, medians (best)")
    for stage in ("load", "dvh"):
        ours, theirs = times["rtcheck"][stage], times[OTHER][stage]
        print(
            f"  {stage:5s} this tree {statistics.median(ours):.4f} s ({min(ours):.4f})   "
            f"other {statistics.median(theirs):.4f} s ({min(theirs):.4f})   "
            f"ratio {statistics.median(ours) / statistics.median(theirs):.3f}"
        )
    print(f"  largest difference between the two versions' DVHs: {difference:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision (default HEAD~1)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clinical", action="store_true", help="the clinical-size phantom too")
    args = parser.parse_args()
    keep_freed_memory()
    one_blas_thread()
    with tempfile.TemporaryDirectory() as tmp:
        other_package(args.against, Path(tmp))
        sys.path.insert(0, tmp)
        print(
            f"this tree against {args.against}; machine: {platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        report(ROOT / "phantom_data" / "thorax", args.rounds)
        if args.clinical:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from stage_speed import clinical_phantom

            report(clinical_phantom(), args.rounds)


if __name__ == "__main__":
    main()
