"""The phantom as a stereotactic, lesions-only plan: the decision follows its conformity
(good: not excluded; poorer: minor and major deviations of the RTOG table, excluded)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def rtcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtcheck.cli", *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("margin", "decision", "m1_r100"),
    [("4", "not_excluded", "pass"), ("6", "excluded", "minor_deviation"),
     ("9", "excluded", "major_deviation")],
)  # fmt: skip
def test_the_decision_follows_the_lesions_conformity(tmp_path, margin, decision, m1_r100):
    plan = tmp_path / "plan"
    made = rtcheck("phantom", str(plan), "--no-primary", "--fractions", "5",
                   "--prescription", "35", "--lesion-margin", margin, "--seed", f"sbrt-{margin}",
                   )  # fmt: skip
    assert made.returncode == 0, made.stderr
    checked = rtcheck("check", str(plan), "--json", str(tmp_path / "record.json"))
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["criterion_19"]["decision"] == decision
    assert checked.returncode == {"not_excluded": 0, "excluded": 1}[decision]
    r100 = next(x for x in record["limits"] if x["lesion"] == "M1" and x["metric"] == "R100%")
    assert r100["result"] == m1_r100 and r100["acceptable"] == "< 1.5"
    # A lesions-only, 5-fraction plan: TG-101 applies, the conventional table does not.
    whole = {(x["structure"], x["metric"]) for x in record["limits"] if x["group"] == "oar"}
    assert ("SpinalCord", "D0.03cc[Gy]") in whole and ("Lungs-PTVs", "V20Gy[%]") not in whole
    assert not [x for x in record["structures"] if x["name"] == "PTV_50"]


def test_phantom_options_are_checked(tmp_path):
    bad = rtcheck("phantom", str(tmp_path / "x"), "--fractions", "0")
    assert bad.returncode == 2 and "--fractions must be from 1 to 100" in bad.stderr
