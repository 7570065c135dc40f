"""A patient with more than one plan in an archive: an earlier plan is summed with the later one
where a registration in the archive relates their frames; otherwise the later plan's check says
that earlier courses exist but were not summed, and is indeterminate."""

from __future__ import annotations

import numpy as np
import pydicom

from rtcheck.archive.batch import run_batch
from rtcheck.archive.index import index_archive
from rtcheck.archive.store import open_store, plan_record, plan_rows
from rtcheck.phantom import synthetic as S
from tests.conftest import write_case
from tests.evaluation.test_reirradiation import (
    CURRENT_TO_EARLIER,
    current_plan,
    earlier_dose,
    frames,
)
from tests.registration_factory import rigid_reg


def earlier_plan(tmp_path, date: str = "20250301"):
    rois = [S.RoiSpec.from_shape("PTV", "PTV", S.sphere(0, 0, 0, 20), np.arange(-20, 20.1, 2))]
    folder = write_case(
        tmp_path / "earlier", rois, earlier_dose, 3.0, lo=(-90, -90, -90), hi=(90, 90, 90),
        fractions=20, prescription=60.0, seed="earlier",
    )  # fmt: skip
    plan = pydicom.dcmread(folder / "rtplan.dcm")
    plan.RTPlanDate = date
    plan.save_as(folder / "rtplan.dcm")
    return folder


def records(db: str) -> dict[str, dict]:
    engine = open_store(db)
    return {row["plan_key"]: plan_record(engine, row["plan_key"]) for row in plan_rows(engine)}


def test_an_earlier_plan_with_its_registration_in_the_archive_is_summed(tmp_path):
    archive = tmp_path / "archive"
    current_plan(archive)
    earlier_plan(archive)
    patient, current, earlier = frames(tmp_path)
    rigid_reg(archive / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))])
    index = index_archive(archive)
    (later,) = [t for t in index.tasks if t.earlier]
    assert later.key == S.uid("current", "ss") and later.earlier[0].registration.endswith("reg.dcm")
    assert not index.orphans
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_batch(archive, db_url=db, workers=1)
    found = records(db)
    summed = found[S.uid("current", "ss")]
    assert summed["earlier_courses"]["courses"][0]["registration"]["method"] == "rigid"
    assert any(r["group"] == "cumulative" for r in summed["limits"])
    # The earlier plan is checked on its own: its later course is not its earlier one.
    assert "earlier_courses" not in found[S.uid("earlier", "ss")]


def test_without_a_registration_the_later_plan_says_earlier_courses_were_not_summed(tmp_path):
    archive = tmp_path / "archive"
    current_plan(archive)
    earlier_plan(archive)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_batch(archive, db_url=db, workers=1)
    later = records(db)[S.uid("current", "ss")]
    gap = [r for r in later["limits"] if r["group"] == "cumulative"]
    assert len(gap) == 1 and "earlier courses exist but were not summed" in gap[0]["reason"]
    assert "no registration in the archive" in gap[0]["reason"]
    assert later["criterion_19"]["decision"] == "indeterminate"


def test_plans_of_one_patient_without_dates_are_not_ordered_and_say_so(tmp_path):
    archive = tmp_path / "archive"
    current_plan(archive)
    earlier_plan(archive, date="")
    index = index_archive(archive)
    assert all(t.unsummed and not t.earlier for t in index.tasks)
    assert "which course came first is unknown" in index.tasks[0].unsummed[0]


def test_the_dashboard_and_the_exports_carry_the_earlier_course(tmp_path):
    from fastapi.testclient import TestClient

    from rtcheck.archive.store import stored_records
    from rtcheck.outputs.trial_export import export_text
    from rtcheck.web.app import ServeSettings, create_app

    archive = tmp_path / "archive"
    current_plan(archive)
    folder = earlier_plan(archive)
    plan = pydicom.dcmread(folder / "rtplan.dcm")
    plan.RTPlanLabel = "<b>first</b>"  # text from a DICOM file, shown escaped
    plan.save_as(folder / "rtplan.dcm")
    patient, current, earlier = frames(tmp_path)
    rigid_reg(archive / "reg.dcm", patient, current, [(earlier, np.linalg.inv(CURRENT_TO_EARLIER))])
    db = tmp_path / "r.db"
    run_batch(archive, db_url=f"sqlite:///{db}", workers=1)
    client = TestClient(create_app(ServeSettings(f"sqlite:///{db}")), base_url="http://127.0.0.1")
    page = client.get(f"/plans/{S.uid('current', 'ss')}").text
    assert "<h2>Earlier courses</h2>" in page and "(sum with earlier courses)" in page
    assert "&lt;b&gt;first&lt;/b&gt;" in page and "<b>first</b>" not in page
    records = list(stored_records(open_store(f"sqlite:///{db}")))
    subjects = {patient.patient_id: "ESO-0001"}
    fhir = export_text(records, "fhir", subjects)
    assert "(EQD2 sum with earlier courses)" in fhir
    for form in ("redcap", "redcap-json", "odm"):
        assert export_text(records, form, subjects)
