"""A results database of three checked plans for the dashboard tests: PHANTOM-001 not
excluded, a plan excluded by its cord whose PatientID is hostile HTML, and one indeterminate
(no cord contoured)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HOSTILE_ID = '<script>alert("x")</script>%_'


@pytest.fixture(scope="session")
def archive_db(tmp_path_factory: pytest.TempPathFactory, phantom_dir: Path) -> tuple[Path, Path]:
    """(the archive folder, its SQLite results database)."""
    from rtcheck.archive.batch import run_batch
    from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom

    root = tmp_path_factory.mktemp("dashboard")
    archive = root / "archive"
    shutil.copytree(phantom_dir, archive / "p1")
    write_thorax_phantom(archive / "p2", ThoraxPhantom(patient_id=HOSTILE_ID, seed="web-2",
                                                       cord_dose_fraction=0.95))  # fmt: skip
    write_thorax_phantom(archive / "p3", ThoraxPhantom(patient_id="PHANTOM-003", seed="web-3",
                                                       renamed=(("Cord", None),)))  # fmt: skip
    db = root / "results.db"
    summary = run_batch(archive, None, db_url=f"sqlite:///{db}", workers=1)
    assert summary.checked == 3 and not summary.errors
    return archive, db


class Served:
    """`rtcheck serve` running on a free loopback port over ``db``, with ``extra`` options."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        from tests.network.peers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtcheck.cli", "serve", "--db", str(db), "--port",
             str(self.port), *extra],
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )  # fmt: skip
        end = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/plans", timeout=5).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > end:
                    raise AssertionError(f"serve did not start: {log.read_text()}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def plan_files(folder: Path) -> list[tuple[str, tuple[str, bytes]]]:
    """A plan folder's DICOM files as a multipart upload's ``files`` fields."""
    return [("files", (p.name, p.read_bytes())) for p in sorted(folder.glob("*.dcm"))]
