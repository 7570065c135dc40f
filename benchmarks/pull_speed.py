"""How fast `rtcheck pull` turns a PACS's plans into stored decisions, against `rtcheck batch`
on the same files from a local folder (the reference, in the same run).

Starts Orthanc (Debian's package) on free loopback ports with a throw-away configuration,
uploads ``--plans`` distinct phantom plans, then times, each as a whole command:

- `rtcheck pull` into an empty storage folder and database (C-FIND, C-GET, then the checks);
- `rtcheck pull` again (nothing new: the queries only);
- `rtcheck batch` on the plans' files into an empty database (no network).

Orthanc is run twice: as installed, and with ``TCP_NODELAY=1`` in its environment, which makes
its DICOM toolkit (DCMTK) send without Nagle's algorithm. As installed, each of its replies
waits for the delayed acknowledgement of the one before (about 40 ms on Linux), and a pull
makes one query per series.

Usage: python benchmarks/pull_speed.py [--plans N] [--workers N]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom  # noqa: E402
from tests.network.peers import ORTHANC, Orthanc  # noqa: E402


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rtcheck.cli", *args], check=True,
                   capture_output=True, timeout=3600)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if ORTHANC is None:
        sys.exit("Orthanc is not installed (apt-get install orthanc)")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; "
          f"{args.plans} phantom plans (3 objects each), {args.workers} workers")  # fmt: skip
    workers = ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.plans):
            out = folder / "plans" / f"p{i}"
            write_thorax_phantom(out, ThoraxPhantom(seed=f"pull-{i}", patient_id=f"PS-{i:03d}"))
        batch = timed("batch", str(folder / "plans"), "--db", str(folder / "batch.db"), *workers)
        print(
            f"batch on the files:        {batch:5.1f} s, {60 * args.plans / batch:4.0f} plans/min"
        )
        for label, env in (("as installed", {}), ("TCP_NODELAY=1", {"TCP_NODELAY": "1"})):
            run = folder / label.replace(" ", "-")
            pacs = Orthanc(run / "orthanc", {"rtcheck": "RTCHECK"}, env)
            try:
                pacs.upload(*sorted((folder / "plans").rglob("*.dcm")))
                pull = ("pull", "--pacs", pacs.address, "--storage", str(run / "pulled"),
                        "--db", str(run / "pull.db"), *workers)  # fmt: skip
                pulled, again = timed(*pull), timed(*pull)
            finally:
                pacs.stop()
            print(f"pull, Orthanc {label + ':':14} {pulled:5.1f} s, "
                  f"{60 * args.plans / pulled:4.0f} plans/min, {pulled / batch:.2f} x batch; "
                  f"again (nothing new) {again:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
