"""Batch throughput: indexing rate and plans per minute, for 1 and 2 workers and two archive sizes.

Builds synthetic archives (phantom plans cloned with new UIDs, with CT slices mixed in) of
``--small`` and ``--large`` plans, then measures:

- the indexing rate (files per second, headers only);
- plans per minute checked into a fresh SQLite database with 1 and 2 local workers (small
  archive), and with 2 workers on the large one, to show that the cost per plan stays flat.

Usage: python benchmarks/batch_throughput.py [--small 50] [--large 500] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtcheck.archive.batch import run_batch  # noqa: E402
from rtcheck.archive.index import index_archive  # noqa: E402
from tests.archive_factory import clone_plan, write_bases, write_ct_slice  # noqa: E402


def build(root: Path, bases: dict[str, Path], plans: int) -> None:
    kinds = ["pass", "pass", "pass", "excluded", "indeterminate"]
    for i in range(plans):
        folder = root / f"PAT-{i:04d}" / "rt"
        clone_plan(bases[kinds[i % len(kinds)]], folder, f"bench-{plans}-{i}", f"B{i}", "Bench")
        for z in range(4):
            write_ct_slice(folder.parent / f"CT{z}.dcm", f"bench-{plans}-{i}", float(z))


def measure(archive: Path, workers: int, db: Path) -> tuple[float, int]:
    start = time.perf_counter()
    summary = run_batch(archive, db_url=f"sqlite:///{db}", workers=workers)
    return time.perf_counter() - start, summary.checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bases = write_bases(work / "bases")
        runs: list[tuple[int, int]] = [(args.small, w) for w in args.workers]
        if args.large:
            runs.append((args.large, max(args.workers)))
        built: dict[int, Path] = {}
        for size, workers in runs:
            if size not in built:
                built[size] = work / f"archive{size}"
                build(built[size], bases, size)
                start = time.perf_counter()
                index = index_archive(built[size])
                elapsed = time.perf_counter() - start
                print(
                    f"index {size:4d} plans: {index.files_seen} files in {elapsed:6.2f} s "
                    f"= {index.files_seen / elapsed:7.0f} files/s"
                )
            seconds, checked = measure(built[size], workers, work / f"db{size}-{workers}.db")
            print(
                f"check {size:4d} plans, {workers} worker(s): {seconds:7.1f} s = "
                f"{60 * checked / seconds:6.1f} plans/min ({seconds / checked:5.2f} s/plan)"
            )


if __name__ == "__main__":
    main()
