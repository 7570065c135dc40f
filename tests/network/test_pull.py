"""`rtcheck pull` against a real PACS: Orthanc, started on loopback with a throw-away
configuration, holding three studies (two plans of two patients, one of an older date, and a CT
study with no RT series). Also Orthanc's "send to modality" delivering a plan to
`rtcheck listen`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from rtcheck.archive.store import open_store, plan_rows
from tests.network.peers import ORTHANC, Node, Orthanc, free_port, require

#: Where `rtcheck pull --move-port` receives, as the PACS knows it.
MOVE_PORT = free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, phantom_dir: Path) -> Iterator[Orthanc]:
    """Orthanc holding: PHANTOM-001's plan (not excluded, 2026-01-01), TRIAL-002's plan with
    the cord at 95 % of 50 Gy (excluded, dated 2025-06-01) and pydicom's CT_small study."""
    require(ORTHANC, "Orthanc")
    from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom

    folder = tmp_path_factory.mktemp("pacs")
    older = folder / "older"
    write_thorax_phantom(
        older, ThoraxPhantom(patient_id="TRIAL-002", seed="pull-older", cord_dose_fraction=0.95)
    )
    for path in older.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.StudyDate = "20250601"
        ds.save_as(path)
    server = Orthanc(folder / "orthanc", {"rtcheck": ("RTCHECK", MOVE_PORT)})
    server.upload(*sorted(phantom_dir.glob("R*.dcm")), *sorted(older.glob("R*.dcm")))
    server.upload(Path(get_testdata_file("CT_small.dcm")))
    yield server
    server.stop()


