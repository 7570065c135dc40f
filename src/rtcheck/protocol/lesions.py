"""Metastatic lesions: finding their targets in an RTSTRUCT, their site, prescription and
fractionation, and telling them from the primary tumour's targets.

A target ROI (PTV/GTV/CTV/ITV by interpreted type or first word) belongs to a lesion when its
name carries a lesion number: ``M1``, ``met2``, ``lesion3`` (``PTV_M1``, ``PTV M2 liver``,
``ptv_m3_T8``). Every other target belongs to the primary tumour.

Site: the map file, else the organ ROI that contains the lesion's centre, else a word of its
name. Prescription and fractions: the map file, else the RTPLAN dose reference that names the
lesion's PTV, else a dose in its name (``PTV_40``, ``PTV_3000`` in cGy, ``ptv_30gy_3fx``).
Each lesion says where each fact came from.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtcheck.caps import LESIONS
from rtcheck.dicom.plan import Plan, PlanInfo
from rtcheck.dicom.structures import Structure
from rtcheck.protocol.names import is_target, standard_name, words

_LESION_ID = re.compile(r"^(?:m|met|mets|meta|metastasis|les|lesion|oligo)(\d+)$")
_DOSE_WORD = re.compile(r"^(\d+(?:\.\d+)?)(gy|cgy)?$")
_FRACTIONS_WORD = re.compile(r"^(\d+)(?:fx|f|fr|fractions?)$")
_TARGET_ORDER = ("PTV", "ITV", "CTV", "GTV")

SITE_WORDS: Mapping[str, str] = {
    "lung": "lung",
    "pulm": "lung",
    "pulmonary": "lung",
    "liver": "liver",
    "hepar": "liver",
    "hepatic": "liver",
    "bone": "bone",
    "vertebra": "bone",
    "vert": "bone",
    "rib": "bone",
    "sacrum": "bone",
    "spine": "bone",
    "osseous": "bone",
    "pelvis": "bone",
    "femur": "bone",
    "node": "node",
    "ln": "node",
    "nodal": "node",
    "lymph": "node",
    "adrenal": "adrenal",
    "brain": "brain",
    "cerebral": "brain",
    "pleura": "pleura",
    "pleural": "pleura",
    "meninges": "meninges",
    "meningeal": "meninges",
    "leptomeningeal": "meninges",
    "pericardium": "pericardium",
    "pericardial": "pericardium",
}
#: Every lesion site rtcheck knows.
KNOWN_SITES = frozenset(SITE_WORDS.values())
_VERTEBRA_LEVEL = re.compile(r"^[tlcs]\d{1,2}$")
_SITE_OF_STANDARD = {
    "Lung_L": "lung",
    "Lung_R": "lung",
    "Lungs": "lung",
    "Liver": "liver",
    "Bone_Vertebra": "bone",
    "Rib": "bone",
    "Glnd_Adrenal": "adrenal",
    "Glnd_Adrenal_L": "adrenal",
    "Glnd_Adrenal_R": "adrenal",
    "Brain": "brain",
    "Pericardium": "pericardium",
}


@dataclass(frozen=True)
class Lesion:
    """One metastatic lesion.

    Attributes
    ----------
    name
        ``M1``, ``M2``... from the ROI names.
    rois
        Its target ROIs.
    target_roi
        The ROI its coverage is evaluated on (PTV first, then ITV, CTV, GTV).
    site, site_evidence
        Organ (lung, liver, bone, node, adrenal, brain) and how it was found; None if unknown.
    prescription_gy, fractions, prescription_evidence
        Prescription (Gy, total), number of fractions and where they came from.
    plan_label
        The RTPLAN that treats it, when known.
    """

    name: str
    rois: tuple[str, ...]
    target_roi: str
    site: str | None
    site_evidence: str
    prescription_gy: float | None
    fractions: int | None
    prescription_evidence: str
    plan_label: str | None


def lesion_number(name: str) -> int | None:
    """The lesion number in an ROI name (``PTV_M2`` → 2), or None."""
    for word in words(name):
        match = _LESION_ID.match(word)
        if match:
            return int(match[1])
    return None


def find_lesions(
    plan: Plan,
    lesion_map: Mapping[str, Mapping[str, Any]] | None = None,
    fractions: int | None = None,
) -> list[Lesion]:
    """The plan's metastatic lesions, sorted by number.

    Parameters
    ----------
    plan
        The loaded plan.
    lesion_map
        The map file's ``lesions`` section: ROI name → ``{site, prescription_gy, fractions}``.
    fractions
        Number of fractions to assume when the RTPLAN does not say (``--fractions``).
    """
    lesion_map = lesion_map or {}
    structures = plan.structure_set.structures
    groups: dict[int, list[Structure]] = defaultdict(list)
    for s in structures:
        if is_target(s) and not s.is_empty:
            number = lesion_number(s.name)
            if number is not None:
                groups[number].append(s)
    # Counted by name before any work per lesion: a structure set of thousands of lesion
    # targets is refused at once, not worked through.
    LESIONS.check(len(groups), "the structure set")
    organs = [s for s in structures if not is_target(s) and not s.is_external and not s.is_empty]
    lesions = []
    for number in sorted(groups):
        rois = sorted(groups[number], key=_target_rank)
        target = rois[0]
        mapped = next((lesion_map[r.name] for r in rois if r.name in lesion_map), {})
        site, site_evidence = _site(rois, organs, mapped)
        rx, n, rx_evidence, label = _prescription(target, plan, mapped, fractions)
        lesions.append(
            Lesion(
                name=f"M{number}",
                rois=tuple(r.name for r in rois),
                target_roi=target.name,
                site=site,
                site_evidence=site_evidence,
                prescription_gy=rx,
                fractions=n,
                prescription_evidence=rx_evidence,
                plan_label=label,
            )
        )
    return lesions


def primary_targets(plan: Plan) -> list[Structure]:
    """Target ROIs that belong to no lesion (the primary tumour and regional nodes)."""
    return [
        s
        for s in plan.structure_set.structures
        if is_target(s) and not s.is_empty and lesion_number(s.name) is None
    ]


def _target_rank(structure: Structure) -> int:
    kind = structure.interpreted_type or (words(structure.name) or [""])[0].upper()
    return _TARGET_ORDER.index(kind) if kind in _TARGET_ORDER else len(_TARGET_ORDER)


def _site(
    rois: Sequence[Structure], organs: Sequence[Structure], mapped: Mapping[str, Any]
) -> tuple[str | None, str]:
    if mapped.get("site"):
        return str(mapped["site"]).lower(), "map file"
    innermost = rois[-1]  # the GTV when there is one: its centre is the lesion's
    centre = _centroid(innermost)
    if centre is not None:
        for organ in organs:
            site = _organ_site(organ)
            if site and _contains(organ, centre):
                return site, f"lies in ROI {organ.name!r}"
    for roi in rois:
        for word in words(roi.name):
            site = _site_of_word(word)
            if site:
                return site, f"name {roi.name!r}"
            if _VERTEBRA_LEVEL.match(word):
                return "bone", f"name {roi.name!r} (vertebral level {word.upper()})"
    return None, "unknown: not inside a known organ ROI, no site in its name or the map file"


def _organ_site(organ: Structure) -> str | None:
    standard = standard_name(organ.name)
    if standard in _SITE_OF_STANDARD:
        return _SITE_OF_STANDARD[standard]
    for word in words(organ.name):
        site = _site_of_word(word)
        if site:
            return site
    return None


def _site_of_word(word: str) -> str | None:
    """The site a word of an ROI name names, numbered or not (``ln2``, ``liver1``)."""
    return SITE_WORDS.get(word) or SITE_WORDS.get(word.rstrip("0123456789"))


def _centroid(structure: Structure) -> tuple[float, float, float] | None:
    total, moment = 0.0, np.zeros(3)
    for plane in structure.planes:
        for poly in plane.polygons:
            x, y = poly[:, 0], poly[:, 1]
            xn, yn = np.roll(x, -1), np.roll(y, -1)
            cross = x * yn - xn * y
            area = cross.sum() / 2
            if abs(area) < 1e-9:
                continue
            cx = ((x + xn) * cross).sum() / (6 * area)
            cy = ((y + yn) * cross).sum() / (6 * area)
            a = abs(area)
            total += a
            moment += a * np.array([cx, cy, plane.z_mm])
    if total <= 0:
        return None
    cx, cy, cz = (float(v) for v in moment / total)
    return cx, cy, cz


def _contains(organ: Structure, point: tuple[float, float, float]) -> bool:
    x, y, z = point
    for plane in organ.planes:
        if plane.bottom_mm - 1e-6 <= z <= plane.top_mm + 1e-6:
            crossings = 0
            for poly in plane.polygons:
                x1, y1 = poly[:, 0], poly[:, 1]
                x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
                spans = (y1 <= y) != (y2 <= y)
                with np.errstate(divide="ignore", invalid="ignore"):
                    at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
                crossings += int(np.count_nonzero(spans & (at > x)))
            return crossings % 2 == 1  # even-odd, as the contours combine
    return False


def _prescription(
    target: Structure, plan: Plan, mapped: Mapping[str, Any], fractions: int | None
) -> tuple[float | None, int | None, str, str | None]:
    # Before any dose exists (a screening), the RTPLANs given stand for the doses' plans.
    plans = [d.plan for d in plan.doses if d.plan is not None] or list(plan.plans)
    if mapped.get("prescription_gy"):
        n = mapped.get("fractions")
        label = plans[0].label if len(plans) == 1 else None
        n_value = int(n) if n else (plans[0].fractions if len(plans) == 1 else fractions)
        return float(mapped["prescription_gy"]), n_value, "map file", label
    for info in plans:
        for description, roi_number, dose in info.target_prescriptions:
            if roi_number == target.number or description.strip().lower() == target.name.lower():
                n_plan = info.fractions if info.fractions is not None else fractions
                return dose, n_plan, f"RTPLAN {info.label!r} dose reference", info.label
    from_name = _dose_in_name(target.name)
    if from_name is not None:
        dose, n_name = from_name
        only: PlanInfo | None = plans[0] if len(plans) == 1 else None
        n_value = n_name or (only.fractions if only else None) or fractions
        return dose, n_value, f"name {target.name!r}", only.label if only else None
    return None, fractions, "unknown: no RTPLAN dose reference, no dose in the name", None


def _dose_in_name(name: str) -> tuple[float, int | None] | None:
    dose, fractions = None, None
    for word in words(name):
        fx = _FRACTIONS_WORD.match(word)
        if fx:
            fractions = int(fx[1])
            continue
        match = _DOSE_WORD.match(word)
        if match and dose is None:
            value = float(match[1])
            unit = match[2]
            if unit == "cgy" or (unit is None and value >= 200):
                value /= 100
            if 0 < value <= 100:
                dose = value
    return (dose, fractions) if dose is not None else None
