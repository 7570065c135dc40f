"""FHIR R4 (R4B): one Bundle per eligibility record, holding an Observation of exclusion
criterion 19 (RT dose limits), linked to the patient by the trial's subject identifier and to
the imaging study by its DICOM Study Instance UID. The limits that did not pass (failed, a
deviation, or not evaluated) are its components, with value, limit and interpretation.

Criterion 19 says whether RT dose limits exclude a patient; the Observation's value is
"excluded", "not excluded" or "indeterminate", never "eligible". It is *preliminary*: rtcheck
computed it, and a person confirms it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from rtcheck.evaluation.results import Eligibility, Grade
from rtcheck.outputs.table import metric_unit
from rtcheck.outputs.trial_fields import checked_at_utc

#: rtcheck's own code system (criterion, decision, limits).
CODES = "urn:rtcheck:eligibility"
DEFAULT_SUBJECT_SYSTEM = "urn:rtcheck:trial-subject"
#: rtcheck's decision → (code in CODES, display).
DECISIONS: dict[str, tuple[str, str]] = {
    Eligibility.EXCLUDED: ("excluded", "Excluded: an RT dose limit is not met"),
    Eligibility.NOT_EXCLUDED: ("not-excluded", "Not excluded by the RT dose limits"),
    Eligibility.INDETERMINATE: (
        "indeterminate",
        "Indeterminate: the dose limits could not all be checked",
    ),
}
_UCUM = {"Gy": "Gy", "cc": "cm3", "%": "%", "": "1"}
_UCUM_SYSTEM = "http://unitsofmeasure.org"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_LIMIT = re.compile(r"^\s*(<=|<|>=|>)\s*(-?\d+(?:\.\d+)?)")


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON: the Bundle's and Observation's identifier."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _quantity(value: float, unit: str) -> dict[str, Any]:
    code = _UCUM.get(unit, "1")
    return {
        "value": round(float(value), 4),
        "unit": unit or "1",
        "system": _UCUM_SYSTEM,
        "code": code,
    }


def _component(limit: Mapping[str, Any]) -> dict[str, Any]:
    unit = metric_unit(str(limit["metric"]))
    where = str(limit["structure"]) + (f" [{limit['lesion']}]" if limit.get("lesion") else "")
    if limit.get("group") == "cumulative":
        where += " (EQD2 sum with earlier courses)"
    component: dict[str, Any] = {
        "code": {
            "coding": [{"system": CODES, "code": f"{where} {limit['metric']}"}],
            "text": f"{where}: {limit['metric']} ({limit['priority']}, {limit['result']})",
        }
    }
    if limit.get("value") is None:
        component["dataAbsentReason"] = {
            "coding": [{"system": _ABSENT, "code": "not-performed"}],
            "text": str(limit.get("reason") or "not evaluated"),
        }
    else:
        component["valueQuantity"] = _quantity(limit["value"], unit)
    bound = _LIMIT.match(str(limit.get("limit") or ""))
    stated = limit.get("limit")
    reference: dict[str, Any] = {"text": f"limit {stated}" if stated else "no limit stated"}
    if bound:
        upper = bound.group(1).startswith("<")
        reference["high" if upper else "low"] = _quantity(float(bound.group(2)), unit)
        if limit.get("result") in (Grade.FAIL, Grade.MINOR_DEVIATION, Grade.MAJOR_DEVIATION):
            code = "H" if upper else "L"
            component["interpretation"] = [
                {
                    "coding": [
                        {
                            "system": _INTERPRETATION,
                            "code": code,
                            "display": "High" if upper else "Low",
                        }
                    ],
                    "text": str(limit["result"]).replace("_", " "),
                }
            ]
    component["referenceRange"] = [reference]
    return component


def fhir_bundle(
    record: Mapping[str, Any], subject_key: str, subject_system: str = DEFAULT_SUBJECT_SYSTEM
) -> dict[str, Any]:
    """The Bundle (type collection) for one eligibility record, as JSON-ready data."""
    digest = record_digest(record)
    criterion = record["criterion_19"]
    code, display = DECISIONS[str(criterion["decision"])]
    made = checked_at_utc(record)
    when = made.isoformat(timespec="seconds") if made else None
    protocol = record.get("protocol") or {}
    software = record.get("software") or {}
    tool = f"{software.get('name', 'rtcheck')} {software.get('version', '')}".strip()
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:rtcheck:record", "value": digest}],
        "status": "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "therapy",
                        "display": "Therapy",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": CODES,
                    "code": "criterion-19-rt-dose-limits",
                    "display": "Exclusion criterion 19: RT dose limits",
                }
            ],
            "text": "Exclusion criterion 19: the dose limits of radiotherapy cannot meet the "
            "limits set by the study",
        },
        "subject": {
            "type": "Patient",
            "identifier": {"system": subject_system, "value": subject_key},
        },
        "valueCodeableConcept": {
            "coding": [{"system": CODES, "code": code, "display": display}],
            "text": display,
        },
        "method": {
            "text": f"{tool}; protocol {protocol.get('name')} {protocol.get('version')} "
            f"(sha256 {protocol.get('sha256')}); {record.get('dose_mode')}"
        },
        "device": {"display": tool},
        "note": [{"text": str(reason)} for reason in criterion.get("reasons", [])],
    }
    if when:
        observation["effectiveDateTime"] = observation["issued"] = when
    if record.get("study_instance_uid"):
        observation["derivedFrom"] = [
            {
                "type": "ImagingStudy",
                "identifier": {
                    "system": "urn:dicom:uid",
                    "value": f"urn:oid:{record['study_instance_uid']}",
                },
            }
        ]
    components = [
        _component(lim) for lim in record.get("limits", []) if lim.get("result") != Grade.PASS
    ]
    if components:
        observation["component"] = components
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:rtcheck:record", "value": digest},
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, CODES + digest)}",
                "resource": observation,
            }
        ],
    }
    if when:
        bundle["timestamp"] = when
    return bundle


def validated(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle checked against the FHIR R4B models of ``fhir.resources``.

    Raises
    ------
    ValueError
        The Bundle is not valid FHIR (a bug: rtcheck writes none).
    """
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)
    return bundle
