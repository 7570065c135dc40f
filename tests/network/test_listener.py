"""`rtcheck listen` as a real Storage SCP on loopback, sent to by dcmtk's storescu and echoscu (a
client nobody here wrote): whole plans, plans split over associations, an object sent twice, a
non-RT object, a refused AE title, a stop by SIGTERM, and plans already in storage at start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.network.peers import STORESCU, Node, free_port, plan_files, require


@pytest.fixture(autouse=True)
def _dcmtk() -> None:
    require(STORESCU, "dcmtk")


def test_a_whole_plan_is_stored_and_checked_and_each_association_is_one_line(node, phantom_dir):
    assert (
        subprocess.run(
            [
                shutil.which("echoscu") or "echoscu",
                "-aet",
                "STORESCU",
                "-aec",
                "RTCHECK",
                "127.0.0.1",
                str(node.port),
            ],
            timeout=30,
        ).returncode
        == 0
    )
    sent = node.send(*plan_files(phantom_dir).values())
    assert sent.returncode == 0, sent.stderr
    node.wait_for("of patient PHANTOM-001: not_excluded")
    assert node.decisions() == ["not_excluded"]
    log = node.text()
    assert log.count("association from STORESCU@127.0.0.1 accepted") == 2  # echo, then store
    assert "PHANTOM^THORAX" not in log  # never a patient's name
    stored = sorted(p.name.split("_")[0] for p in node.storage.rglob("*.dcm"))
    assert stored == ["RTDOSE", "RTPLAN", "RTSTRUCT"]
    assert node.stop() == 0 and "stopped" in node.text()


def test_a_plan_split_over_associations_is_checked_once_complete(node, phantom_dir):
    files = plan_files(phantom_dir)
    assert node.send(files["RS"]).returncode == 0
    node.wait_for("RTSTRUCT")
    time.sleep(1.5)  # settled: an incomplete plan is not checked
    assert node.decisions() == []
    assert node.send(files["RP"]).returncode == 0
    assert node.send(files["RD"]).returncode == 0
    node.wait_for("not_excluded")
    assert node.decisions() == ["not_excluded"]


def test_an_object_sent_twice_is_stored_once_and_a_non_rt_object_is_not_kept(node, phantom_dir):
    files = plan_files(phantom_dir)
    ct = Path(get_testdata_file("CT_small.dcm"))
    assert node.send(*files.values(), ct).returncode == 0
    node.wait_for("not_excluded")
    assert node.send(files["RD"]).returncode == 0
    node.wait_for("already stored")
    assert len(list(node.storage.rglob("*.dcm"))) == 3  # the CT accepted, not kept
    time.sleep(1.5)
    assert node.decisions() == ["not_excluded"]  # nothing new: not checked again


def test_a_refused_ae_title_stores_nothing(node, phantom_dir):
    refused = node.send(*plan_files(phantom_dir).values(), aet="INTRUDER")
    assert refused.returncode != 0
    node.wait_for("INTRUDER@127.0.0.1 rejected")
    assert not list(node.storage.rglob("*.dcm"))


def test_plans_already_in_storage_are_checked_at_start(tmp_path, phantom_dir):
    storage = tmp_path / "received" / "PHANTOM-001"
    storage.mkdir(parents=True)
    for path in plan_files(phantom_dir).values():
        shutil.copy(path, storage / path.name)
    started = Node(tmp_path)
    try:
        started.wait_for("not_excluded")
        assert started.decisions() == ["not_excluded"]
    finally:
        assert started.stop() == 0


def test_listening_beyond_loopback_needs_an_allow_list(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "listen", "--storage", str(tmp_path / "s"),
         "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 2 and "needs --allow" in result.stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for option in ("--storage", "--reports"):
        args = ["--storage", str(tmp_path / "s"), option, str(a_file)]
        refused = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "listen", *args, "--port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and f"{option} {a_file}: not a folder" in refused.stderr
        assert refused.stderr.count("\n") == 1  # one line, no traceback


def test_a_transfer_dropped_half_way_leaves_nothing_half_written(node, tmp_path):
    """storescu killed while it sends a 40 MB RTDOSE: the listener keeps running, and storage
    holds either nothing of it or the whole object; nothing is left in the staging folder."""
    import numpy as np

    from rtcheck.phantom import synthetic as S

    patient = S.Patient(study_uid=S.uid("drop", "study"), frame_uid=S.uid("drop", "frame"))
    grid = np.random.default_rng(1).random((160, 250, 250)) * 60
    big = tmp_path / "big.dcm"
    S.save(S.build_rtdose(patient, S.uid("drop", "dose"), grid, (0, 0, 0), (1.0, 1.0),
                          list(np.arange(160.0)), None, bits=32), str(big))  # fmt: skip
    assert STORESCU is not None
    sender = subprocess.Popen(
        [STORESCU, "-aet", "STORESCU", "-aec", "RTCHECK", "127.0.0.1", str(node.port), str(big)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    node.wait_for("association from STORESCU@127.0.0.1 accepted")
    time.sleep(0.05)
    sender.kill()
    sender.wait(timeout=30)
    time.sleep(1.5)
    assert node.process.poll() is None  # still listening
    import pydicom

    for kept in node.storage.rglob("*.dcm"):  # the whole object, or nothing of it
        assert len(pydicom.dcmread(kept).PixelData) == 160 * 250 * 250 * 4
    staging = node.storage.parent / f".{node.storage.name}.incoming"
    assert not list(staging.iterdir())
    # The listener still takes the next plan.
    assert node.send(big).returncode == 0
    node.wait_for("RTDOSE")


def test_a_plan_assembled_from_two_patients_is_an_error_not_a_decision(node, phantom_dir, tmp_path):
    # The RTDOSE names another patient but still references the plan by UID: the listener
    # records the plan as an error (the two IDs masked) and decides nothing.
    import pydicom

    files = plan_files(phantom_dir)
    dose = pydicom.dcmread(files["RD"])
    dose.PatientID = "PHANTOM-932"
    dose.save_as(tmp_path / "RD.other.dcm")
    assert node.send(files["RS"], files["RP"], tmp_path / "RD.other.dcm").returncode == 0
    node.wait_for("two patients")
    line = next(x for x in node.text().splitlines() if "two patients" in x)
    assert "error:" in line and "is of patient '…-932'" in line
    assert node.decisions() == ["None"]
