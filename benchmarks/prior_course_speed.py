"""What an earlier course adds to `rtcheck check`, on the clinical-size phantom.

The earlier course is the phantom's own dose and plan copied into another frame of reference
(another study, planned a year before) and related to the plan by a rigid Spatial Registration
(a 5° turn about z and a (12, -8, 6) mm shift). The protocol is the bundled re-irradiation
example. Timed in one process, alternating, best of ``--repeat``: the check without the earlier
course (the example protocol, whose cumulative limits then do not apply) and with it; and the
resampling of the earlier dose alone. Whole processes are printed with ``--processes N``.

Usage: python benchmarks/prior_course_speed.py [--repeat N] [--processes N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from rtcheck.cli import main as rtcheck_main  # noqa: E402
from rtcheck.phantom import synthetic as S  # noqa: E402
from tests.registration_factory import rigid_reg, rotation_z  # noqa: E402

PROTOCOL = "eso-oligo-rt-reirradiation-example"


def clinical_phantom() -> Path:
    from rtcheck.phantom.thorax import CLINICAL, write_thorax_phantom

    folder = Path(tempfile.gettempdir()) / "rtcheck-clinical-phantom"
    if not (folder / "RD.thorax.dcm").is_file():
        write_thorax_phantom(folder, CLINICAL)
    return folder


def earlier_course(plan: Path, work: Path) -> tuple[Path, Path]:
    """The plan's dose and RTPLAN as an earlier course in another frame, and the REG."""
    course = work / "earlier"
    course.mkdir(parents=True, exist_ok=True)
    frame, study = S.uid("bench-earlier", "frame"), S.uid("bench-earlier", "study")
    for name in ("RD.thorax.dcm", "RP.thorax.dcm"):
        ds = pydicom.dcmread(plan / name)
        ds.FrameOfReferenceUID, ds.StudyInstanceUID = frame, study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = S.uid("bench", name)
        if name.startswith("RP"):
            ds.RTPlanDate = "20250101"
        else:
            ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = S.uid(
                "bench", "RP.thorax.dcm"
            )
        ds.save_as(course / name)
    structures = pydicom.dcmread(plan / "RS.thorax.dcm")
    current = str(structures.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    patient = S.Patient(patient_id=str(structures.PatientID))
    current_to_earlier = rotation_z(5.0, (12.0, -8.0, 6.0))
    items = [(current, np.eye(4)), (frame, np.linalg.inv(current_to_earlier))]
    reg = rigid_reg(work / "reg.dcm", patient, current, items)
    return course, reg


def check(*args: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        rtcheck_main(["check", *args])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=0)
    args = parser.parse_args()
    from rtcheck.runtime import keep_freed_memory, one_blas_thread

    keep_freed_memory()
    one_blas_thread()
    plan = clinical_phantom()
    work = Path(tempfile.mkdtemp(prefix="rtcheck-prior-"))
    course, reg = earlier_course(plan, work)
    alone = [str(plan), "--protocol", PROTOCOL]
    summed = [*alone, "--prior", str(course), "--registration", str(reg)]
    check(*summed)  # imports and warm-up
    best = {"alone": float("inf"), "summed": float("inf")}
    for _ in range(args.repeat):
        for key, arguments in (("alone", alone), ("summed", summed)):
            start = time.perf_counter()
            check(*arguments)
            best[key] = min(best[key], time.perf_counter() - start)

    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.prior import load_earlier_course, place
    from rtcheck.dicom.registration import read_registration
    from rtcheck.dicom.resample import resample

    loaded = load_plan([plan])
    earlier = load_earlier_course([course], loaded)
    placement = place(earlier, loaded, [read_registration(reg)])
    start = time.perf_counter()
    resample(earlier.dose, loaded.doses[0].grid, placement.point_map)
    resampling = time.perf_counter() - start
    points = int(np.prod(loaded.doses[0].grid.shape))

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"clinical-size phantom, protocol {PROTOCOL}; best of {args.repeat}, one process:")
    added = best["summed"] - best["alone"]
    print(f"  check alone                   {best['alone']:.3f} s")
    print(f"  check with the earlier course {best['summed']:.3f} s  (+{added:.3f} s)")
    print(f"  of which resampling {points / 1e6:.1f} M dose points  {resampling:.3f} s")
    if args.processes:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        runs: dict[str, list[float]] = {"alone": [], "summed": []}
        for _ in range(args.processes):
            for key, arguments in (("alone", alone), ("summed", summed)):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "rtcheck", "check", *arguments],
                    stdout=subprocess.DEVNULL, env=env, check=False,
                )  # fmt: skip
                runs[key].append(time.perf_counter() - start)
        a, s = (statistics.median(runs[k]) for k in ("alone", "summed"))
        print(f"  whole processes (median of {args.processes}): {a:.3f} s alone, {s:.3f} s with it")


if __name__ == "__main__":
    main()
