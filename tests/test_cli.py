"""The command line, run as a real process: exit codes, one-line errors, JSON and CSV shapes."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tree_digest

PHANTOM = Path(__file__).resolve().parents[1] / "phantom_data" / "thorax"


def rtcheck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtcheck", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rtcheck: error: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_dvh_table_on_the_bundled_phantom():
    result = rtcheck("dvh", str(PHANTOM))
    assert result.returncode == 0, result.stderr
    assert "Lung Rt" in result.stdout and "D0.03cc[Gy]" in result.stdout
    assert "BODY" not in result.stdout


def test_dvh_json_to_stdout_has_the_documented_shape():
    result = rtcheck(
        "dvh", str(PHANTOM), "--structure", "Cord", "--structure", "PTV_50",
        "--metric", "D0.03cc[Gy]", "--metric", "V20Gy[%]", "--metric", "D95%[%]", "--json", "-",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["name"] for s in doc["structures"]] == ["Cord", "PTV_50"]
    for entry in doc["structures"]:
        assert set(entry) >= {"name", "volume_cc", "metrics", "dose_coverage", "warnings"}
        assert set(entry["metrics"]) == {"D0.03cc[Gy]", "V20Gy[%]", "D95%[%]"}
        assert entry["dose_coverage"] == 1.0
    ptv = doc["structures"][1]
    assert 90 < ptv["metrics"]["D95%[%]"] < 100  # relative to the RTPLAN's 50 Gy
    assert doc["doses"][0]["fractions"] == 25 and doc["doses"][0]["prescription_gy"] == 50.0
    assert "PHANTOM^THORAX" not in result.stdout  # no patient name in the output


def test_json_and_csv_files(tmp_path):
    before = tree_digest(PHANTOM)
    result = rtcheck("dvh", str(PHANTOM), "--json", str(tmp_path / "d.json"),
                     "--csv", str(tmp_path / "d.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "d.json").read_text())
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert len(rows) == len(doc["structures"]) == 15
    assert float(rows[0]["volume_cc"]) == pytest.approx(doc["structures"][0]["volume_cc"], 1e-4)
    assert tree_digest(PHANTOM) == before


def test_phantom_command_is_deterministic(tmp_path):
    assert rtcheck("phantom", str(tmp_path / "a")).returncode == 0
    assert rtcheck("phantom", str(tmp_path / "b")).returncode == 0
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["dvh", str(PHANTOM), "--metric", "D95"], "malformed DVH metric 'D95'"),
        (["dvh", str(PHANTOM), "--structure", "Spleen"], "no ROI named 'Spleen'"),
        (["dvh", "/nonexistent/plan"], "no such file or folder"),
        (["dvh"], "required"),
        (["frobnicate"], "invalid choice"),
        (["dvh", str(PHANTOM), "--prescription", "-3"], "positive"),
        (["dvh", str(PHANTOM), "--json", "/nonexistent/dir/out.json"], "does not exist"),
        (["dvh", str(PHANTOM / "RS.thorax.dcm")], "no RTDOSE"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, fragment):
    assert_one_line_error(rtcheck(*args), fragment)


def test_relative_metric_without_prescription(tmp_path):
    folder = tmp_path / "noplan"
    folder.mkdir()
    for name in ("RS.thorax.dcm", "RD.thorax.dcm"):
        (folder / name).write_bytes((PHANTOM / name).read_bytes())
    result = rtcheck("dvh", str(folder), "--structure", "PTV_50", "--metric", "V95%[%]")
    assert_one_line_error(result, "prescription")
    ok = rtcheck("dvh", str(folder), "--structure", "PTV_50", "--metric", "V95%[%]",
                 "--prescription", "50", "--json", "-")  # fmt: skip
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["structures"][0]["metrics"]["V95%[%]"] > 90


def test_non_dicom_file_is_one_line(tmp_path):
    junk = tmp_path / "plan.dcm"
    junk.write_bytes(b"\x00" * 50)
    assert_one_line_error(rtcheck("dvh", str(junk)), "not a DICOM file")


def test_check_with_a_broken_protocol_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: x\nversion: '1'\noar_limits: {fractions: 25, limits: [{structure: "
                   "SpinalCord, metric: 'D0.03cc[Gy]', limit: '45', priority: mandatory, "
                   "source: s}]}\n")  # fmt: skip
    result = rtcheck("check", str(PHANTOM), "--protocol", str(bad))
    assert_one_line_error(result, "must be a comparator and a number")
    assert_one_line_error(rtcheck("check", str(PHANTOM), "--protocol", "nope"), "no bundled")
    assert_one_line_error(rtcheck("check", str(PHANTOM), "--map", str(tmp_path / "x.yaml")),
                          "cannot read the map file")  # fmt: skip


def test_check_table_and_protocols_listing():
    result = rtcheck("check", str(PHANTOM))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Criterion 19: NOT_EXCLUDED")
    listing = rtcheck("protocols")
    from rtcheck.protocol.definition import load_protocol

    version = load_protocol().version
    assert listing.returncode == 0 and f"eso-oligo-rt  version {version}" in listing.stdout


def test_undefined_metrics_and_empty_rois_are_null_with_a_warning(tmp_path):
    import numpy as np

    from rtcheck.phantom import synthetic as S
    from tests.conftest import write_case

    zs = list(np.arange(-8, 8.01, 2.0))
    rois = [
        S.RoiSpec.from_shape("Small", "ORGAN", S.sphere(0, 0, 0, 8.0), zs),  # about 2.2 cc
        S.RoiSpec("Empty", "ORGAN", []),
    ]
    folder = write_case(tmp_path, rois, lambda x, y, z: 30.0 + 0 * x, 2.0, lo=(-20,) * 3,
                        hi=(20,) * 3)  # fmt: skip
    result = rtcheck(
        "dvh", str(folder), "--structure", "Small", "--structure", "Empty",
        "--metric", "D15cc[Gy]", "--metric", "D1cc[Gy]", "--json", "-",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {s["name"]: s for s in json.loads(result.stdout)["structures"]}
    assert rows["Small"]["metrics"]["D15cc[Gy]"] is None
    assert rows["Small"]["metrics"]["D1cc[Gy]"] == pytest.approx(30.0, abs=1e-3)
    assert rows["Empty"]["empty"] and rows["Empty"]["metrics"]["D1cc[Gy]"] is None
    assert "D15cc[Gy] is undefined: ROI 'Small' has" in result.stderr
    assert "'Empty' has no contours" in result.stderr


@pytest.mark.parametrize(
    # The phantom draws with scipy, which imports numpy.ma itself.
    ("command", "needed"),
    [("dvh", set()), ("check", {"yaml"}), ("phantom", {"numpy.ma"})],
)
def test_a_command_imports_only_what_it_uses(tmp_path, command, needed):
    heavy = ("sqlalchemy", "tqdm", "dask", "distributed", "matplotlib", "yaml", "pandas",
             "scipy.ndimage", "numpy.ma", "shapely")  # fmt: skip
    args = {"dvh": [str(PHANTOM)], "check": [str(PHANTOM)], "phantom": [str(tmp_path / "p")]}
    code = (
        "import sys\n"
        "from rtcheck.cli import main\n"
        f"status = main([{command!r}, *{args[command]!r}])\n"
        f"print(sorted(m for m in {heavy!r} if sys.modules.get(m) is not None))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))) == needed


def test_a_named_command_imports_its_own_module_alone_and_help_still_lists_every_command():
    code = (
        "import sys\n"
        "from rtcheck.cli import COMMANDS, main\n"
        f"status = main(['dvh', {str(PHANTOM)!r}, '--structure', 'Cord'])\n"
        "print([c for c in COMMANDS if 'rtcheck.cli.' + c in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['dvh']"
    from rtcheck.cli import COMMANDS

    listing = rtcheck("--help")
    assert listing.returncode == 0 and all(name in listing.stdout for name in COMMANDS)
    misspelt = rtcheck("dhv", str(PHANTOM))
    assert misspelt.returncode == 2 and "choose from" in misspelt.stderr
    assert "'check'" in misspelt.stderr and "'serve'" in misspelt.stderr
    own = rtcheck("batch", "--help")
    assert own.returncode == 0 and own.stdout.startswith("usage: rtcheck batch")


def test_the_phantom_command_builds_distinct_plans(tmp_path):
    out = tmp_path / "p2"
    result = rtcheck(
        "phantom", str(out), "--patient-id", "TEST-7", "--seed", "s7", "--lesions", "1"
    )
    assert result.returncode == 0, result.stderr
    import pydicom

    mine = pydicom.dcmread(out / "RS.thorax.dcm")
    bundled = pydicom.dcmread(PHANTOM / "RS.thorax.dcm")
    assert mine.PatientID == "TEST-7" and mine.SOPInstanceUID != bundled.SOPInstanceUID
    checked = rtcheck("check", str(out), "--json", "-")
    assert json.loads(checked.stdout)["lesion_count"] == 1
    for bad in (["--lesions", "7"], ["--patient-id", "a\\b"], ["--patient-id", "x" * 65]):
        refused = rtcheck("phantom", str(tmp_path / "bad"), *bad)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1


def test_an_absent_optional_structure_reads_not_contoured():
    result = rtcheck("check", str(PHANTOM))
    assert result.returncode == 0
    rows = [line for line in result.stdout.splitlines() if "Kidney_L" in line]
    assert rows and rows[0].startswith("not contoured  (optional)")
    assert "absent" not in result.stdout and "mandatory  Kidney" not in result.stdout


def test_one_protocols_limits_as_a_table_and_as_json():
    table = rtcheck("protocols", "eso-oligo-rt")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    cord = [line for line in lines if line.startswith("SpinalCord ") and "D0.03cc[Gy]" in line]
    assert any("<= 14" in line and "1 fx" in line and "near a lesion" in line for line in cord)
    assert any(re.match(r"\[\d+\] Benedict SH", line) for line in lines)
    document = json.loads(rtcheck("protocols", "eso-oligo-rt", "--json").stdout)
    columns = {
        c["fractions"]: c["limit"]
        for limit in document["limits"]
        if limit["structure"] == "SpinalCord" and limit["group"] == "lesion_oar"
        for c in limit["columns"]
        if c["metric"] == "D0.03cc[Gy]"
    }
    assert columns == {1: "<= 14", 3: "<= 21.9", 5: "<= 30"}
    missing = rtcheck("protocols", "no-such-protocol")
    assert missing.returncode == 2 and "no bundled protocol named" in missing.stderr


@pytest.mark.parametrize(
    "command", ["dvh", "check", "batch", "results", "protocols", "phantom", "listen"]
)
def test_every_subcommand_help_shows_an_example(command):
    result = rtcheck(command, "--help")
    assert result.returncode == 0
    assert "example" in result.stdout and f"rtcheck {command}" in result.stdout.split("example")[1]


def test_help_states_defaults_and_values():
    assert "default: one per core" in rtcheck("batch", "--help").stdout
    assert "{table,csv,json}" in rtcheck("results", "--help").stdout


def test_a_one_shot_command_ends_without_teardown_with_all_its_output_written(tmp_path):
    # check, dvh and screen end with os._exit once their output is flushed: a large JSON
    # document through a pipe arrives whole, the exit status is the command's, and a reader
    # that stops early costs no error message.
    import os

    from rtcheck.cli import ONE_SHOT

    assert set(ONE_SHOT) == {"check", "dvh", "screen"}  # never batch, listen, pull, serve
    many = [a for i in range(1, 100) for a in ("--metric", f"D{i}%[Gy]", "--metric", f"V{i}Gy[cc]")]
    big = rtcheck("dvh", str(PHANTOM), "--json", "-", *many)
    assert big.returncode == 0, big.stderr
    assert len(big.stdout) > 65536 and json.loads(big.stdout)["structures"]
    checked = rtcheck("check", str(PHANTOM), "--json", "-")
    assert checked.returncode in (0, 1, 3) and json.loads(checked.stdout)["criterion_19"]
    reader = subprocess.Popen(
        [sys.executable, "-m", "rtcheck", "dvh", str(PHANTOM), "--json", "-", *many],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.read(100)
    reader.stdout.close()  # the reader goes away, as `| head -c 100` does
    error = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 0 and error == "", error
    # A command that is not one-shot still exits through the interpreter (its atexit runs).
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('teardown ran'))\n"
        "sys.argv = ['rtcheck', 'protocols']\n"
        "from rtcheck.cli import console\n"
        "console()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ})  # fmt: skip
    assert result.returncode == 0 and "teardown ran" in result.stdout
    code = code.replace("'protocols'", f"'dvh', {str(PHANTOM)!r}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0 and "teardown ran" not in result.stdout
    assert "Lung Rt" in result.stdout
    # python -m rtcheck is the same program.
    code = code.replace(
        "from rtcheck.cli import console\nconsole()\n",
        "import runpy\nrunpy.run_module('rtcheck', run_name='__main__')\n",
    )
    assert "runpy" in code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0 and "teardown ran" not in result.stdout
