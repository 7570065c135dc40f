"""The terminal table of `rtcheck check`: within 100 columns, one row per distinct limit, values
at the precision they are read at, margins with their unit, and what to do when a lesion's
prescription is unknown said once."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.results import Evaluation
from rtcheck.outputs.table import WIDTH, check_table, format_value, metric_unit
from rtcheck.protocol.definition import load_protocol
from rtcheck.protocol.names import read_lesion_map

ROW = re.compile(r"^(pass|FAIL|N/E|not contoured)\s")


@pytest.fixture(scope="module")
def phantom_evaluation(phantom_dir: Path) -> Evaluation:
    return evaluate(load_plan([phantom_dir]), load_protocol())


@pytest.fixture(scope="module")
def stereo_evaluation(stereotactic_dir: Path) -> Evaluation:
    return evaluate(load_plan([stereotactic_dir]), load_protocol())


@pytest.fixture(scope="module")
def no_rtplan(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("no-rtplan")
    for f in phantom_dir.iterdir():
        if not f.name.startswith("RP"):
            shutil.copy(f, folder / f.name)
    return folder


def rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if ROW.match(line)]


def test_every_line_fits_100_columns_and_no_roi_name_is_cut(phantom_evaluation):
    table = check_table(phantom_evaluation)
    assert max(map(len, table.splitlines())) <= WIDTH
    assert "..." not in table
    # The derived structure's ROIs are listed whole, once, below the table.
    assert table.count("Lungs-PTVs = LUNG LT + Lung Rt - PTV_50 - PTV_M1_lungR") == 1


def test_a_limit_equal_for_several_lesions_is_one_row_naming_them(stereo_evaluation):
    table = check_table(stereo_evaluation)
    cord = [r for r in rows(table) if r[2].startswith("SpinalCord [") and r[3] == "D0.03cc[Gy]"]
    assert [r[2] for r in cord] == ["SpinalCord [M1-M3]"]
    per_lesion = [r for r in stereo_evaluation.limits if r.structure == "SpinalCord"
                  and r.lesion and r.metric == "D0.03cc[Gy]"]  # fmt: skip
    assert len(per_lesion) == 3  # the record keeps one result per lesion
    # Rows whose values differ are not merged: each lesion's own coverage stays its own row.
    assert sum(r[2].startswith("PTV_M1_lungR [M1]") for r in rows(table)) >= 2


def test_values_are_printed_at_their_units_precision_and_margins_carry_the_unit(
    stereo_evaluation,
):
    for row in rows(check_table(stereo_evaluation)):
        if row[0] == "not contoured":
            continue
        unit = metric_unit(row[3])
        decimals = {"Gy": 2, "cc": 1, "%": 1, "": 2}[unit]
        assert re.fullmatch(rf"-?\d+\.\d{{{decimals}}}", row[4]), row
        shown_unit = f" {re.escape(unit)}" if unit else ""
        assert re.fullmatch(rf"[+-]\d+\.\d{{{decimals}}}{shown_unit}", row[6]), row
    # The cord limit converted from 5 to 4 fractions is read at 0.01 Gy; the published 0.35 cc
    # stays as published.
    cord = next(r for r in stereo_evaluation.limits
                if r.structure == "SpinalCord" and r.metric == "D0.03cc[Gy]")  # fmt: skip
    assert cord.limit is not None and len(cord.limit.split(".")[-1]) == 3
    table = check_table(stereo_evaluation)
    assert f"<= {float(cord.limit.split()[-1]):.2f} [" in table and f"{cord.limit} [" not in table
    assert "<= 0.35 [" in table


def test_format_value_by_unit():
    assert format_value(52.6149, "Gy") == "52.61"
    assert format_value(1094.68, "cc") == "1094.7"
    assert format_value(97.104, "%") == "97.1"
    assert format_value(None, "Gy") == "-"


def test_a_long_structure_name_wraps_instead_of_being_cut(stereo_evaluation):
    long_name = "Esophagus_Without_Its_Cervical_Part_As_Our_Clinic_Names_It"
    limits = tuple(
        replace(r, structure=long_name) if r.structure == "Esophagus" and r.lesion else r
        for r in stereo_evaluation.limits
    )
    table = check_table(replace(stereo_evaluation, limits=limits))
    assert max(map(len, table.splitlines())) <= WIDTH
    assert "..." not in table
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("Result"))
    start, end = header.index("Structure"), header.index("Metric")
    first = next(i for i, line in enumerate(lines) if "Esophagus_With" in line)
    cell = [lines[first][start:end].strip()]
    for line in lines[first + 1 :]:
        if line[:start].strip():  # the next row
            break
        cell.append(line[start:end].strip())
    assert len(cell) > 1
    # Wrapped, not cut: the pieces read the whole name.
    assert "".join(cell).replace(" ", "") == long_name + "[M1-M3]"


def test_unknown_prescriptions_are_counted_by_cause_and_the_map_entry_is_shown_once(
    no_rtplan, tmp_path
):
    table = check_table(evaluate(load_plan([no_rtplan]), load_protocol()))
    assert table.startswith("Criterion 19: INDETERMINATE\n")
    assert max(map(len, table.splitlines())) <= WIDTH
    assert re.search(r"^\s+\d+ limits: unknown fractionation of dose", table, re.M)
    assert table.count("--map file") == 1
    # A coverage limit that could not be evaluated is named by its target, as when it is.
    coverage = [r for r in rows(table) if r[3] == "V100%[%]" and r[2].endswith("[M1]")]
    assert {r[2] for r in coverage} == {"PTV_M1_lungR [M1]"} and coverage[0][0] == "N/E"
    hint = table.split("--map FILE):\n", 1)[1]
    entries = [line for line in hint.splitlines() if "prescription_gy: <Gy>" in line]
    assert len(entries) == 3
    # Filled in, the shown entry is a map file that gives the lesions their prescriptions.
    text = "lesions:\n" + "\n".join(entries).replace("<Gy>", "50").replace("<n>", "25")
    mapping = tmp_path / "map.yaml"
    mapping.write_text(text)
    assert yaml.safe_load(text)["lesions"]["PTV_M1_lungR"] == {
        "prescription_gy": 50, "fractions": 25,
    }  # fmt: skip
    fixed = evaluate(load_plan([no_rtplan]), load_protocol(), None, read_lesion_map(mapping))
    assert all(lesion.prescription_gy == 50 for lesion in fixed.lesions)
    assert "--map file" not in check_table(fixed)


def test_a_plan_without_unknowns_shows_no_map_hint(phantom_evaluation):
    assert "--map file" not in check_table(phantom_evaluation)


def test_lesion_lists():
    from rtcheck.outputs.table import lesion_list

    assert lesion_list(["M1", "M2", "M3"]) == "M1-M3"
    assert lesion_list(["M1", "M2"]) == "M1, M2"
    assert lesion_list(["M1", "M3", "M4"]) == "M1, M3, M4"
    assert lesion_list(["M1", "L2", "M3"]) == "M1, L2, M3"
