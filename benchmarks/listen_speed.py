"""How fast `rtcheck listen` turns received plans into stored decisions, over loopback.

Starts `rtcheck listen` (settle time ``--settle``), then sends ``--plans`` distinct phantom plans
one after another with dcmtk's storescu (one association per plan), and measures:

- for each plan, the time from the end of its transfer to its decision in the database;
- plans received and checked per minute, from the first transfer to the last decision.

The settle time is part of the latency by design (the listener waits for a plan's objects to stop
arriving); it is printed beside the figures.

Usage: python benchmarks/listen_speed.py [--plans N] [--settle S]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rtcheck.archive.store import open_store, plan_rows  # noqa: E402
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stored(db: Path) -> set[str]:
    if not db.exists():
        return set()
    return {str(r["patient_id"]) for r in plan_rows(open_store(f"sqlite:///{db}")) if r["decision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args()
    storescu = shutil.which("storescu")
    if storescu is None:
        sys.exit("storescu (dcmtk) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plans = []
        for i in range(args.plans):
            out = folder / "plans" / f"p{i}"
            write_thorax_phantom(out, ThoraxPhantom(seed=f"listen-{i}", patient_id=f"LS-{i:03d}"))
            plans.append((f"LS-{i:03d}", sorted(out.glob("*.dcm"))))
        db, port = folder / "results.db", free_port()
        log = (folder / "listen.log").open("w")
        node = subprocess.Popen(
            [sys.executable, "-m", "rtcheck.cli", "listen", "--storage", str(folder / "in"),
             "--port", str(port), "--db", str(db), "--settle", str(args.settle)],
            stderr=log, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2.0)
        latencies = []
        start = time.perf_counter()
        try:
            for patient, files in plans:
                subprocess.run(
                    [storescu, "-aec", "RTCHECK", "127.0.0.1", str(port), *map(str, files)],
                    check=True, capture_output=True, timeout=120,
                )  # fmt: skip
                sent = time.perf_counter()
                while patient not in stored(db):
                    time.sleep(0.05)
                latencies.append(time.perf_counter() - sent)
            elapsed = time.perf_counter() - start
        finally:
            node.terminate()
            node.wait(timeout=60)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; settle "
          f"{args.settle:g} s; {args.plans} plans, one association each")  # fmt: skip
    print(f"last object to stored decision: median {statistics.median(latencies):.2f} s, "
          f"range {min(latencies):.2f}-{max(latencies):.2f} s")  # fmt: skip
    print(f"plans received and checked per minute: {60 * args.plans / elapsed:.1f}")


if __name__ == "__main__":
    main()
