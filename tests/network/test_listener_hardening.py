"""`rtcheck listen` against the peers that would turn it against the planning system: idle
connections holding every association slot, a PatientID that forges log lines, malformed
objects, a peer that keeps its association open at a stop, and AE titles that are not AE
titles. Real sockets, dcmtk's storescu and pynetdicom associations, on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pydicom
import pytest

from tests.network.peers import STORESCU, Node, free_port, plan_files, require


@pytest.fixture(autouse=True)
def _dcmtk() -> None:
    require(STORESCU, "dcmtk")


def test_idle_connections_do_not_lock_out_the_planning_system(node, phantom_dir):
    # 12 connections that never ask for an association: more than pynetdicom's default of 10
    # associations at once, which locked the sender out for 30 s.
    idle = [socket.create_connection(("127.0.0.1", node.port), timeout=30) for _ in range(12)]
    try:
        sent = node.send(*plan_files(phantom_dir).values())
        assert sent.returncode == 0, sent.stderr
        node.wait_for("of patient PHANTOM-001: not_excluded")
        # Each idle connection is dropped once it has not associated within 5 s.
        started = time.monotonic()
        for connection in idle:
            connection.settimeout(max(1.0, 20 - (time.monotonic() - started)))
            assert connection.recv(1) == b""  # closed by the listener, not by this test
    finally:
        for connection in idle:
            connection.close()


def test_a_patient_id_cannot_forge_a_log_line(node, phantom_dir, tmp_path):
    forged = "P1\n2026-01-01 00:00:00,000 plan 9.9 of patient VIP: not_excluded"
    for name, path in plan_files(phantom_dir).items():
        ds = pydicom.dcmread(path)
        ds.PatientID = forged
        ds.save_as(tmp_path / f"{name}.dcm")
    sent = node.send(*(tmp_path / f"{n}.dcm" for n in ("RS", "RP", "RD")))
    assert sent.returncode == 0, sent.stderr
    node.wait_for(": not_excluded")
    lines = node.text().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01 00:00:00,000")]
    assert any("P1\\n2026-01-01" in line for line in lines)  # escaped, on rtcheck's own line


def test_a_malformed_object_is_refused_and_logged_never_kept_unread(node, phantom_dir, tmp_path):
    # An RTDOSE naming no frame of reference could join no plan: it would lie in storage,
    # never checked. And an RTSTRUCT whose contour numbers are not numbers.
    dose = pydicom.dcmread(plan_files(phantom_dir)["RD"])
    del dose.FrameOfReferenceUID
    dose.save_as(tmp_path / "no-frame.dcm")
    sent = node.send(tmp_path / "no-frame.dcm")
    node.wait_for("refused: names no Frame of Reference UID")
    assert "0xA900" in sent.stdout + sent.stderr or sent.returncode != 0
    assert not list(node.storage.rglob("*.dcm"))
    line = next(x for x in node.text().splitlines() if "refused" in x)
    assert "RTDOSE" in line and "STORESCU@127.0.0.1" in line
    assert "site-packages" not in node.text() and "Traceback" not in node.text()


def test_a_stop_ends_within_a_bound_while_a_peer_holds_its_association(tmp_path):
    from pynetdicom import AE

    node = Node(tmp_path)
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", node.port, ae_title="RTCHECK")
    try:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        node.wait_for("association from HOLDER@127.0.0.1 accepted")
        node.process.send_signal(signal.SIGTERM)
        # 5 s for transfers in progress, then the association is aborted (not 30 s, not
        # forever while the peer keeps echoing).
        ended = time.monotonic() + 20
        while node.process.poll() is None and time.monotonic() < ended:
            if assoc.is_established:
                assoc.send_c_echo()
            time.sleep(0.5)
        assert node.process.poll() == 0, node.text()
    finally:
        if node.process.poll() is None:
            node.process.kill()
        if assoc.is_established:
            assoc.abort()
    text = node.text()
    assert "HOLDER@127.0.0.1 aborted: rtcheck is stopping" in text and "stopped" in text


@pytest.mark.parametrize("title", ["A" * 17, "BACK\\SLASH", "", "TAB\tTITLE"])
def test_an_ae_title_that_is_not_one_is_refused_in_one_line(tmp_path, title):
    for command in (["listen", "--storage", str(tmp_path / "s"), "--port", str(free_port())],
                    ["pull", "--pacs", "PACS@127.0.0.1:1"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", *command, "--ae-title", title],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, (command, done.stderr)
        assert "an AE title is 1 to 16" in done.stderr and done.stderr.count("\n") == 1
