"""What stereotactic lesion review costs: `rtcheck check` on a lesions-only plan of 5 lesions
(35 Gy in 5 fractions, the phantom with ``--no-primary --lesions 5``), with and without the
review's additions, timed in one process, alternating.

- without: the bundled protocol without its plan-quality limits (RTOG 0813/0915 Table 1);
- with: the bundled protocol, plus two PRVs (cord and esophagus grown by 5 mm) and a ring
  around every PTV (grown 20 mm minus grown 2 mm, clipped to the body), each with a limit.

Loading the plan, every DVH, the indices and the decision are timed (one ``evaluate`` on a plan
loaded afresh each run); the best of ``--repeat`` runs is kept, and the ratio printed.

Usage: python benchmarks/check_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rtcheck.dicom.plan import load_plan  # noqa: E402
from rtcheck.dvh.indices import INDICES  # noqa: E402
from rtcheck.evaluation.eligibility import evaluate  # noqa: E402
from rtcheck.phantom.thorax import (  # noqa: E402
    DEFAULT_LESIONS,
    MORE_LESIONS,
    ThoraxPhantom,
    write_thorax_phantom,
)
from rtcheck.protocol.definition import load_protocol  # noqa: E402
from rtcheck.runtime import keep_freed_memory, one_blas_thread  # noqa: E402


def protocols(folder: Path) -> tuple[Path, Path]:
    bundled = yaml.safe_load(Path(load_protocol().path).read_text())
    without = copy.deepcopy(bundled)
    without["lesions"]["coverage"] = [
        e for e in without["lesions"]["coverage"] if e["metric"] not in INDICES
    ]
    with_all = copy.deepcopy(bundled)
    with_all["derived"].update({
        "SpinalCord_PRV05": {"union": ["SpinalCord + 5"]},
        "Esophagus_PRV05": {"union": ["Esophagus + 5"]},
        "Ring_PTVs": {"union": ["PTVs + 20"], "minus": ["PTVs + 2"], "within": "External"},
    })  # fmt: skip
    for name, metric, bound in (
        ("SpinalCord_PRV05", "D0.03cc[Gy]", "<= 30"),
        ("Esophagus_PRV05", "D0.03cc[Gy]", "<= 35"),
        ("Ring_PTVs", "Max[Gy]", "<= 35"),
    ):
        with_all["oar_limits"]["limits"].append(
            {"structure": name, "metric": metric, "limit": bound, "priority": "optimal",
             "source": "benchmark", "regime": "stereotactic"}
        )  # fmt: skip
    paths = folder / "without.yaml", folder / "with.yaml"
    for path, document in zip(paths, (without, with_all), strict=True):
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    one_blas_thread()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lesions = (*DEFAULT_LESIONS, *MORE_LESIONS)
        phantom = ThoraxPhantom(
            prescription_gy=35.0, fractions=5, primary=False, lesions=lesions, seed="bench-5"
        )
        write_thorax_phantom(folder / "plan", phantom)
        without, with_all = (load_protocol(str(p)) for p in protocols(folder))
        times: dict[str, list[float]] = {"without": [], "with": []}
        results = {}
        for _ in range(args.repeat):
            for name, protocol in (("without", without), ("with", with_all)):
                start = time.perf_counter()
                evaluation = evaluate(load_plan([folder / "plan"]), protocol)
                times[name].append(time.perf_counter() - start)
                results[name] = evaluation
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()}")  # fmt: skip
    for name in ("without", "with"):
        e = results[name]
        print(f"{name:8s} best {min(times[name]):.2f} s of {args.repeat}; {len(e.limits)} limits, "
              f"decision {e.decision.decision}")  # fmt: skip
    print(f"ratio with / without: {min(times['with']) / min(times['without']):.2f}")


if __name__ == "__main__":
    main()
