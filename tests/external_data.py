"""Public RT test data that other projects publish, fetched once for the tests.

dicompyler-core's example plan (an Eclipse breast plan: RTSTRUCT, RTPLAN, and an RTDOSE that
carries Eclipse's own DVHs) is in dicompyler-core's source distribution on PyPI, not in its wheel.
It is 12 MB unpacked, too much to keep in this repository: ``pip download`` fetches the 2.6 MB
sdist (pinned by version and SHA-256) into ``tests/.external/`` (or ``$RTCHECK_TEST_DATA``),
and the example files are unpacked from it. Offline, the tests that need it are skipped; in CI
(``CI`` set) they fail instead, so that a green CI always means they ran.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST = "dicompyler-core-0.5.6.tar.gz"
SDIST_SHA256 = "0e3c05920a8fa3f1c0ff05a5c21dab3ff3f735e00012b69b38926b219d07faee"
EXAMPLE_DIR = "dicompyler-core-0.5.6/tests/testdata/example_data/"
EXAMPLE_FILES = ("rtss.dcm", "rtplan.dcm", "rtdose.dcm")


def _cache() -> Path:
    default = Path(__file__).resolve().parent / ".external"
    return Path(os.environ.get("RTCHECK_TEST_DATA", default))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"dicompyler-core's example data is needed in CI: {reason}")
    pytest.skip(f"dicompyler-core's example data unavailable: {reason}")


def dicompyler_example_data() -> Path:
    """The folder holding dicompyler-core 0.5.6's example plan (RTSTRUCT, RTPLAN, RTDOSE)."""
    folder = _cache() / "dicompyler-example-data"
    if all((folder / name).is_file() for name in EXAMPLE_FILES):
        return folder
    sdist = _cache() / SDIST
    if not sdist.is_file():
        _cache().mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "--dest", str(_cache()), "dicompyler-core==0.5.6"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode != 0 or not sdist.is_file():
            _unavailable(f"pip download failed: {result.stderr.strip()[-300:]}")
    if hashlib.sha256(sdist.read_bytes()).hexdigest() != SDIST_SHA256:
        _unavailable(f"{sdist} does not have the expected SHA-256")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for name in EXAMPLE_FILES:
            member = archive.getmember(EXAMPLE_DIR + name)
            source = archive.extractfile(member)
            assert source is not None
            (folder / name).write_bytes(source.read())
    return folder
