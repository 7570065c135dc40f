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


def test_lesions_in_plans_of_their_own_at_different_fractionations(tmp_path):
    plan = tmp_path / "plan"
    made = rtcheck("phantom", str(plan), "--lesions", "5", "--lesion-plan", "30/3",
                   "--lesion-plan", "35/5", "--lesion-plan", "24/1", "--lesion-plan", "40/8",
                   "--lesion-plan", "50/25", "--seed", "mixed")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert len(made.stdout.split()) == 3 + 10  # RS, the primary's RP and RD, two per lesion
    rtcheck("check", str(plan), "--json", str(tmp_path / "record.json"))
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["dose_mode"] == "EQD2 sum of plans"
    assert record["criterion_19"]["decision"] == "not_excluded"
    lesions = {
        x["name"]: (x["prescription_gy"], x["fractions"], x["plan"]) for x in record["lesions"]
    }
    assert lesions == {"M1": (30.0, 3, "M1"), "M2": (35.0, 5, "M2"), "M3": (24.0, 1, "M3"),
                       "M4": (40.0, 8, "M4"), "M5": (50.0, 25, "M5")}  # fmt: skip
    # The four stereotactic lesions get the RTOG table and TG-101; the conventional one neither.
    r100 = {x["lesion"] for x in record["limits"] if x["metric"] == "R100%"}
    near = {x["lesion"] for x in record["limits"] if x["group"] == "lesion_oar"}
    assert r100 == near == {"M1", "M2", "M3", "M4"}
    # Near-lesion limits are in the lesion's own fractionation, published for it or converted
    # within its regime (8 fractions from the 5-fraction column).
    m4 = [x for x in record["limits"] if x["lesion"] == "M4" and x["group"] == "lesion_oar"]
    assert all("published for 5 fractions; converted to 8 fractions" in (x["conversion"] or "")
               for x in m4 if x["metric"] == "D0.03cc[Gy]")  # fmt: skip
