"""The trial's subject keys for DICOM PatientIDs (``rtcheck export --map-subjects FILE``).

A hospital's PatientID must never reach a trial's data system: exports are keyed by the trial's
subject key, read from a CSV file with the header ``patient_id,subject_key``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from rtcheck.errors import SubjectMapError


def read_subject_map(path: str | Path) -> dict[str, str]:
    """PatientID → subject key, from a CSV file with the header ``patient_id,subject_key``.

    Raises
    ------
    SubjectMapError
        A missing header, an empty or repeated PatientID, or two patients on one subject key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubjectMapError(f"{path}: cannot be read ({exc})") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or {"patient_id", "subject_key"} - set(rows[0]):
        raise SubjectMapError(f"{path}: expected a CSV file with the header patient_id,subject_key")
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        patient, subject = (row.get("patient_id") or "").strip(), (row.get("subject_key") or "")
        subject = subject.strip()
        if not patient or not subject:
            raise SubjectMapError(f"{path}, line {line}: a patient_id and a subject_key are needed")
        if patient in mapping:
            raise SubjectMapError(f"{path}, line {line}: that patient_id is listed twice")
        mapping[patient] = subject
    if len(set(mapping.values())) != len(mapping):
        raise SubjectMapError(f"{path}: two patients share a subject_key")
    return mapping


def subject_key(mapping: Mapping[str, str], record: Mapping[str, object], source: str) -> str:
    """The subject key of a record's patient.

    Raises
    ------
    SubjectMapError
        The record's patient is not in the map (the message names the record's study UID, not
        the PatientID).
    """
    key = mapping.get(str(record.get("patient_id") or ""))
    if key is None:
        raise SubjectMapError(
            f"{source}: its patient (study {record.get('study_instance_uid') or 'unknown'}) is "
            "not in the subject map; nothing was exported"
        )
    return key
