"""The eligibility record: criterion 19's decision with the evidence for every limit, as JSON.

The record is versioned (``record_version``) and described by the JSON Schema
``data/eligibility-record.schema.json`` shipped with the package. It carries identifiers (UIDs,
the PatientID) but never the patient's name.
"""

from __future__ import annotations

from typing import Any

from rtcheck import __version__
from rtcheck.dvh.indices import ATTRIBUTION, INDICES
from rtcheck.evaluation.results import Evaluation

RECORD_VERSION = "1.3"
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
        "inputs": [
            {
                "path": f.path,
                "modality": f.modality,
                "sop_instance_uid": f.sop_instance_uid,
                "sha256": f.sha256,
            }
            for f in plan.files
        ],
        "protocol": {
            "name": protocol.name,
            "version": protocol.version,
            "sha256": protocol.sha256,
            "path": protocol.path,
        },
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
    }


def methods(evaluation: Evaluation) -> dict[str, Any]:
    """How figures beyond DVH metrics were obtained, where the record has any."""
    if not any(r.metric in INDICES for r in evaluation.limits):
        return {}
    return {"methods": {"plan_quality_attribution": ATTRIBUTION}}
