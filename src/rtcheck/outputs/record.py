"""The eligibility record: criterion 19's decision with the evidence for every limit, as JSON.

The record is versioned (``record_version``) and described by the JSON Schema
``data/eligibility-record.schema.json`` shipped with the package. It carries identifiers (UIDs,
the PatientID) but never the patient's name.
"""

from __future__ import annotations

from typing import Any

from rtcheck import __version__
from rtcheck.dicom.plan import Plan
from rtcheck.dvh.indices import ATTRIBUTION, INDICES
from rtcheck.evaluation.results import Evaluation
from rtcheck.numbers import json_number
from rtcheck.protocol.definition import Protocol

RECORD_VERSION = "1.4"
SCHEMA_RESOURCE = "data/eligibility-record.schema.json"


def eligibility_record(evaluation: Evaluation) -> dict[str, Any]:
    """The machine-readable eligibility record of an evaluation."""
    plan, protocol = evaluation.plan, evaluation.protocol
    plans = [
        {
            "label": p.label,
            "sop_instance_uid": p.sop_instance_uid,
            "fractions": p.fractions,
            "prescription_gy": p.prescription_gy,
        }
        for p in plan.plans
    ]
    return {
        "record_version": RECORD_VERSION,
        "created": evaluation.evaluated_at,
        "software": {"name": "rtcheck", "version": __version__},
        "patient_id": plan.patient_id,
        "study_instance_uid": plan.study_instance_uid,
        "rtstruct_sop_instance_uid": plan.structure_set.sop_instance_uid,
        "plans": plans,
        "inputs": input_rows(plan),
        "protocol": protocol_row(protocol),
        "dose_mode": evaluation.dose_mode,
        "end_caps": evaluation.end_caps.value,
        "criterion_19": {
            "decision": evaluation.decision.decision,
            "reasons": list(evaluation.decision.reasons),
            "minor_deviations": list(evaluation.decision.minor_deviations),
        },
        "lesion_count": len(evaluation.lesions),
        "organ_count": evaluation.organ_count,
        "lesion_limits_exceeded": (
            len(evaluation.lesions) > protocol.max_lesions
            or evaluation.organ_count > protocol.max_organs
        ),
        "lesions": [
            {
                "name": lesion.name,
                "rois": list(lesion.rois),
                "target_roi": lesion.target_roi,
                "site": lesion.site,
                "site_evidence": lesion.site_evidence,
                "prescription_gy": lesion.prescription_gy,
                "fractions": lesion.fractions,
                "prescription_evidence": lesion.prescription_evidence,
                "plan": lesion.plan_label,
                "excluded_site": dict(evaluation.excluded_sites).get(lesion),
            }
            for lesion in evaluation.lesions
        ],
        "structures": [
            {"name": m.name, "rois": list(m.rois), "status": m.status, "matched_by": m.how or None}
            for m in evaluation.matches
        ],
        "limits": [r.to_row() for r in evaluation.limits],
        "warnings": [*plan.warnings, *evaluation.warnings],
        **methods(evaluation),
        **earlier_courses(evaluation),
    }


def earlier_courses(evaluation: Evaluation) -> dict[str, Any]:
    """The earlier courses summed with this one (since record 1.4), where given."""
    earlier = evaluation.earlier
    if earlier is None:
        return {}
    return {
        "earlier_courses": {
            "plan_date": earlier.plan_date,
            "plan_date_source": earlier.plan_date_source,
            "method": earlier.resampling,
            "status": earlier.status or None,
            "flags": list(earlier.flags),
            "courses": [
                {
                    "label": c.label,
                    "fractions": c.fractions,
                    "prescription_gy": json_number(c.prescription_gy),
                    "end_date": c.end_date,
                    "end_date_source": c.end_date_source,
                    "interval_months": json_number(c.interval_months),
                    "registration": {
                        "method": c.placement,
                        "sop_instance_uid": c.registration_uid,
                        "creator": c.registration_creator or None,
                        "matrix": [list(row) for row in c.matrix] if c.matrix else None,
                    },
                    "outside_grid_percent": json_number(c.outside_percent),
                    "edge_dose_gy": json_number(c.edge_max_gy),
                    "inputs": [
                        {"path": path, "sop_instance_uid": uid, "sha256": sha}
                        for path, uid, sha in c.files
                    ],
                    "warnings": list(c.warnings),
                }
                for c in earlier.courses
            ],
            "lesions": [
                {
                    "lesion": d.lesion,
                    "course": d.course,
                    "d98_gy": json_number(d.d98_gy),
                    "d50_gy": json_number(d.d50_gy),
                    "max_gy": json_number(d.max_gy),
                    "d50_eqd2_gy": json_number(d.d50_eqd2_gy),
                    "d50_percent_of_prescription": json_number(d.d50_percent),
                    "inside_earlier_field": d.inside_field,
                }
                for d in earlier.lesion_doses
            ],
        }
    }


def input_rows(plan: Plan) -> list[dict[str, str]]:
    """The files a record was made from, with their hashes."""
    return [
        {
            "path": f.path,
            "modality": f.modality,
            "sop_instance_uid": f.sop_instance_uid,
            "sha256": f.sha256,
        }
        for f in plan.files
    ]


def protocol_row(protocol: Protocol) -> dict[str, str]:
    """The protocol a record was made against: name, version, hash and file."""
    return {
        "name": protocol.name,
        "version": protocol.version,
        "sha256": protocol.sha256,
        "path": protocol.path,
    }


def methods(evaluation: Evaluation) -> dict[str, Any]:
    """How figures beyond DVH metrics were obtained, where the record has any."""
    if not any(r.metric in INDICES for r in evaluation.limits):
        return {}
    return {"methods": {"plan_quality_attribution": ATTRIBUTION}}
