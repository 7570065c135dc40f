"""The real peers of the network tests, started by the tests on loopback: `rtcheck listen` as a
process, dcmtk's storescu, and Orthanc (a PACS) with a throw-away configuration.

CI installs dcmtk and Orthanc; there (``CI`` set), a missing peer fails the tests instead of
skipping them, so that the tests cannot pass by not running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rtcheck.archive.store import open_store, plan_rows

STORESCU = shutil.which("storescu")
ORTHANC = shutil.which("Orthanc")


def require(program: str | None, package: str) -> None:
    """Skip the test when a peer is not installed, except in CI, where that is a failure."""
    if program is None:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed; .ci/run installs it")
        pytest.skip(f"{package} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """A running `rtcheck listen` process and what it was given."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.storage, self.db, self.log = tmp / "received", tmp / "results.db", tmp / "listen.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtcheck.cli", "listen", "--storage", str(self.storage),
             "--port", str(self.port), "--db", str(self.db), "--settle", "0.5", *extra],
            stderr=self.log.open("w"), stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.wait_for("listening as")

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, fragment: str, count: int = 1, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.text().count(fragment) >= count:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"listener exited: {self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"no {fragment!r} x{count} in: {self.text()}")

    def send(self, *files: Path, aet: str = "STORESCU") -> subprocess.CompletedProcess[str]:
        assert STORESCU is not None
        return subprocess.run(
            [STORESCU, "-aet", aet, "-aec", "RTCHECK", "127.0.0.1", str(self.port),
             *map(str, files)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def decisions(self) -> list[str]:
        if not self.db.exists():
            return []
        return [str(row["decision"]) for row in plan_rows(open_store(f"sqlite:///{self.db}"))]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class Orthanc:
    """Orthanc on free loopback ports, its index and storage in ``folder``; the calling AE
    titles in ``modalities`` (with the port a C-MOVE reaches them on) may query and
    retrieve."""

    def __init__(
        self, folder: Path, modalities: dict[str, str | tuple[str, int]],
        env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        assert ORTHANC is not None
        self.ae_title = "ORTHANC"
        self.dicom_port, self.http_port = free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "rtcheck-tests", "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"), "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "DicomModalities": {
                name: {"AET": aet, "Host": "127.0.0.1", "Port": port,
                       "AllowFind": True, "AllowGet": True, "AllowMove": True}
                for name, (aet, port) in (
                    (n, v if isinstance(v, tuple) else (v, 104)) for n, v in modalities.items()
                )
            },
        }  # fmt: skip
        path = folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self.log = folder / "orthanc.log"
        self.process = subprocess.Popen(
            [ORTHANC, str(path)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            env={**os.environ, **(env or {})},
        )
        end = time.monotonic() + 60
        while True:
            try:
                self.rest("GET", "/system")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > end:
                    raise AssertionError(f"Orthanc did not start: {self.log.read_text()}") from None
                time.sleep(0.1)

    @property
    def address(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def rest(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"null")

    def upload(self, *files: Path) -> list[str]:
        """POST each file to /instances; Orthanc's instance identifiers."""
        return [str(self.rest("POST", "/instances", f.read_bytes())["ID"]) for f in files]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def plan_files(folder: Path) -> dict[str, Path]:
    """A plan folder's RT files by kind: ``RS``, ``RP``, ``RD``."""
    return {p.name[:2]: p for p in sorted(folder.glob("R[SDP]*.dcm"))}
