"""A batch always finishes: pipes in folders, workers killed by the system, hostile text in the
database, two batches racing on a new database, an unreachable scheduler."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa

from rtcheck.archive import batch
from rtcheck.archive.batch import WARM_WORKERS, run_batch
from rtcheck.archive.store import (
    SCHEMA_VERSION,
    PlanOutcome,
    checks_table,
    open_store,
    plan_record,
    plan_rows,
    plans_table,
    save_outcome,
    schema_table,
)
from rtcheck.dicom.plan import load_plan
from tests.archive_factory import clone_plan

POSTGRES = os.environ.get("RTCHECK_TEST_POSTGRES_URL")
PHANTOM = Path(__file__).resolve().parents[2] / "phantom_data" / "thorax"
DATABASES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL")),
]


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory, bases):
    """Four plans (three pass, one excluded), no broken files."""
    root = tmp_path_factory.mktemp("small") / "export"
    for i, kind in enumerate(["pass", "pass", "excluded", "pass"]):
        clone_plan(bases[kind], root / f"PAT-{i}", f"robust-{i}", f"PAT-{i}", f"Doe^J{i}")
    return root


def rtcheck(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtcheck", *args], capture_output=True, text=True, timeout=timeout
    )


def test_a_pipe_in_a_plan_folder_is_skipped_and_counted(tmp_path):
    folder = tmp_path / "plan"
    folder.mkdir()
    for path in PHANTOM.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    os.mkfifo(folder / "export.pipe")  # opening it for reading would block forever
    result = rtcheck("check", str(folder), "--json", "-", timeout=60)
    assert result.returncode == 0, result.stderr
    assert any("1 file(s) found in folders that are not regular" in w
               for w in json.loads(result.stdout)["warnings"])  # fmt: skip
    with pytest.raises(Exception, match="no RTDOSE.*1 file skipped: not a regular file"):
        (folder / "RD.thorax.dcm").unlink()
        load_plan([folder])
    result = rtcheck("dvh", str(folder / "export.pipe"), timeout=60)
    assert result.returncode == 2 and "not a regular file" in result.stderr


def test_a_pipe_in_an_archive_is_skipped_and_counted(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    for i in range(2):
        clone_plan(PHANTOM, root / f"P{i}", f"pipe-{i}", f"P{i}", "Doe^P")
    os.mkfifo(root / "P0" / "stream")
    result = rtcheck("batch", str(root), "--db", str(tmp_path / "p.db"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "2 plans checked" in result.stdout and "1 not regular files skipped" in result.stdout


CHECK_TASK = batch.check_task


def dying_check_task(task, *args, **kwargs):
    """check_task, but the worker checking PAT-2's plan is killed as the system's OOM killer
    would (SIGKILL: no exception, no cleanup)."""
    if task.patient_id == "PAT-2":
        os.kill(os.getpid(), signal.SIGKILL)
    return CHECK_TASK(task, *args, **kwargs)


def test_a_worker_killed_by_the_system_is_recorded_and_the_batch_goes_on(
    small_archive, tmp_path, monkeypatch
):
    monkeypatch.setattr(batch, "check_task", dying_check_task)  # workers are forked: they see it
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    summary = run_batch(small_archive, db_url=db, workers=2)
    assert summary.checked == 4
    assert len(summary.errors) == 1
    assert "worker died while checking it" in summary.errors[0][1]
    rows = {row["patient_id"]: row for row in plan_rows(open_store(db))}
    assert rows["PAT-2"]["status"] == "error"
    assert all(rows[p]["status"] == "ok" for p in ("PAT-0", "PAT-1", "PAT-3"))


def test_innocent_plans_in_a_broken_pool_are_checked_again(small_archive, tmp_path):
    # Kill one worker as soon as the first plan is stored: the pool breaks under the plans in
    # flight, which are checked again; every plan ends checked, none as an error.
    killed = []

    def progress(summary, total):
        if not killed:
            child = multiprocessing.active_children()[0]
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    summary = run_batch(small_archive, db_url=f"sqlite:///{tmp_path / 'k.db'}", workers=2,
                        progress=progress)  # fmt: skip
    assert killed and summary.checked == 4 and not summary.errors


def test_never_more_workers_than_plans_beyond_the_few_started_before_indexing(
    small_archive, tmp_path
):
    # 64 workers asked for 4 plans: the pool that checks them has 4. The warm pool started
    # while indexing (at most one per core and WARM_WORKERS) may have been larger than the
    # number of plans, never larger than that.
    seen = []

    def progress(summary, total):
        seen.append(len(multiprocessing.active_children()))

    run_batch(small_archive, db_url=f"sqlite:///{tmp_path / 'w.db'}", workers=64,
              progress=progress)  # fmt: skip
    warm = min(os.cpu_count() or 1, WARM_WORKERS)
    assert seen and max(seen) <= max(4, warm)
    assert not multiprocessing.active_children()  # every pool shut down


def test_a_batch_with_nothing_to_check_shuts_its_warm_workers_down(small_archive, tmp_path):
    db = f"sqlite:///{tmp_path / 'n.db'}"
    run_batch(small_archive, db_url=db, workers=2)
    summary = run_batch(small_archive, db_url=db, workers=2)
    assert summary.skipped == 4 and summary.checked == 0
    assert not multiprocessing.active_children()


def hostile_outcome(key: str, patient: str) -> PlanOutcome:
    return PlanOutcome(
        key=key,
        input_hash="0" * 64,
        patient_id=patient,
        study_uid="1.2.3\x00.4",
        files=("a\x00b.dcm",),
        record=None,
        dvh_summaries=(),
        error="unreadable \x00 text",
    )


@pytest.mark.parametrize("url", DATABASES)
def test_any_text_dicom_can_hold_is_stored(tmp_path, url):
    db = f"sqlite:///{tmp_path / 'text.db'}" if url == "sqlite" else POSTGRES
    engine = open_store(db)
    long_key = "1.2." + "9" * 300  # longer than any column DICOM allows, as a hostile file has
    for key, patient in ((long_key, "P" * 500), ("1.2.3\x004", "PAT\x00-1")):
        save_outcome(engine, hostile_outcome(key, patient), "p 1", "h" * 64)
    rows = {row["plan_key"]: row for row in plan_rows(engine)}
    assert rows[long_key]["patient_id"] == "P" * 500
    assert rows["1.2.3\ufffd4"]["patient_id"] == "PAT\ufffd-1"
    assert rows["1.2.3\ufffd4"]["error"] == "unreadable \ufffd text"
    with engine.begin() as connection:
        connection.execute(plans_table.delete())


@pytest.mark.parametrize("url", DATABASES)
def test_an_old_schema_is_migrated(tmp_path, url):
    db = f"sqlite:///{tmp_path / 'old.db'}" if url == "sqlite" else POSTGRES
    engine = open_store(db)
    with engine.begin() as connection:
        connection.execute(schema_table.update().values(version=1))
        if url == "postgres":  # as version 1 made it
            connection.execute(sa.text("ALTER TABLE plans ALTER COLUMN plan_key TYPE VARCHAR(128)"))
    engine = open_store(db)
    with engine.connect() as connection:
        versions = connection.execute(sa.select(schema_table.c.version)).scalars().all()
    assert versions == [SCHEMA_VERSION]
    long_key = "1.2." + "7" * 300
    save_outcome(engine, hostile_outcome(long_key, "PAT"), "p 1", "h" * 64)
    assert long_key in {row["plan_key"] for row in plan_rows(engine)}
    with engine.begin() as connection:
        connection.execute(plans_table.delete())


@pytest.mark.parametrize("url", DATABASES)
def test_a_version_2_database_gains_the_history_of_its_plans(tmp_path, url):
    """Version 2 had no checks table and no protocol_version column: after the migration each
    stored plan has one check, its protocol version is read from its record, and a new check
    adds to its history."""
    db = f"sqlite:///{tmp_path / 'v2.db'}" if url == "sqlite" else POSTGRES
    engine = open_store(db)
    record = {"protocol": {"version": "1.0.0"}, "criterion_19": {"decision": "excluded"},
              "lesion_count": 0, "limits": []}  # fmt: skip
    outcome = replace(hostile_outcome("1.2.840.1", "PAT"), record=record, error=None)
    save_outcome(engine, outcome, "eso-oligo-rt", "h" * 64)
    with engine.begin() as connection:  # back to what version 2 made
        connection.execute(schema_table.update().values(version=2))
        connection.execute(sa.text("DROP TABLE checks"))
        connection.execute(sa.text("ALTER TABLE plans DROP COLUMN protocol_version"))
        connection.execute(sa.text("ALTER TABLE dvh_summaries DROP COLUMN curve"))
        connection.execute(sa.text("ALTER TABLE plans ADD COLUMN record TEXT"))
        connection.execute(sa.text("UPDATE plans SET record = (SELECT record FROM records)"))
        connection.execute(sa.text("DROP TABLE records"))
    engine.dispose()
    engine = open_store(db)
    with engine.connect() as connection:
        history = connection.execute(sa.select(checks_table)).mappings().all()
        version = connection.execute(sa.select(plans_table.c.protocol_version)).scalar()
    assert [(h["plan_key"], h["decision"], h["protocol_version"]) for h in history] == [
        ("1.2.840.1", "excluded", "1.0.0")
    ]
    assert version == "1.0.0"
    assert plan_record(engine, "1.2.840.1") == record  # moved to the records table
    save_outcome(engine, outcome, "eso-oligo-rt", "h" * 64)
    with engine.begin() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(checks_table)).scalar() == 2
        )
        connection.execute(plans_table.delete())
        connection.execute(checks_table.delete())


def test_two_batches_racing_on_a_new_database_both_open_it(tmp_path):
    db = tmp_path / "race.db"
    code = f"from rtcheck.archive.store import open_store; open_store('sqlite:///{db}')"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert all(p.returncode == 0 for p in processes), errors
    with open_store(f"sqlite:///{db}").connect() as connection:
        versions = connection.execute(sa.select(schema_table.c.version)).scalars().all()
    assert versions == [SCHEMA_VERSION]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("address", [f"tcp://127.0.0.1:{_free_port()}", "tcp://:::::"])
def test_an_unreachable_or_malformed_scheduler_is_a_clear_error_in_bounded_time(
    small_archive, tmp_path, address
):
    started = time.monotonic()
    result = rtcheck("batch", str(small_archive), "--db", str(tmp_path / "s.db"),
                     "--scheduler", address, timeout=90)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot reach the Dask scheduler" in result.stderr
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 40


def test_a_plan_the_database_refuses_is_stored_as_an_error(small_archive, tmp_path, monkeypatch):
    # A database that refuses one plan's rows (as PostgreSQL did with NUL bytes): that plan is
    # stored as an error with the reason, and the batch goes on.
    real = batch.save_outcome

    def refusing(engine, outcome, protocol, settings):
        if outcome.patient_id == "PAT-1" and outcome.record is not None:
            from rtcheck.archive.store import StoreError

            raise StoreError("cannot store plan: DataError: invalid byte sequence")
        return real(engine, outcome, protocol, settings)

    monkeypatch.setattr(batch, "save_outcome", refusing)
    db = f"sqlite:///{tmp_path / 'refuse.db'}"
    summary = run_batch(small_archive, db_url=db, workers=1)
    assert summary.checked == 4 and len(summary.errors) == 1
    engine = open_store(db)
    rows = {row["patient_id"]: row for row in plan_rows(engine)}
    assert rows["PAT-1"]["status"] == "error" and "DataError" in rows["PAT-1"]["error"]
    assert plan_record(engine, rows["PAT-0"]["plan_key"]) is not None


def test_identical_copies_of_a_plan_are_one_plan(tmp_path):
    root = tmp_path / "twice"
    clone_plan(PHANTOM, root / "export1", "copies", "PAT-C", "Doe^C")
    for path in (root / "export1").iterdir():  # the same export, made twice
        (root / "export2").mkdir(exist_ok=True)
        (root / "export2" / path.name).write_bytes(path.read_bytes())
    result = rtcheck("batch", str(root), "--db", str(tmp_path / "c.db"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "1 plans checked" in result.stdout and "3 identical copies skipped" in result.stdout


def test_a_folder_without_plans_is_an_error_not_a_success(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a plan")
    result = rtcheck("batch", str(empty), "--db", str(tmp_path / "e.db"))
    assert result.returncode == 2
    assert "no plan found under" in result.stderr and result.stderr.count("\n") == 1


def test_results_of_a_database_that_does_not_exist_is_an_error(tmp_path):
    result = rtcheck("results", "--db", str(tmp_path / "typo.db"))
    assert result.returncode == 2 and "no results database" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_plan_assembled_from_two_patients_is_an_error_row(tmp_path, bases):
    # PAT-1's RTDOSE carries another patient's ID (still linked to PAT-1's plan by UID): the
    # plan is an error naming the two IDs masked; the other plan is checked as usual.
    root = tmp_path / "export"
    for i in range(2):
        clone_plan(bases["pass"], root / f"PAT-{i}", f"mixed-{i}", f"PAT-{i}", f"Doe^J{i}")
    dose_file = root / "PAT-1" / "RD.dcm"
    dose = pydicom.dcmread(dose_file)
    dose.PatientID = "PAT-7"
    dose.save_as(dose_file)
    summary = run_batch(root, db_url=f"sqlite:///{tmp_path / 'r.db'}", workers=1)
    assert summary.checked == 2 and len(summary.errors) == 1
    assert "two patients" in summary.errors[0][1] and "…AT-7" in summary.errors[0][1]
    rows = {r["patient_id"]: r for r in plan_rows(open_store(f"sqlite:///{tmp_path / 'r.db'}"))}
    assert rows["PAT-1"]["status"] == "error" and rows["PAT-0"]["status"] == "ok"


def test_a_batch_ends_without_a_traceback_run_after_run(small_archive, tmp_path):
    # The pool used to be left to shut itself down at the interpreter's exit, which now and
    # then printed "Exception ignored in: <module 'threading'> ... OSError: [Errno 9] Bad file
    # descriptor" after a batch that had gone well (1 run in 15 of a 3-plan batch here).
    for run in range(8):
        done = rtcheck("batch", str(small_archive), "--db", str(tmp_path / f"r{run}.db"),
                       "--workers", "2")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "", done.stderr[-2000:]


def test_text_from_a_file_cannot_forge_a_line_of_the_batchs_output(tmp_path, bases):
    root = tmp_path / "export"
    clone_plan(bases["pass"], root / "PAT-0", "forge-0", "PAT-0", "Doe^J")
    # An orphan dose (of a frame no structure set has) under a file name that says more than
    # it should.
    dose = pydicom.dcmread(root / "PAT-0" / "RD.dcm")
    dose.SOPInstanceUID = dose.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    dose.FrameOfReferenceUID = "1.2.3.998"
    del dose.ReferencedRTPlanSequence
    dose.save_as(root / "stray\nerror: plan 1.2.3 of patient VIP: excluded.dcm")
    done = rtcheck("batch", str(root), "--db", str(tmp_path / "r.db"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "orphan RTDOSE" in done.stdout
    assert not [line for line in done.stdout.splitlines() if line.startswith("error: plan 1.2.3")]


def test_the_index_hashes_each_rt_file_once_and_records_one_it_cannot_hash(
    small_archive, monkeypatch
):
    # Hashing runs beside the header reading: every RT file hashed exactly once, the digest
    # the file's own; a file that can no longer be read when it is hashed is recorded as
    # unreadable, and the other plans are indexed as usual.
    import hashlib

    import rtcheck.archive.index as index_module

    hashed: list[str] = []
    real = index_module.file_sha256
    victim: list[str] = []

    def hashing(path: str) -> str:
        hashed.append(path)
        if not victim and path.endswith("RD.dcm"):
            victim.append(path)
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(index_module, "file_sha256", hashing)
    index = index_module.index_archive(small_archive)
    assert len(hashed) == len(set(hashed)) and victim
    assert [path for path, _ in index.unreadable] == victim
    assert "PermissionError" in index.unreadable[0][1]
    assert len(index.tasks) == 3  # the plan whose dose could not be hashed is left out
    for task in index.tasks:
        # Each file's own digest, in the order of its path: none swapped between files.
        digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sorted(task.files)]
        assert task.input_hash == hashlib.sha256("".join(digests).encode()).hexdigest()
