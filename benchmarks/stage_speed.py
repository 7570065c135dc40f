"""Where a `rtcheck check` spends its time, stage by stage, and the whole process against
dicompyler-core, on the thorax phantom and on the clinical-size phantom, in one run.

Stages (exclusive times: a stage's time excludes the stages it calls; best of ``--repeat``
runs in this process, after one warm-up run that also pays the imports):

- read: pydicom reading the three files into datasets (``dcmread``);
- parse: everything else of ``load_plan`` (elements decoded, contour coordinates and the dose
  grid turned into arrays, the files linked and checked);
- masks: fractional occupancy of every ROI's sampling pixels (``Region.coverage``);
- DVH: the rest of ``compute_dvh`` (dose sampling, pooling, histogram);
- quality: the lesions' plan-quality indices beyond their DVHs (``lesion_quality``);
- metrics: reading the TG-263 metrics off the DVHs (``evaluate_metric``);
- limits: the rest of ``evaluate`` (matching names, regimes, grading, the decision);
- record: the eligibility record and the printed table.

The whole-process comparison runs ``python -m rtcheck check`` and a Python process that
imports dicompyler-core and calls its documented ``get_dvh`` on the file paths for every ROI
whose DVH the check computed (derived regions such as Lungs - PTV have no dicompyler-core
counterpart, and are left out of its work, which favours it). Both are run ``--processes``
times, alternating; the medians and their ratio are printed. Both share this machine's
interpreter and pydicom; the floor (interpreter, numpy, pydicom imported) is printed beside them.

Usage: python benchmarks/stage_speed.py [--repeat N] [--processes N] [--thorax-only]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STAGES = ("read", "parse", "masks", "DVH", "quality", "metrics", "limits", "record")


class StageClock:
    """Exclusive wall time per stage: time spent in a nested timed call is charged to the inner
    stage only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [stage, time.perf_counter(), 0.0]  # stage, start, time in nested stages
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[1]
                self.seconds[stage] += elapsed - frame[2]
                if self._stack:
                    self._stack[-1][2] += elapsed

        return timed


@contextlib.contextmanager
def instrumented(clock: StageClock, rois: set[str]) -> Iterator[None]:
    """Wrap each stage's function wherever rtcheck's modules hold it, and restore them after;
    ``rois`` gathers the names of the ROIs that the DVHs computed are made of."""
    import pydicom

    import rtcheck.dicom.plan
    import rtcheck.dvh.engine
    import rtcheck.dvh.metrics
    import rtcheck.dvh.quality
    import rtcheck.evaluation.eligibility
    import rtcheck.outputs.record
    import rtcheck.outputs.table
    from rtcheck.dvh.regions import Region

    engine = rtcheck.dvh.engine.compute_dvh

    def noting(structure: Any, *args: Any, **kwargs: Any) -> Any:
        parts = structure.plus if isinstance(structure, Region) else (structure,)
        rois.update(part.name for part in parts)
        return engine(structure, *args, **kwargs)

    originals: list[tuple[Any, Callable[..., Any]]] = [
        (pydicom.dcmread, clock.wrap("read", pydicom.dcmread)),
        (rtcheck.dicom.plan.load_plan, clock.wrap("parse", rtcheck.dicom.plan.load_plan)),
        (engine, clock.wrap("DVH", noting)),
        (
            rtcheck.dvh.quality.lesion_quality,
            clock.wrap("quality", rtcheck.dvh.quality.lesion_quality),
        ),
        (
            rtcheck.dvh.metrics.evaluate_metric,
            clock.wrap("metrics", rtcheck.dvh.metrics.evaluate_metric),
        ),
        (
            rtcheck.evaluation.eligibility.evaluate,
            clock.wrap("limits", rtcheck.evaluation.eligibility.evaluate),
        ),
        (
            rtcheck.outputs.record.eligibility_record,
            clock.wrap("record", rtcheck.outputs.record.eligibility_record),
        ),
        (
            rtcheck.outputs.table.check_table,
            clock.wrap("record", rtcheck.outputs.table.check_table),
        ),
    ]
    replaced: list[tuple[dict[str, Any], str, Any]] = []
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if not (name.startswith("rtcheck") or name == "__main__"):
            continue
        namespace = vars(module)
        for key, value in list(namespace.items()):
            for original, wrapper in originals:
                if value is original:
                    replaced.append((namespace, key, value))
                    namespace[key] = wrapper
    coverage = Region.coverage
    Region.coverage = clock.wrap("masks", coverage)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Region.coverage = coverage  # type: ignore[method-assign]
        for namespace, key, value in replaced:
            namespace[key] = value


