"""The fields an eligibility record gives a trial's data system, defined once for the REDCap
data dictionary and import file and for the CDISC ODM metadata and clinical data, so that the
definitions and the values cannot disagree.

Criterion 19 is an exclusion criterion about RT dose limits only: its values say whether the
dose limits exclude the patient, never that the patient is eligible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rtcheck.evaluation.results import Eligibility, Grade
from rtcheck.outputs.table import format_value, metric_unit

FieldType = Literal["text", "integer", "datetime", "choice", "notes"]


@dataclass(frozen=True)
class TrialField:
    """One field of the instrument: its name (REDCap variable, ODM ItemOID suffix), label,
    type, and for a choice the coded values with their labels."""

    name: str
    label: str
    kind: FieldType
    choices: tuple[tuple[str, str], ...] = ()
    note: str = ""


#: Criterion 19's values, coded as REDCap and ODM code lists hold them.
DECISIONS: tuple[tuple[str, str], ...] = (
    ("1", "Excluded: an RT dose limit is not met"),
    ("2", "Not excluded by the RT dose limits"),
    ("3", "Indeterminate: the dose limits could not all be checked"),
)
DECISION_CODE: dict[str, str] = {
    Eligibility.EXCLUDED: "1",
    Eligibility.NOT_EXCLUDED: "2",
    Eligibility.INDETERMINATE: "3",
}

#: The instrument (REDCap form, ODM form) the fields belong to.
FORM = "rt_dose_limits"
FORM_LABEL = "RT dose limits (exclusion criterion 19)"

FIELDS: tuple[TrialField, ...] = (
    TrialField(
        "rtdl_decision",
        "Exclusion criterion 19 (RT dose limits), from the plan",
        "choice",
        DECISIONS,
        "Says whether the plan's doses exclude the patient; not an eligibility decision",
    ),
    TrialField("rtdl_checked_at", "Checked at (UTC)", "datetime"),
    TrialField("rtdl_protocol", "Dose-limit protocol", "text"),
    TrialField("rtdl_protocol_version", "Protocol version", "text"),
    TrialField("rtdl_protocol_sha256", "Protocol file SHA-256", "text"),
    TrialField("rtdl_software", "Checked by (software and version)", "text"),
    TrialField("rtdl_study_uid", "DICOM Study Instance UID", "text"),
    TrialField("rtdl_plan_uids", "RT Plan SOP Instance UIDs (one per line)", "notes"),
    TrialField(
        "rtdl_dose_mode", "Dose evaluated", "text", note="physical dose, or EQD2 sum of plans"
    ),
    TrialField("rtdl_fractions", "Fractions (one per plan, in plan order)", "text"),
    TrialField("rtdl_lesion_count", "Metastatic lesions found", "integer"),
    TrialField("rtdl_organ_count", "Metastatic organs", "integer"),
    TrialField("rtdl_failed_count", "Mandatory limits failed", "integer"),
    TrialField("rtdl_not_evaluated_count", "Limits not evaluated", "integer"),
    TrialField(
        "rtdl_failed_limits", "Failed mandatory limits (structure, metric, value, limit)", "notes"
    ),
    TrialField("rtdl_reasons", "Reasons for the decision", "notes"),
)


def _is_mandatory_failure(limit: Mapping[str, Any]) -> bool:
    return limit.get("priority") == "mandatory" and limit.get("result") in (
        Grade.FAIL,
        Grade.MAJOR_DEVIATION,
    )


def failed_limit_lines(record: Mapping[str, Any]) -> list[str]:
    """One line per failed mandatory limit: structure [lesion], metric, value against limit."""
    lines = []
    for limit in record.get("limits", []):
        if not _is_mandatory_failure(limit):
            continue
        unit = metric_unit(str(limit["metric"]))
        where = f"{limit['structure']}" + (f" [{limit['lesion']}]" if limit.get("lesion") else "")
        value = format_value(limit.get("value"), unit) + (f" {unit}" if unit else "")
        lines.append(f"{where}: {limit['metric']} = {value}, limit {limit['limit']}")
    return lines


def checked_at_utc(record: Mapping[str, Any]) -> datetime | None:
    """When the record was made, in UTC (None when it does not say)."""
    text = str(record.get("created") or "")
    try:
        made = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (made if made.tzinfo else made.replace(tzinfo=UTC)).astimezone(UTC)


def field_values(record: Mapping[str, Any]) -> dict[str, str]:
    """Every field's value for one eligibility record, as text ("" when the record has none)."""
    criterion = record["criterion_19"]
    limits = record.get("limits", [])
    plans = record.get("plans", [])
    created = checked_at_utc(record)
    software = record.get("software") or {}
    protocol = record.get("protocol") or {}
    return {
        "rtdl_decision": DECISION_CODE[str(criterion["decision"])],
        "rtdl_checked_at": created.strftime("%Y-%m-%d %H:%M:%S") if created else "",
        "rtdl_protocol": str(protocol.get("name") or ""),
        "rtdl_protocol_version": str(protocol.get("version") or ""),
        "rtdl_protocol_sha256": str(protocol.get("sha256") or ""),
        "rtdl_software": f"{software.get('name', 'rtcheck')} {software.get('version', '')}".strip(),
        "rtdl_study_uid": str(record.get("study_instance_uid") or ""),
        "rtdl_plan_uids": "\n".join(str(p.get("sop_instance_uid") or "") for p in plans),
        "rtdl_dose_mode": str(record.get("dose_mode") or ""),
        "rtdl_fractions": ", ".join(str(p.get("fractions") or "?") for p in plans),
        "rtdl_lesion_count": str(record.get("lesion_count", "")),
        "rtdl_organ_count": str(record.get("organ_count", "")),
        "rtdl_failed_count": str(sum(1 for lim in limits if _is_mandatory_failure(lim))),
        "rtdl_not_evaluated_count": str(
            sum(1 for lim in limits if lim.get("result") == Grade.NOT_EVALUATED)
        ),
        "rtdl_failed_limits": "\n".join(failed_limit_lines(record)),
        "rtdl_reasons": "\n".join(str(r) for r in criterion.get("reasons", [])),
    }
