"""Speed and accuracy of rtcheck's DVH engine against dicompyler-core, measured in one run.

Both engines compute the DVH of every ROI of the bundled thorax phantom (the body outline
included, or not with --no-body) from the DICOM files, loading included:

- rtcheck: ``load_plan`` then ``compute_dvh`` for each ROI;
- dicompyler-core, as its documentation shows it: plain ``get_dvh("rtss.dcm", "rtdose.dcm", roi)``
  for each ROI, which reads both files on every call;
- dicompyler-core, helped: ``dcmread`` of the RTSTRUCT and RTDOSE once, then ``get_dvh`` on the
  datasets for each ROI (its best case).

Each is timed ``--repeat`` times and the best run is kept. With ``--processes N``, both are also
timed as whole operating-system processes, N times each, alternating: ``python -m rtcheck dvh``
with every ROI named (interpreter start, imports, loading, DVHs, metrics and the printed table)
against a Python process that imports dicompyler-core and calls ``get_dvh`` on the file paths
for every ROI. rtcheck's modules are byte-compiled first, as an installed package is (this
matters where PYTHONDONTWRITEBYTECODE is set and the package is an editable install).

The process runs with the allocator setting that the ``rtcheck`` command applies
(``rtcheck.runtime.keep_freed_memory``), which both engines then share. Accuracy is measured
against the exact contoured volume (shoelace areas times slab thickness) and against a dense
independent reference (``tests/dense_reference.py``) for Mean, D98%, D95%, D50%, D2% and D0.03cc.

With ``--clinical`` the same is done on the clinical-size phantom (``rtcheck phantom --clinical``:
a 1.5 mm dose grid over the whole thorax, contours every 1.25 mm with several hundred points);
``--no-reference`` times rtcheck alone (dicompyler-core takes minutes on that plan).

Usage: python benchmarks/dvh_speed.py [--repeat N] [--processes N] [--no-body] [--no-accuracy]
                                      [--clinical] [--no-reference]
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtcheck.dicom.plan import load_plan  # noqa: E402
from rtcheck.dvh.engine import compute_dvh  # noqa: E402
from rtcheck.dvh.metrics import evaluate_metric  # noqa: E402
from rtcheck.runtime import keep_freed_memory, one_blas_thread  # noqa: E402
from tests.dense_reference import dense_dvh  # noqa: E402
from tests.dicompyler_reference import dicompyler_dvh  # noqa: E402
from tests.truth import polygon_area  # noqa: E402

PHANTOM = ROOT / "phantom_data" / "thorax"
METRICS = ("D98%", "D95%", "D50%", "D2%")


def run_rtcheck(folder: Path, names: list[str]) -> dict[str, object]:
    plan = load_plan([folder])
    grid = plan.doses[0].grid
    return {n: compute_dvh(plan.structure_set.by_name(n), grid) for n in names}


def run_dicompyler(folder: Path, numbers: dict[str, int]) -> dict[str, object]:
    rtstruct = pydicom.dcmread(next(folder.glob("RS*.dcm")))
    rtdose = pydicom.dcmread(next(folder.glob("RD*.dcm")))
    return {n: dicompyler_dvh(rtstruct, rtdose, number) for n, number in numbers.items()}


def run_dicompyler_paths(folder: Path, numbers: dict[str, int]) -> dict[str, object]:
    rtstruct = str(next(folder.glob("RS*.dcm")))
    rtdose = str(next(folder.glob("RD*.dcm")))
    return {n: dicompyler_dvh(rtstruct, rtdose, number) for n, number in numbers.items()}


DICOMPYLER_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import pydicom
from tests.dicompyler_reference import dicompyler_dvh
rtstruct, rtdose = {rtstruct!r}, {rtdose!r}
for number in {numbers!r}:
    dvh = dicompyler_dvh(rtstruct, rtdose, number)
    print(dvh.name, round(dvh.volume, 2), round(dvh.mean, 3))
"""


def time_processes(
    folder: Path, names: list[str], numbers: list[int], runs: int
) -> tuple[float, float]:
    """Best wall time (s) of whole rtcheck and dicompyler-core processes, run alternately."""
    compileall.compile_dir(str(ROOT / "src" / "rtcheck"), quiet=1)
    ours = [sys.executable, "-m", "rtcheck", "dvh", str(folder)]
    ours += [arg for name in names for arg in ("--structure", name)]
    script = DICOMPYLER_SCRIPT.format(
        root=str(ROOT),
        rtstruct=str(next(folder.glob("RS*.dcm"))),
        rtdose=str(next(folder.glob("RD*.dcm"))),
        numbers=numbers,
    )
    theirs = [sys.executable, "-c", script]
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for i, command in enumerate((ours, theirs)):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def clinical_phantom() -> Path:
    """The clinical-size phantom, written once into the temporary folder (about 30 MB)."""
    from rtcheck.phantom.thorax import CLINICAL, write_thorax_phantom

    folder = Path(tempfile.gettempdir()) / "rtcheck-clinical-phantom"
    if not (folder / "RD.thorax.dcm").is_file():
        write_thorax_phantom(folder, CLINICAL)
    return folder