def check_once(folder: Path) -> None:
    """One `rtcheck check` in this process, its output discarded."""
    from rtcheck.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["check", str(folder)])


def stage_times(folder: Path, repeat: int) -> tuple[dict[str, float], float, list[str]]:
    """Best run's stage times (s) and total (s), and the ROIs the check's DVHs were made of."""
    check_once(folder)  # imports and warm-up
    best: tuple[dict[str, float], float] = ({}, float("inf"))
    rois: set[str] = set()
    for _ in range(repeat):
        clock = StageClock()
        with instrumented(clock, rois):
            start = time.perf_counter()
            check_once(folder)
            total = time.perf_counter() - start
        if total < best[1]:
            best = (dict(clock.seconds), total)
    return best[0], best[1], sorted(rois)


DICOMPYLER_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.dicompyler_reference import dicompyler_dvh
for number in {numbers!r}:
    dicompyler_dvh({rtstruct!r}, {rtdose!r}, number)
"""

FLOOR_SCRIPT = "import numpy, pydicom, pydicom.dataset"


def whole_processes(folder: Path, names: list[str], runs: int) -> dict[str, float]:
    """Median wall time (s) of whole processes: rtcheck check, dicompyler-core on the same ROIs,
    and the floor; run in turn."""
    import pydicom

    compileall.compile_dir(str(ROOT / "src" / "rtcheck"), quiet=1)
    rtstruct = next(folder.glob("RS*.dcm"))
    rois = {r.ROIName: int(r.ROINumber) for r in pydicom.dcmread(rtstruct).StructureSetROISequence}
    numbers = sorted({rois[n] for n in names if n in rois})
    script = DICOMPYLER_SCRIPT.format(
        root=str(ROOT),
        rtstruct=str(rtstruct),
        rtdose=str(next(folder.glob("RD*.dcm"))),
        numbers=numbers,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    commands = {
        "rtcheck check": [sys.executable, "-m", "rtcheck", "check", str(folder)],
        "dicompyler-core": [sys.executable, "-c", script],
        "floor": [sys.executable, "-c", FLOOR_SCRIPT],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for key, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=False)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def clinical_phantom() -> Path:
    """The clinical-size phantom, written once into the temporary folder (about 30 MB)."""
    from rtcheck.phantom.thorax import CLINICAL, write_thorax_phantom

    folder = Path(tempfile.gettempdir()) / "rtcheck-clinical-phantom"
    if not (folder / "RD.thorax.dcm").is_file():
        write_thorax_phantom(folder, CLINICAL)
    return folder


def report(label: str, folder: Path, repeat: int, processes: int) -> None:
    stages, total, names = stage_times(folder, repeat)
    print(f"\n{label}: {folder}")
    print(f"  ROIs the DVHs are made of: {len(names)} ({', '.join(names)})")
    print(f"  {'stage':10s} {'seconds':>8s} {'share':>7s}")
    for stage in STAGES:
        seconds = stages.get(stage, 0.0)
        print(f"  {stage:10s} {seconds:8.3f} {100 * seconds / total:6.1f}%")
    rest = total - sum(stages.values())
    print(f"  {'other':10s} {rest:8.3f} {100 * rest / total:6.1f}%  (command line, protocol file)")
    print(f"  {'in-process':10s} {total:8.3f}  (best of {repeat}, imports already paid)")
    if processes <= 0:
        return
    whole = whole_processes(folder, names, processes)
    ours, theirs, floor = whole["rtcheck check"], whole["dicompyler-core"], whole["floor"]
    print(f"  whole processes (median of {processes}, in turn):")
    print(f"    rtcheck check     {ours:7.3f} s")
    print(f"    dicompyler-core   {theirs:7.3f} s  ratio {theirs / ours:6.2f}x  (DVHs only)")
    print(f"    floor             {floor:7.3f} s  (interpreter + numpy + pydicom imported);"
          f" rtcheck's own share {ours - floor:.3f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--thorax-only", action="store_true", help="leave out the clinical size")
    args = parser.parse_args()
    from rtcheck.runtime import keep_freed_memory, one_blas_thread

    # As the rtcheck command does.
    keep_freed_memory()
    one_blas_thread()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs,"
          f" Python {platform.python_version()}")  # fmt: skip
    report("thorax phantom", ROOT / "phantom_data" / "thorax", args.repeat, args.processes)
    if not args.thorax_only:
        report("clinical-size phantom", clinical_phantom(), args.repeat, args.processes)


if __name__ == "__main__":
    main()
