"""Load on `rtcheck serve` over loopback: requests per second for the plan list on a database
of ``--plans`` plans (10,000 by default), and the what-if over all of them.

The database is made from three real checks of the phantom (not excluded, excluded by its
cord, indeterminate), each stored under many plan keys and patients, so that every row is what
a batch stores (record, limits, compact DVHs, history). Then `rtcheck serve` runs in its own
process, and ``--clients`` threads send ``--requests`` GET requests in all (keep-alive), bounded
in count. References in the same run: the same page query through SQLAlchemy in this process
(the database's own share), and one plan's full check (what a what-if without stored evidence
would cost per plan).

Usage: python benchmarks/serve_load.py [--plans N] [--requests N] [--clients N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from rtcheck.archive.batch import check_task  # noqa: E402
from rtcheck.archive.index import index_archive  # noqa: E402
from rtcheck.archive.store import open_store, save_outcome  # noqa: E402
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom  # noqa: E402
from rtcheck.protocol.definition import find_protocol, load_protocol  # noqa: E402
from rtcheck.web.queries import PlanFilter, list_plans  # noqa: E402
from tests.network.peers import free_port  # noqa: E402


def build(folder: Path, plans: int) -> tuple[str, float]:
    """The database, and one full check's time (s)."""
    variants = {
        "ok": ThoraxPhantom(seed="load-ok"),
        "cord": ThoraxPhantom(seed="load-cord", cord_dose_fraction=0.95),
        "nocord": ThoraxPhantom(seed="load-nocord", renamed=(("Cord", None),)),
    }
    for name, phantom in variants.items():
        write_thorax_phantom(folder / "plans" / name, phantom)
    tasks = index_archive(folder / "plans").tasks
    protocol = str(find_protocol(None))
    start = time.perf_counter()
    outcomes = [check_task(task, protocol) for task in tasks]
    one_check = (time.perf_counter() - start) / len(outcomes)
    url = f"sqlite:///{folder / 'load.db'}"
    open_store(url)  # the schema
    # Filled without waiting for the disk after each plan (a batch does wait): only the build
    # of this throw-away database is faster for it.
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", lambda c, _: c.execute("PRAGMA synchronous=OFF"))
    sha = load_protocol().sha256
    for i in range(plans):
        base = outcomes[i % len(outcomes)]
        save_outcome(engine, replace(base, key=f"{base.key}.{i}", patient_id=f"LOAD-{i:06d}"),
                     "eso-oligo-rt 1.1.0", sha)  # fmt: skip
    return url, one_check


def load(port: int, paths: list[str], requests: int, clients: int) -> tuple[float, list[float]]:
    """(requests per second, latencies in s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests // clients

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for k in range(per_client):
            t = time.perf_counter()
            connection.request("GET", paths[(n + k) % len(paths)])
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
            mine.append(time.perf_counter() - t)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        url, one_check = build(folder, args.plans)
        size = (folder / "load.db").stat().st_size
        print(f"machine: {platform.machine()}, Python {platform.python_version()}; "
              f"{args.plans} plans stored in {time.perf_counter() - t:.0f} s, "
              f"{size / 2**20:.0f} MB ({size / args.plans / 1024:.1f} kB per plan)")  # fmt: skip
        engine = open_store(url)
        filters = [PlanFilter(), PlanFilter(decision="excluded"), PlanFilter(text="LOAD-0099")]
        t = time.perf_counter()
        for i in range(60):
            list_plans(engine, filters[i % 3], page=1 + i % 7)
        in_process = (time.perf_counter() - t) / 60
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "rtcheck.cli", "serve", "--db", url, "--port", str(port)],
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/")
                    break
                except OSError:
                    time.sleep(0.1)
            api = ["/api/plans", "/api/plans?decision=excluded&page=3", "/api/plans?q=LOAD-0099",
                   "/api/plans?sort=patient_id&desc=false&page=40"]  # fmt: skip
            pages = ["/plans", "/plans?decision=indeterminate&page=5", "/plans?q=LOAD-00"]
            for label, paths in (("API /api/plans", api), ("page /plans", pages)):
                rate, latencies = load(port, paths, args.requests, args.clients)
                print(f"{label}: {rate:.0f} requests/s with {args.clients} clients; median "
                      f"{1000 * statistics.median(latencies):.0f} ms, slowest "
                      f"{1000 * max(latencies):.0f} ms; the page query alone "
                      f"{1000 * in_process:.1f} ms in-process "
                      f"({statistics.median(latencies) / in_process:.1f}x)")  # fmt: skip
            text = find_protocol(None).read_text().replace('limit: "<= 45"', 'limit: "<= 15"', 1)
            body = json.dumps({"protocol": "eso-oligo-rt 1.1.0", "yaml": text})
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            t = time.perf_counter()
            connection.request("POST", "/api/whatif", body, {"Content-Type": "application/json"})
            answer = json.loads(connection.getresponse().read())
            whatif = time.perf_counter() - t
            print(f"what-if (cord limit 15 Gy) over {answer['judged']} plans: {whatif:.1f} s, "
                  f"{len(answer['changed'])} change decision; a full check is {one_check:.2f} s "
                  f"per plan: {args.plans * one_check / whatif:.0f}x faster than checking "
                  "them again")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