def best_time(fn, repeat: int) -> tuple[float, dict[str, object]]:
    best, result = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=0, help="also time N whole processes of each"
    )
    parser.add_argument("--no-body", action="store_true", help="leave out the body outline")
    parser.add_argument("--no-accuracy", action="store_true", help="time only")
    parser.add_argument(
        "--clinical",
        action="store_true",
        help="on the clinical-size phantom (rtcheck phantom --clinical), written once into "
        "the temporary folder",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="time rtcheck only (no dicompyler-core)"
    )
    args = parser.parse_args()
    # As the rtcheck command does; it applies to both engines, which share this process.
    keep_freed_memory()
    one_blas_thread()

    folder = clinical_phantom() if args.clinical else PHANTOM
    plan = load_plan([folder])
    structures = [s for s in plan.structure_set.structures if not (args.no_body and s.is_external)]
    names = [s.name for s in structures]
    numbers = {s.name: s.number for s in structures}

    t_rtcheck, ours = best_time(lambda: run_rtcheck(folder, names), args.repeat)
    print(f"ROIs: {len(names)} ({'without' if args.no_body else 'with'} the body outline)"
          f" of {folder}")  # fmt: skip
    print(f"rtcheck                      {t_rtcheck:7.3f} s  (load_plan + compute_dvh)")
    if args.no_reference:
        return
    run_dicompyler(folder, {names[0]: numbers[names[0]]})  # import and warm up outside timing
    t_dicompyler, theirs = best_time(lambda: run_dicompyler(folder, numbers), args.repeat)
    t_paths, _ = best_time(lambda: run_dicompyler_paths(folder, numbers), args.repeat)
    print(f"dicompyler-core, documented  {t_paths:7.3f} s  (get_dvh(file paths) per ROI)"
          f"  ratio {t_paths / t_rtcheck:5.2f}x")  # fmt: skip
    print(f"dicompyler-core, helped      {t_dicompyler:7.3f} s  (dcmread once + get_dvh)"
          f"      ratio {t_dicompyler / t_rtcheck:5.2f}x")  # fmt: skip
    print(f"(best of {args.repeat} runs each, same process, same files)")
    if args.processes > 0:
        ours_s, theirs_s = time_processes(folder, names, list(numbers.values()), args.processes)
        print(f"whole processes: rtcheck {ours_s:.3f} s, dicompyler-core {theirs_s:.3f} s,"
              f" ratio {theirs_s / ours_s:5.2f}x  (best of {args.processes} each, alternating;"
              " interpreter, imports, loading, DVHs and output)")  # fmt: skip
    if args.no_accuracy:
        return

    grid = plan.doses[0].grid
    print()
    header = f"{'ROI':14s} {'exact cc':>9s} {'vol err rtcheck':>16s} {'dicompyler':>11s}"
    header += f" {'max dose err rtcheck (Gy)':>26s} {'dicompyler':>11s}"
    print(header)
    worst = {"ours_v": 0.0, "theirs_v": 0.0, "ours_d": 0.0, "theirs_d": 0.0}
    for s in structures:
        if s.is_external:
            continue  # the dense reference of the body outline takes minutes
        exact = (
            sum(
                (polygon_area(p.polygons[0]) - sum(polygon_area(h) for h in p.polygons[1:]))
                * (p.top_mm - p.bottom_mm)
                for p in s.planes
            )
            / 1000
        )
        reference = dense_dvh(s, grid)
        mine, other = ours[s.name], theirs[s.name]
        ours_v = 100 * (mine.volume_cc / exact - 1)  # type: ignore[attr-defined]
        theirs_v = 100 * (other.volume / exact - 1)  # type: ignore[attr-defined]
        ours_d = [abs(mine.mean_gy - reference.mean)]  # type: ignore[attr-defined]
        theirs_d = [abs(other.mean - reference.mean)]  # type: ignore[attr-defined]
        for m in METRICS:
            truth = reference.dose_at_percent(float(m[1:-1]))
            ours_d.append(abs(evaluate_metric(f"{m}[Gy]", mine) - truth))  # type: ignore[arg-type]
            theirs_d.append(abs(getattr(other, m.replace("%", "")).value - truth))
        truth = reference.dose_at_volume(0.03)
        ours_d.append(abs(evaluate_metric("D0.03cc[Gy]", mine) - truth))  # type: ignore[arg-type]
        theirs_d.append(abs(other.statistic("D0.03cc").value - truth))  # type: ignore[attr-defined]
        row = f"{s.name:14s} {exact:9.2f} {ours_v:+15.2f}% {theirs_v:+10.2f}%"
        row += f" {max(ours_d):26.3f} {max(theirs_d):11.3f}"
        print(row)
        worst["ours_v"] = max(worst["ours_v"], abs(ours_v))
        worst["theirs_v"] = max(worst["theirs_v"], abs(theirs_v))
        worst["ours_d"] = max(worst["ours_d"], max(ours_d))
        worst["theirs_d"] = max(worst["theirs_d"], max(theirs_d))
    print()
    print(
        f"worst volume error: rtcheck {worst['ours_v']:.2f}%, dicompyler-core "
        f"{worst['theirs_v']:.2f}%; worst dose-metric error: rtcheck {worst['ours_d']:.3f} Gy, "
        f"dicompyler-core {worst['theirs_d']:.3f} Gy"
    )


if __name__ == "__main__":
    main()
