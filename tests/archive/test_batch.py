"""Batch QA of a synthetic archive of 50 plans: end to end, interrupted and resumed, on a Dask
LocalCluster and on a scheduler with two workers in separate processes, into SQLite and (where
RTCHECK_TEST_POSTGRES_URL is set, as in CI) PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from rtcheck.archive.batch import run_batch
from rtcheck.archive.store import open_store, plan_record, plan_rows, plans_table
from rtcheck.dicom.slabs import EndCaps
from rtcheck.outputs.filenames import safe_name
from rtcheck.outputs.record import SCHEMA_RESOURCE
from rtcheck.protocol.definition import load_protocol
from tests.archive_factory import build_archive, clone_plan

SCHEMA = json.loads(resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text())
POSTGRES = os.environ.get("RTCHECK_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, bases):
    root = tmp_path_factory.mktemp("archive") / "export"
    expected = build_archive(root, bases, plans=50)
    return root, expected


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, archive):
    """The archive checked once with the local process pool, into SQLite."""
    root, _ = archive
    db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'ref.db'}"
    summary = run_batch(root, db_url=db, workers=2)
    return db, summary


def outcomes(db: str) -> dict[str, tuple]:
    """plan key → (status, decision, limit values): what must not depend on how it was run."""
    engine = open_store(db)
    out = {}
    for row in plan_rows(engine):
        record = plan_record(engine, row["plan_key"])
        values = (
            tuple((e["structure"], e["metric"], e["lesion"], e["value"]) for e in record["limits"])
            if record
            else ()
        )
        out[row["plan_key"]] = (row["status"], row["decision"], values)
    return out


def test_archive_checked_end_to_end(archive, reference_run, tmp_path):
    root, expected = archive
    db, summary = reference_run
    index = summary.index
    assert summary.plans_found == 50 and summary.checked == 50
    assert len(index.orphans) == 2 and {o.modality for o in index.orphans} == {"RTDOSE", "RTSTRUCT"}
    assert index.images_skipped == 15
    assert any(p.endswith("README.txt") for p, _ in index.unreadable)
    got = Counter(summary.decisions)
    got["error"] = len(summary.errors)
    assert got == expected
    assert all("truncated" in message for _, message in summary.errors)
    rows = list(plan_rows(open_store(db)))
    assert len(rows) == 50 and len({r["plan_key"] for r in rows}) == 50
    record = plan_record(open_store(db), rows[0]["plan_key"])
    jsonschema.validate(record, SCHEMA)


def test_cli_exports_csv_and_records_with_safe_names(archive, reference_run, tmp_path):
    root, _ = archive
    db, _ = reference_run
    copy = tmp_path / "copy.db"
    shutil.copy(db.removeprefix("sqlite:///"), copy)
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "batch", str(root), "--db", str(copy),
         "--out", str(tmp_path / "r.csv"), "--records", str(tmp_path / "rec")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr  # the broken plans are retried and fail again
    assert "45 already stored" in result.stdout and "5 errors" in result.stdout
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 51 and lines[0].startswith("plan_key,patient_id")
    names = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert len(names) == 45
    assert all(n.startswith("PAT-") and "/" not in n and "Doe" not in n for n in names)
    listing = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "results", "--db", str(copy), "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert len(json.loads(listing.stdout)) == 50
    table = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "results", "--db", str(copy), "--format", "table"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = table.stdout.splitlines()
    assert lines[0].startswith("Patient") and max(map(len, lines)) <= 100
    assert lines[-1].startswith("50 plans of ") and "5 error" in lines[-1]
    piped = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "results", "--db", str(copy)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert piped.stdout.startswith("plan_key,patient_id")  # not a terminal: CSV, as before


def test_safe_names():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("a/b\\c d") == "a_b_c_d"
    assert safe_name("..") == "unknown"
    assert "/" not in safe_name("x" * 300) and len(safe_name("x" * 300)) == 64


def test_interrupted_batch_resumes_without_losses_or_duplicates(archive, reference_run, tmp_path):
    root, _ = archive
    db_file = tmp_path / "resume.db"
    command = [sys.executable, "-m", "rtcheck.cli", "batch", str(root), "--db", str(db_file),
               "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    engine = None
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        if db_file.exists():
            engine = engine or open_store(f"sqlite:///{db_file}")
            with engine.connect() as connection:
                stored = connection.execute(sa.select(sa.func.count()).select_from(plans_table))
                stored = stored.scalar() or 0
            if stored >= 8:
                break
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers, mid-batch
    process.wait()
    assert 8 <= stored < 50
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 4, result.stderr
    assert outcomes(f"sqlite:///{db_file}") == outcomes(reference_run[0])


def test_changed_file_is_checked_again(archive, bases, reference_run, tmp_path):
    root, _ = archive
    db = tmp_path / "changed.db"
    shutil.copy(reference_run[0].removeprefix("sqlite:///"), db)
    work = tmp_path / "export"
    shutil.copytree(root, work, symlinks=True)
    target = work / "site0" / "PAT-000" / "rt"
    shutil.rmtree(target)
    clone_plan(bases["excluded"], target, "archive-0", "PAT-000", "Doe^Jane0")
    summary = run_batch(work, db_url=f"sqlite:///{db}", workers=2)
    # The changed plan and the five broken ones are checked; the others come from the store.
    assert summary.checked == 6 and summary.skipped == 44
    assert summary.decisions["excluded"] == 1


def test_other_end_caps_check_every_plan_again_and_are_recorded(bases, tmp_path):
    root = tmp_path / "small"
    build_archive(root, bases, plans=4)
    db = f"sqlite:///{tmp_path / 'caps.db'}"
    first = run_batch(root, db_url=db, workers=1)
    assert first.checked == first.plans_found > 0
    again = run_batch(root, db_url=db, workers=1)
    assert again.checked == len(again.errors)  # only the broken plans are tried again
    none = run_batch(root, db_url=db, workers=1, end_caps=EndCaps.NONE)
    assert none.checked == none.plans_found and none.skipped == 0
    engine = open_store(db)
    records = [plan_record(engine, row["plan_key"]) for row in plan_rows(engine)]
    assert {r["end_caps"] for r in records if r} == {"none"}
    assert run_batch(
        root, db_url=db, workers=1, end_caps=EndCaps.NONE
    ).skipped == none.plans_found - len(none.errors)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dask_local_cluster_gives_identical_results(archive, reference_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, _ = archive
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        db = f"sqlite:///{tmp_path / 'dask.db'}"
        run_batch(root, db_url=db, scheduler=cluster.scheduler_address)
    assert outcomes(db) == outcomes(reference_run[0])


def test_dask_scheduler_and_two_workers_in_separate_processes(archive, reference_run, tmp_path):
    pytest.importorskip("distributed")
    root, _ = archive
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    processes = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    ]  # fmt: skip
    try:
        time.sleep(2)
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(bin_dir / "dask"), "worker", address, "--nthreads", "1",
                     "--no-dashboard"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )
            )  # fmt: skip
        db = tmp_path / "procs.db"
        result = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "batch", str(root), "--db", str(db),
             "--scheduler", address],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert result.returncode == 4, result.stderr
        assert outcomes(f"sqlite:///{db}") == outcomes(reference_run[0])
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.skipif(not POSTGRES, reason="set RTCHECK_TEST_POSTGRES_URL to test PostgreSQL")
def test_postgresql_store(bases, tmp_path):
    assert POSTGRES is not None
    engine = open_store(POSTGRES)
    with engine.begin() as connection:
        connection.execute(plans_table.delete())
    small = tmp_path / "small"
    for i in range(4):
        clone_plan(bases["pass" if i else "excluded"], small / f"p{i}", f"pg-{i}", f"PG-{i}", "X")
    first = run_batch(small, db_url=POSTGRES, workers=2)
    assert first.checked == 4 and first.decisions == Counter(not_excluded=3, excluded=1)
    again = run_batch(small, db_url=POSTGRES, workers=2)
    assert again.checked == 0 and again.skipped == 4
    rows = list(plan_rows(open_store(POSTGRES)))
    assert len(rows) == 4
    jsonschema.validate(plan_record(engine, rows[0]["plan_key"]), SCHEMA)
    with engine.connect() as connection:
        limits = connection.execute(sa.text("SELECT count(*) FROM limits")).scalar()
        summaries = connection.execute(sa.text("SELECT count(*) FROM dvh_summaries")).scalar()
    assert limits and summaries


def test_archive_summary_page_links_every_report(bases, tmp_path):
    archive = tmp_path / "small"
    for i, kind in enumerate(["pass", "pass", "excluded", "indeterminate", "pass"]):
        clone_plan(bases[kind], archive / f"P{i}", f"summary-{i}", f"SUM-{i}", "Doe^John")
    broken = archive / "P4" / "RD.dcm"
    broken.write_bytes(broken.read_bytes()[:1000])
    page = tmp_path / "out" / "summary.html"
    page.parent.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "batch", str(archive),
         "--db", str(tmp_path / "s.db"), "--html", str(page)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    text = page.read_text()
    for decision, count in (("excluded", 1), ("indeterminate", 1), ("not_excluded", 2)):
        row = text.split(f'<tr data-decision="{decision}">', 1)[1].split("</tr>", 1)[0]
        assert f'<td class="num">{count}</td>' in row
    assert text.count('<tr class="plan"') == 5
    links = [part.split('"', 1)[0] for part in text.split('<a href="')[1:]]
    assert len(links) == 4
    assert all((page.parent / link).is_file() for link in links)
    assert all("Doe" not in link and ".." not in link for link in links)
    failing = text.split('id="failing"', 1)[1]
    assert "SpinalCord" in failing
    # Plans by patient; each decision coloured as in the counts table.
    patients = re.findall(r'<tr class="plan" data-decision="[^"]*" data-patient="([^"]*)"', text)
    assert patients == sorted(patients) and len(patients) == 5
    excluded = text.split('<tr class="plan" data-decision="excluded"', 1)[1].split("</tr>", 1)[0]
    assert 'class="verdict" style="color:#D55E00' in excluded and "EXCLUDED" in excluded
    made = text.split('id="made"', 1)[1].split("</dl>", 1)[0]
    version = load_protocol().version
    assert f"eso-oligo-rt {version} (5 plans)" in made and " UTC" in made and "rtcheck " in made
