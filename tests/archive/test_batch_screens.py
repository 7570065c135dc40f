"""`batch --screen`: a structure set without a dose in an archive is screened and stored as a
screen — shown as one on the dashboard, in `results` and in the summary, never exported as an
eligibility record; and a database of schema 3 gains the kind of each row."""

from __future__ import annotations

import shutil

import sqlalchemy as sa
from fastapi.testclient import TestClient

from rtcheck.archive.batch import results_csv, run_batch, write_records
from rtcheck.archive.listing import results_table
from rtcheck.archive.store import open_store, plan_rows, stored_records
from rtcheck.phantom.thorax import ThoraxPhantom, esophagus_lesion, write_thorax_phantom
from rtcheck.web.app import ServeSettings, create_app


def archive_with_a_screen(tmp_path):
    archive = tmp_path / "archive"
    write_thorax_phantom(archive / "planned", ThoraxPhantom(patient_id="PLANNED", seed="b-1"))
    base = ThoraxPhantom()
    node = esophagus_lesion(1, 1.0, base.z_range_mm[0], base.contour_spacing_mm)
    contours = archive / "screening"
    files = write_thorax_phantom(
        contours,
        ThoraxPhantom(
            patient_id="SCREEN<b>",
            seed="b-2",
            primary=False,
            lesions=(node,),
            lesion_plans=((40.0, 5),),
        ),  # fmt: skip
    )
    for dose in (files.rtdose, *(f for f in files.more if "RD" in f.name)):
        dose.unlink(missing_ok=True)
    return archive


def test_a_structure_set_without_a_dose_is_screened_and_shown_as_a_screen(tmp_path):
    archive = archive_with_a_screen(tmp_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    without = run_batch(archive, db_url=db, workers=1)
    assert without.plans_found == 1  # without --screen the structure set is an orphan
    summary = run_batch(archive, db_url=db, workers=1, screen=True)
    assert summary.plans_found == 2 and summary.checked == 1 and not summary.errors
    engine = open_store(db)
    rows = {r["patient_id"]: r for r in plan_rows(engine)}
    screen = rows["SCREEN<b>"]
    assert (screen["kind"], screen["decision"]) == ("screen", "excluded_by_geometry")
    assert "Esophagus D0.03cc[Gy]" in screen["failed_mandatory"]
    assert rows["PLANNED"]["kind"] == "check"
    assert "screen: excluded_by_geometry" in results_table(plan_rows(engine, True))
    assert results_csv(engine).splitlines()[0].endswith(",kind")
    # Exports carry eligibility records only.
    assert [r.record["patient_id"] for r in stored_records(engine)] == ["PLANNED"]
    written = write_records(engine, tmp_path / "records")
    assert written == 2 and len(list((tmp_path / "records").glob("*.screening.json"))) == 1
    client = TestClient(create_app(ServeSettings(db)), base_url="http://127.0.0.1")
    listing = client.get("/plans").text
    assert "screen: excluded_by_geometry" in listing
    page = client.get(f"/plans/{screen['plan_key']}").text
    assert "Limits at screening" in page and "cannot_be_met" in page
    assert "SCREEN&lt;b&gt;" in page and "SCREEN<b>" not in page
    report = client.get(f"/plans/{screen['plan_key']}/report")
    assert report.status_code == 200 and 'data-decision="excluded_by_geometry"' in report.text


def test_a_database_of_schema_3_gains_the_kind_of_each_row(tmp_path):
    archive = tmp_path / "archive"
    write_thorax_phantom(archive / "p", ThoraxPhantom(seed="b-3"))
    db_file = tmp_path / "old.db"
    run_batch(archive, db_url=f"sqlite:///{db_file}", workers=1)
    raw = sa.create_engine(f"sqlite:///{db_file}")
    with raw.begin() as connection:  # as rtcheck of schema 3 left it
        connection.execute(sa.text("ALTER TABLE plans DROP COLUMN kind"))
        connection.execute(sa.text("UPDATE rtcheck_schema SET version = 3"))
    copy = tmp_path / "copy.db"
    shutil.copy(db_file, copy)
    rows = list(plan_rows(open_store(f"sqlite:///{copy}")))
    assert [r["kind"] for r in rows] == ["check"]


def test_the_batch_and_pull_commands_take_screen(tmp_path):
    import subprocess
    import sys

    archive = archive_with_a_screen(tmp_path)
    db = tmp_path / "cli.db"
    done = subprocess.run(
        [sys.executable, "-m", "rtcheck", "batch", str(archive), "--db", str(db),
         "--workers", "1", "--screen"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 excluded_by_geometry" in done.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "rtcheck", "pull", "--help"], capture_output=True, text=True
    )
    assert "--screen" in helped.stdout
