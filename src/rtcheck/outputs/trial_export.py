"""``rtcheck export``: eligibility records (from the results database or record files) into a
trial's data system: FHIR (one Bundle per record, NDJSON), REDCap (import file, CSV or JSON,
and the instrument's data dictionary) or CDISC ODM 1.3.2.

Every record is keyed by the trial's subject key from the subject map, and the export refuses a
record whose patient is not in it, so that no hospital PatientID reaches the trial's system.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcheck.errors import RecordFileError
from rtcheck.outputs.export_formats import ExportFormat
from rtcheck.outputs.subjects import subject_key


@dataclass(frozen=True)
class SourcedRecord:
    """An eligibility record and where it came from (a file, or a database plan key)."""

    source: str
    record: Mapping[str, Any]


def _schema() -> dict[str, Any]:
    from importlib import resources

    from rtcheck.outputs.record import SCHEMA_RESOURCE

    schema: dict[str, Any] = json.loads(
        resources.files("rtcheck").joinpath(SCHEMA_RESOURCE).read_text()
    )
    return schema


def records_from_files(paths: Iterable[str]) -> list[SourcedRecord]:
    """Read and validate eligibility record files against the shipped JSON Schema.

    Raises
    ------
    RecordFileError
        A file cannot be read, is not JSON, or is not a valid eligibility record.
    """
    try:
        import jsonschema
    except ImportError:
        raise RecordFileError(
            "reading record files needs jsonschema: pip install 'rtcheck[export]'"
        ) from None
    validator = jsonschema.Draft202012Validator(_schema())
    found = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordFileError(f"{path}: not a readable JSON file ({exc})") from None
        except RecursionError:
            raise RecordFileError(f"{path}: JSON nested too deeply to be a record") from None
        try:
            error = next(iter(validator.iter_errors(record)), None)
        except RecursionError:
            raise RecordFileError(f"{path}: JSON nested too deeply to be a record") from None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise RecordFileError(
                f"{path}: not an rtcheck eligibility record (at {where}: {error.message[:120]})"
            )
        found.append(SourcedRecord(str(path), record))
    return found


def export_text(
    records: Iterable[SourcedRecord],
    form: ExportFormat,
    subjects: Mapping[str, str],
    study_oid: str = "ST.RTCHECK",
    subject_system: str | None = None,
) -> str:
    """The export file's text.

    Raises
    ------
    SubjectMapError
        A record's patient is not in ``subjects`` (nothing is exported).
    """
    keyed = [(subject_key(subjects, r.record, r.source), r.record) for r in records]
    if form == "fhir":
        from rtcheck.outputs.fhir import DEFAULT_SUBJECT_SYSTEM, fhir_bundle, validated

        system = subject_system or DEFAULT_SUBJECT_SYSTEM
        return "".join(
            json.dumps(validated(fhir_bundle(record, key, system)), separators=(",", ":")) + "\n"
            for key, record in keyed
        )
    if form in ("redcap", "redcap-json"):
        from rtcheck.outputs.redcap import import_csv, import_json, import_rows

        rows = import_rows(keyed)
        return import_csv(rows) if form == "redcap" else import_json(rows)
    from rtcheck.outputs.odm import odm_xml

    return odm_xml(keyed, study_oid)
