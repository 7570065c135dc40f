"""A plan assembled from two patients' objects is refused, whatever links them by UID."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.errors import PlanLinkError
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom


@pytest.fixture(scope="module")
def plan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("patient")
    write_thorax_phantom(folder, ThoraxPhantom(patient_id="TRIAL-0417"))
    return folder


def altered(source: Path, target: Path, modality: str, **values: str) -> Path:
    """A copy of the plan folder with the attributes ``values`` changed in its ``modality``
    object (only there: the UIDs still link every object)."""
    target.mkdir()
    for file in sorted(source.iterdir()):
        ds = pydicom.dcmread(file)
        if ds.Modality == modality:
            for keyword, value in values.items():
                setattr(ds, keyword, value)
        ds.save_as(target / file.name)
    return target


@pytest.mark.parametrize("modality", ["RTDOSE", "RTPLAN"])
def test_an_object_of_another_patient_is_refused_with_masked_ids(plan_folder, tmp_path, modality):
    mixed = altered(plan_folder, tmp_path / "mixed", modality, PatientID="TRIAL-0932")
    with pytest.raises(PlanLinkError) as raised:
        load_plan([mixed])
    message = str(raised.value)
    assert "two patients" in message and modality in message
    assert "…0932" in message and "…0417" in message
    assert hashlib.sha256(b"TRIAL-0932").hexdigest()[:8] in message
    assert "TRIAL-0932" not in message and "TRIAL-0417" not in message  # never whole


def test_another_birth_date_under_the_same_id_is_refused(plan_folder, tmp_path):
    # The phantom states no birth date: every object gets one, the RTDOSE another.
    dated = altered(plan_folder, tmp_path / "dated", "RTSTRUCT", PatientBirthDate="19570811")
    dated = altered(dated, tmp_path / "dated-plan", "RTPLAN", PatientBirthDate="19570811")
    assert load_plan([altered(dated, tmp_path / "same", "RTDOSE", PatientBirthDate="19570811")])
    mixed = altered(dated, tmp_path / "born", "RTDOSE", PatientBirthDate="19610203")
    with pytest.raises(PlanLinkError, match="PatientBirthDate differs"):
        load_plan([mixed])


def test_a_dose_linked_by_frame_alone_must_be_of_the_same_study(plan_folder, tmp_path):
    mixed = altered(plan_folder, tmp_path / "study", "RTDOSE", StudyInstanceUID="1.2.3.4.5")
    for file in mixed.glob("RD*"):
        ds = pydicom.dcmread(file)
        del ds.ReferencedRTPlanSequence
        if "ReferencedStructureSetSequence" in ds:
            del ds.ReferencedStructureSetSequence
        ds.save_as(file)
    for file in mixed.glob("RP*"):
        file.unlink()
    with pytest.raises(PlanLinkError, match="nothing shows it is this patient's plan's dose"):
        load_plan([mixed])
    # The same dose linked to its plan by reference may be of another study (a legal layout).
    linked = altered(plan_folder, tmp_path / "linked", "RTDOSE", StudyInstanceUID="1.2.3.4.5")
    assert load_plan([linked]).patient_id == "TRIAL-0417"


def test_check_refuses_a_mixed_plan_in_one_line_exit_2(plan_folder, tmp_path):
    mixed = altered(plan_folder, tmp_path / "mixed", "RTDOSE", PatientID="TRIAL-0932")
    done = subprocess.run([sys.executable, "-m", "rtcheck.cli", "check", str(mixed)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "two patients" in done.stderr
    assert not done.stdout.strip()