def pull(pacs: Orthanc, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "pull", "--pacs", pacs.address,
         "--storage", str(tmp / "pulled"), "--db", str(tmp / "results.db"), "--workers", "1",
         *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def decisions(tmp: Path) -> dict[str, str]:
    rows = plan_rows(open_store(f"sqlite:///{tmp / 'results.db'}"))
    return {str(r["patient_id"]): str(r["decision"]) for r in rows}


def test_pull_finds_retrieves_and_checks_every_plan_and_a_second_pull_fetches_nothing(
    pacs, tmp_path
):
    first = pull(pacs, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "3 studies, 6 RT series; 6 objects retrieved, 0 already" in first.stdout
    assert "2 plans checked, 0 already stored" in first.stdout
    assert decisions(tmp_path) == {"PHANTOM-001": "not_excluded", "TRIAL-002": "excluded"}
    stored = sorted(p.relative_to(tmp_path / "pulled").parts[0] for p in
                    (tmp_path / "pulled").rglob("*.dcm"))  # fmt: skip
    assert stored == ["PHANTOM-001"] * 3 + ["TRIAL-002"] * 3  # the CT study not retrieved
    again = pull(pacs, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 objects retrieved, 6 already" in again.stdout
    assert "0 plans checked, 2 already stored" in again.stdout
    # A file lost from storage is retrieved alone; the plan, unchanged, is not checked again.
    next((tmp_path / "pulled" / "TRIAL-002").glob("RTDOSE_*.dcm")).unlink()
    mended = pull(pacs, tmp_path)
    assert mended.returncode == 0, mended.stderr
    assert "1 objects retrieved, 5 already" in mended.stdout
    assert "0 plans checked, 2 already stored" in mended.stdout


def test_pull_by_c_move_to_this_node(pacs, tmp_path):
    """For a PACS without C-GET: the pull receives on --move-port while it runs, and only from
    the PACS's AE title."""
    moved = pull(pacs, tmp_path, "--move-port", str(MOVE_PORT))
    assert moved.returncode == 0, moved.stderr
    assert "6 objects retrieved, 0 already" in moved.stdout
    assert decisions(tmp_path) == {"PHANTOM-001": "not_excluded", "TRIAL-002": "excluded"}
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = pull(pacs, tmp_path / "busy", "--move-port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert busy.returncode == 2 and "cannot receive on 127.0.0.1:" in busy.stderr


def test_pull_by_patient_and_by_study_date(pacs, tmp_path):
    by_patient = pull(pacs, tmp_path / "a", "--patient", "TRIAL-002")
    assert by_patient.returncode == 0, by_patient.stderr
    assert decisions(tmp_path / "a") == {"TRIAL-002": "excluded"}
    since = pull(pacs, tmp_path / "b", "--since", "2026-01-01")
    assert since.returncode == 0, since.stderr
    assert "1 studies, 3 RT series" in since.stdout  # CT_small's study is of 2004
    assert decisions(tmp_path / "b") == {"PHANTOM-001": "not_excluded"}
    nothing = pull(pacs, tmp_path / "c", "--patient", "NOBODY")
    assert nothing.returncode == 2
    assert nothing.stderr.strip().endswith("matches the query") and nothing.stderr.count("\n") == 1


def test_an_unknown_ae_title_or_a_closed_port_is_one_line_and_exit_2(pacs, tmp_path):
    unknown = pull(pacs, tmp_path, "--ae-title", "STRANGER")
    assert unknown.returncode == 2
    assert "is STRANGER among its known AE titles" in unknown.stderr
    closed = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "pull", "--pacs", f"ORTHANC@127.0.0.1:{free_port()}",
         "--storage", str(tmp_path / "s"), "--db", str(tmp_path / "r.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert closed.returncode == 2 and "not established" in closed.stderr
    for bad in ("ORTHANC@127.0.0.1", "@host:104", "A_TITLE_LONGER_THAN_16@h:104", "A@h:0"):
        refused = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "pull", "--pacs", bad],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, bad
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").rglob("*.dcm"))


def test_orthanc_send_to_modality_delivers_a_plan_to_rtcheck_listen(pacs, tmp_path):
    node = Node(tmp_path, "--allow", "ORTHANC")
    try:
        modality = {"AET": "RTCHECK", "Host": "127.0.0.1", "Port": node.port}
        pacs.rest("PUT", "/modalities/listener", json.dumps(modality).encode())
        study = pacs.rest("POST", "/tools/lookup", b"TRIAL-002")
        patient = next(item["ID"] for item in study if item["Type"] == "Patient")
        job = {"Resources": [patient], "Synchronous": True}
        sent = pacs.rest("POST", "/modalities/listener/store", json.dumps(job).encode())
        assert sent["InstancesCount"] == 3 and sent["FailedInstancesCount"] == 0
        node.wait_for("of patient TRIAL-002: excluded")
        assert node.decisions() == ["excluded"]
        assert "association from ORTHANC@127.0.0.1 accepted" in node.text()
    finally:
        assert node.stop() == 0


class AbortingPacs:
    """A Query/Retrieve SCP (pynetdicom, on loopback) holding one plan, which answers every
    C-FIND and aborts the association in the middle of the first C-GET, after one object."""

    def __init__(self, plan: Path) -> None:
        from pynetdicom import AE, StoragePresentationContexts, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

        self.objects = [pydicom.dcmread(p) for p in sorted(plan.glob("R*.dcm"))]
        ae = AE(ae_title="ABORTER")
        ae.add_supported_context(FIND)
        ae.add_supported_context(GET)
        for context in StoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, scu_role=True, scp_role=True)
        self.port = free_port()
        self.address = f"ABORTER@127.0.0.1:{self.port}"
        handlers = [(evt.EVT_C_FIND, self._find), (evt.EVT_C_GET, self._get)]
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=handlers)  # fmt: skip

    def _find(self, event):  # type: ignore[no-untyped-def]
        level = event.identifier.QueryRetrieveLevel
        seen = set()
        for ds in self.objects:
            answer = pydicom.Dataset()
            answer.QueryRetrieveLevel = level
            answer.PatientID = ds.PatientID
            answer.StudyInstanceUID = ds.StudyInstanceUID
            if level in ("SERIES", "IMAGE"):
                answer.SeriesInstanceUID = ds.SeriesInstanceUID
                answer.Modality = ds.Modality
            if level == "IMAGE":
                if ds.SeriesInstanceUID != event.identifier.SeriesInstanceUID:
                    continue
                answer.SOPInstanceUID = ds.SOPInstanceUID
            key = (answer.get("StudyInstanceUID"), answer.get("SeriesInstanceUID"))
            if level != "IMAGE" and key in seen:
                continue
            seen.add(key)
            yield 0xFF00, answer

    def _get(self, event):  # type: ignore[no-untyped-def]
        yield len(self.objects)
        yield 0xFF00, self.objects[0]
        event.assoc.abort()  # the PACS goes away in the middle of the retrieval

    def stop(self) -> None:
        self.server.shutdown()


def test_a_pacs_that_aborts_mid_retrieval_gives_the_failed_series_and_exit_4(phantom_dir, tmp_path):
    aborting = AbortingPacs(phantom_dir)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "pull", "--pacs", aborting.address,
             "--storage", str(tmp_path / "pulled"), "--db", str(tmp_path / "results.db"),
             "--workers", "1"],
            capture_output=True, text=True, timeout=45,  # not the 60 s of a DIMSE time-out
        )  # fmt: skip
    finally:
        aborting.stop()
    assert done.returncode == 4, done.stdout + done.stderr
    assert "3 series failed" in done.stdout or "series failed" in done.stdout, done.stdout
    assert "not retrieved" in done.stdout
    assert "AE title" not in done.stdout + done.stderr  # not the set-up's fault
    assert "Traceback" not in done.stderr
