"""REDCap: the instrument's data dictionary (uploaded once by the trial office) and the import
file (CSV or JSON, flat), both from :data:`rtcheck.outputs.trial_fields.FIELDS`.

Each eligibility record is one instance of the repeating instrument ``rt_dose_limits`` of its
subject (a subject may have several plans, or a plan checked again), and is marked *Unverified*:
a person confirms it in REDCap.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from rtcheck.outputs import cells
from rtcheck.outputs.trial_fields import FIELDS, FORM, FORM_LABEL, TrialField, field_values

#: The column headers of a REDCap data dictionary, in REDCap's order.
DICTIONARY_HEADER = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
RECORD_ID = "record_id"
#: REDCap's form status: 0 Incomplete, 1 Unverified, 2 Complete.
UNVERIFIED = "1"
_TYPES = {
    "text": "text",
    "integer": "text",
    "datetime": "text",
    "choice": "radio",
    "notes": "notes",
}
_VALIDATION = {"integer": "integer", "datetime": "datetime_seconds_ymd"}


def _dictionary_row(field: TrialField, section: str = "") -> list[str]:
    row = dict.fromkeys(DICTIONARY_HEADER, "")
    row["Variable / Field Name"] = field.name
    row["Form Name"] = FORM
    row["Section Header"] = section
    row["Field Type"] = _TYPES[field.kind]
    row["Field Label"] = field.label
    row["Choices, Calculations, OR Slider Labels"] = " | ".join(
        f"{code}, {label}" for code, label in field.choices
    )
    row["Field Note"] = field.note
    row["Text Validation Type OR Show Slider Number"] = _VALIDATION.get(field.kind, "")
    row["Text Validation Min"] = "0" if field.kind == "integer" else ""
    if field.name != RECORD_ID:
        row["Field Annotation"] = "@READONLY"  # written by rtcheck, not typed in
    return list(row.values())


def data_dictionary_csv() -> str:
    """The data dictionary: the record identifier, then the instrument's fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DICTIONARY_HEADER)
    identifier = TrialField(RECORD_ID, "Trial subject key", "text")
    writer.writerow(_dictionary_row(identifier))
    for number, field in enumerate(FIELDS):
        writer.writerow(_dictionary_row(field, FORM_LABEL if number == 0 else ""))
    return out.getvalue()


def import_rows(keyed: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, str]]:
    """One row per (subject key, record), numbered per subject by the time it was checked."""
    rows: list[dict[str, str]] = []
    instances: dict[str, int] = {}
    for subject, record in sorted(keyed, key=lambda kr: (kr[0], str(kr[1].get("created")))):
        instances[subject] = instances.get(subject, 0) + 1
        rows.append(
            {
                RECORD_ID: subject,
                "redcap_repeat_instrument": FORM,
                "redcap_repeat_instance": str(instances[subject]),
                **field_values(record),
                f"{FORM}_complete": UNVERIFIED,
            }
        )
    return rows


def import_csv(rows: list[dict[str, str]]) -> str:
    """The flat CSV import file (REDCap's "Data Import Tool")."""
    header = [
        RECORD_ID,
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        *(f.name for f in FIELDS),
        f"{FORM}_complete",
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(cells.mapping(r) for r in rows)
    return out.getvalue()


def import_json(rows: list[dict[str, str]]) -> str:
    """The flat JSON import (REDCap's API, ``content=record``, ``format=json``, ``type=flat``)."""
    return json.dumps(rows, indent=1, ensure_ascii=False)
