"""Loading one plan's DICOM RT objects and linking them by their UIDs.

Files are identified by SOP Class, never by name. The links followed are
RTDOSE → RTPLAN (ReferencedRTPlanSequence) → RTSTRUCT (ReferencedStructureSetSequence), and
every object must share the structure set's FrameOfReferenceUID.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from rtcheck.dicom.dose import MAX_DOSE_GY, DoseGrid, read_dose_grid, sum_grids
from rtcheck.dicom.files import (
    PLAN_CLASSES,
    RT_CLASSES,
    RTDOSE,
    RTION_PLAN,
    RTPLAN,
    RTSTRUCT,
    is_regular_file,
    read_dicom,
    sop_class_of,
)
from rtcheck.dicom.integrity import check_complete
from rtcheck.dicom.structures import StructureSet, read_structure_set
from rtcheck.dicom.values import integer, number, roi_number
from rtcheck.errors import InvalidDoseError, InvalidInputError, PlanLinkError, RtcheckError
from rtcheck.logs import printable

#: A plan of more fractions than this is a typo.
MAX_FRACTIONS = 1000

__all__ = ["RTDOSE", "RTION_PLAN", "RTPLAN", "RTSTRUCT", "Plan", "load_plan"]


@dataclass(frozen=True)
class SourceFile:
    """One input file that the plan uses.

    Attributes
    ----------
    path
        Path as found.
    modality
        ``RTSTRUCT``, ``RTPLAN`` or ``RTDOSE``.
    sop_instance_uid
        Its SOPInstanceUID.
    sha256
        SHA-256 of the file's bytes, hex.
    """

    path: str
    modality: str
    sop_instance_uid: str
    sha256: str


@dataclass(frozen=True)
class PlanInfo:
    """What rtcheck reads from an RTPLAN.

    Attributes
    ----------
    sop_instance_uid
        The RTPLAN's SOPInstanceUID.
    label
        RTPlanLabel.
    fractions
        NumberOfFractionsPlanned of the first fraction group, or None.
    prescription_gy
        The highest TargetPrescriptionDose of the DoseReferenceSequence (Gy), or None.
    target_prescriptions
        (DoseReferenceDescription, ReferencedROINumber or None, TargetPrescriptionDose in Gy) for
        each target dose reference.
    structure_set_uid
        The referenced RTSTRUCT's SOPInstanceUID, or "".
    plan_date
        RTPlanDate, when it states a valid date.
    """

    sop_instance_uid: str
    label: str
    fractions: int | None
    prescription_gy: float | None
    target_prescriptions: tuple[tuple[str, int | None, float], ...]
    structure_set_uid: str
    plan_date: date | None = None


@dataclass(frozen=True, eq=False)
class DoseSet:
    """One dose distribution to compute DVHs in: a PLAN dose, the sum of a plan's BEAM doses, or
    the sum of several plans when asked.

    Attributes
    ----------
    label
        A short name: the RTPLAN's label, or "sum".
    grid
        The dose (Gy).
    plan
        The RTPLAN it belongs to, when known (None for a sum of plans or an unknown plan).
    per_fraction
        True when the dose is that of one fraction (DoseSummationType FRACTION).
    source_uids
        SOPInstanceUIDs of the RTDOSE objects summed into it.
    """

    label: str
    grid: DoseGrid
    plan: PlanInfo | None
    per_fraction: bool
    source_uids: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Plan:
    """A plan's structure set, dose sets and RTPLANs, linked and checked.

    Attributes
    ----------
    structure_set
        The RTSTRUCT the doses are evaluated on.
    doses
        One entry per plan (or one summed entry).
    plans
        The RTPLANs found.
    files
        Every file used, with its hash.
    patient_id, study_instance_uid
        From the RTSTRUCT.
    warnings
        What was ignored or assumed while loading.
    patient_birth_date
        PatientBirthDate of the RTSTRUCT, as written ("" when absent).
    """

    structure_set: StructureSet
    doses: tuple[DoseSet, ...]
    plans: tuple[PlanInfo, ...]
    files: tuple[SourceFile, ...]
    patient_id: str
    study_instance_uid: str
    warnings: tuple[str, ...]
    patient_birth_date: str = ""

    @property
    def plan_date(self) -> date | None:
        """The latest RTPlanDate of its RTPLANs; None when none states one."""
        return max((p.plan_date for p in self.plans if p.plan_date), default=None)


def load_plan(paths: Sequence[str | os.PathLike[str]], sum_doses: bool = False) -> Plan:
    """Load and link the RT objects of one plan.

    Parameters
    ----------
    paths
        Files and folders (searched recursively) holding one RTSTRUCT, one or more RTDOSE and
        optionally RTPLANs and images (ignored).
    sum_doses
        Sum the doses of several plans into one dose set (they must share a grid geometry).

    Raises
    ------
    InvalidInputError
        A path does not exist, or a file given by name is not DICOM, or a DICOM file is truncated.
    PlanLinkError
        The objects do not form one plan.
    InvalidDoseError, InvalidStructureError
        An object cannot be used.
    """
    datasets, hashes, notes, skipped = read_rt_objects(paths)
    refusal_detail = skipped_text(skipped)
    by_class = by_sop_class(datasets)
    structs = by_class[RTSTRUCT]
    doses = by_class[RTDOSE]
    plan_files = [item for cls in PLAN_CLASSES for item in by_class[cls]]
    for kind, found in (("RTSTRUCT", structs), ("RTDOSE", doses)):
        if not found:
            raise PlanLinkError(f"no {kind} among the files given{refusal_detail}")
    _refuse_duplicate_uids(datasets)

    plans = [read_plan_info(ds, path) for path, ds in plan_files]
    plan_by_uid = {p.sop_instance_uid: p for p in plans}
    struct_path, struct_ds = _choose_structure_set(structs, plans, notes)
    structure_set = read_structure_set(struct_ds, struct_path)
    frame_uid = structure_set.frame_of_reference_uid or _roi_frame_uid(struct_ds)

    for path, ds in [*plan_files, *doses]:
        other = str(ds.get("FrameOfReferenceUID", ""))
        if frame_uid and other and other != frame_uid:
            raise PlanLinkError(
                f"{path}: FrameOfReferenceUID {other} differs from the RTSTRUCT's {frame_uid}"
            )
    for path, ds in doses:
        referenced = referenced_uid(ds, "ReferencedStructureSetSequence")
        if referenced and referenced != structure_set.sop_instance_uid:
            raise PlanLinkError(
                f"{path}: RTDOSE references RTSTRUCT {referenced}, not the structure set used "
                f"({structure_set.sop_instance_uid})"
            )

    dose_sets = dose_sets_of(doses, plan_by_uid, bool(plans), notes)
    if sum_doses and len(dose_sets) > 1:
        if len({d.per_fraction for d in dose_sets}) > 1:
            raise PlanLinkError("cannot sum a per-fraction dose with a whole-course dose")
        grid = sum_grids([d.grid for d in dose_sets], "PLAN_SUM")
        dose_sets = [
            DoseSet(
                "sum",
                grid,
                None,
                dose_sets[0].per_fraction,
                tuple(uid for d in dose_sets for uid in d.source_uids),
            )
        ]

    used = {structure_set.sop_instance_uid} | {p.sop_instance_uid for p in plans}
    used |= {uid for d in dose_sets for uid in d.source_uids}
    linked = [("RTPLAN", path, ds) for path, ds in plan_files]
    linked += [("RTDOSE", path, ds) for path, ds in doses]
    _refuse_other_patients(
        struct_path, struct_ds, [o for o in linked if str(o[2].SOPInstanceUID) in used]
    )
    files = tuple(
        SourceFile(path, str(ds.Modality), str(ds.SOPInstanceUID), hashes[path])
        for path, ds in datasets
        if str(ds.get("SOPInstanceUID", "")) in used
    )
    return Plan(
        structure_set=structure_set,
        doses=tuple(dose_sets),
        plans=tuple(plans),
        files=files,
        patient_id=str(struct_ds.get("PatientID", "")),
        study_instance_uid=str(struct_ds.get("StudyInstanceUID", "")),
        warnings=tuple(notes),
        patient_birth_date=str(struct_ds.get("PatientBirthDate", "") or "").strip(),
    )


def load_contours(paths: Sequence[str | os.PathLike[str]]) -> Plan:
    """Load a structure set and the RTPLANs that reference it, before any dose exists (a
    screening): a :class:`Plan` without doses. RTDOSE objects among the files are ignored,
    and the warnings say so.

    Raises
    ------
    InvalidInputError, PlanLinkError, InvalidStructureError
        As :func:`load_plan`, an RTDOSE aside.
    """
    datasets, hashes, notes, skipped = read_rt_objects(paths)
    by_class = by_sop_class(datasets)
    structs = by_class[RTSTRUCT]
    if not structs:
        raise PlanLinkError(f"no RTSTRUCT among the files given{skipped_text(skipped)}")
    _refuse_duplicate_uids(datasets)
    plan_files = [item for cls in PLAN_CLASSES for item in by_class[cls]]
    read = [(path, ds, read_plan_info(ds, path)) for path, ds in plan_files]
    struct_path, struct_ds = _choose_structure_set(structs, [info for *_, info in read], notes)
    structure_set = read_structure_set(struct_ds, struct_path)
    kept = [
        (path, ds, info)
        for path, ds, info in read
        if info.structure_set_uid in ("", structure_set.sop_instance_uid)
    ]
    _refuse_other_patients(struct_path, struct_ds, [("RTPLAN", path, ds) for path, ds, _ in kept])
    if by_class[RTDOSE]:
        notes.append(f"{len(by_class[RTDOSE])} RTDOSE ignored: a screening reads the contours")
    used = {structure_set.sop_instance_uid, *(info.sop_instance_uid for *_, info in kept)}
    return Plan(
        structure_set=structure_set,
        doses=(),
        plans=tuple(info for *_, info in kept),
        files=tuple(
            SourceFile(path, str(ds.Modality), str(ds.SOPInstanceUID), hashes[path])
            for path, ds in datasets
            if str(ds.get("SOPInstanceUID", "")) in used
        ),
        patient_id=str(struct_ds.get("PatientID", "")),
        study_instance_uid=str(struct_ds.get("StudyInstanceUID", "")),
        warnings=tuple(notes),
        patient_birth_date=str(struct_ds.get("PatientBirthDate", "") or "").strip(),
    )


def by_sop_class(
    datasets: list[tuple[str, Dataset]],
) -> defaultdict[str, list[tuple[str, Dataset]]]:
    """The (path, dataset) pairs grouped by SOP Class UID (an absent class: [])."""
    groups: defaultdict[str, list[tuple[str, Dataset]]] = defaultdict(list)
    for path, ds in datasets:
        groups[str(ds.get("SOPClassUID", ""))].append((path, ds))
    return groups


def read_rt_objects(
    paths: Sequence[str | os.PathLike[str]], classes: frozenset[str] = RT_CLASSES
) -> tuple[list[tuple[str, Dataset]], dict[str, str], list[str], dict[str, int]]:
    """Read every RT object (of SOP Class ``classes``) under ``paths``, with the SHA-256 of
    each file read; images and stray non-DICOM files in folders are skipped (and counted by
    why), a file named explicitly must be DICOM."""
    notes: list[str] = []
    found: list[tuple[str, bool]] = []
    skipped = {"not DICOM": 0, "not an RT object": 0, "not a regular file": 0}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path):
                if is_regular_file(file):
                    found.append((str(file), False))
                else:  # a pipe would block the read forever
                    skipped["not a regular file"] += 1
        elif is_regular_file(path):
            found.append((str(path), True))
        elif path.exists():
            raise InvalidInputError(f"{path}: not a regular file (a pipe, socket or device)")
        else:
            raise InvalidInputError(f"{path}: no such file or folder")
    datasets: list[tuple[str, Dataset]] = []
    hashes: dict[str, str] = {}
    for name, explicit in found:
        read = _read_file(name, explicit, classes)
        if read is None:
            skipped["not DICOM"] += 1
            continue
        ds, digest, note = read
        if not digest:
            skipped["not an RT object"] += 1
            continue
        datasets.append((name, ds))
        hashes[name] = digest
        if note:
            notes.append(f"{name}: {note}")
    if skipped["not DICOM"]:
        notes.append(f"skipped {skipped['not DICOM']} non-DICOM file(s) found in folders")
    if skipped["not a regular file"]:
        notes.append(
            f"skipped {skipped['not a regular file']} file(s) found in folders that are not "
            "regular files (pipes, sockets, devices)"
        )
    return datasets, hashes, notes, skipped


def skipped_text(skipped: dict[str, int]) -> str:
    """`` (3 files skipped: not DICOM; 2 files skipped: not an RT object)``, or ""."""
    parts = [f"{n} file{'s' if n > 1 else ''} skipped: {why}" for why, n in skipped.items() if n]
    return f" ({'; '.join(parts)})" if parts else ""


def _walk(folder: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _read_file(
    path: str, explicit: bool, classes: frozenset[str]
) -> tuple[Dataset, str, str | None] | None:
    """Read one file; None for a non-DICOM file found in a folder. An RT object is checked for
    completeness and comes with its SHA-256; other objects (images) with "". The third item is
    a note on how the file was read, or None."""
    try:
        # Large values (image pixels) are read only when used: images are skipped quickly.
        ds, note = read_dicom(path, defer_size="64 KB")
        sop_class = sop_class_of(ds)
        if sop_class in classes:
            syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if ds.file_meta else ""
            data = Path(path).read_bytes()
            check_complete(path, data, syntax)
            if "SOPClassUID" not in ds:
                ds.SOPClassUID = sop_class  # in memory only: named by its File Meta header
            return ds, hashlib.sha256(data).hexdigest(), note
    except RtcheckError:
        raise
    except InvalidDicomError as exc:
        if explicit:
            raise InvalidInputError(f"{path}: not a DICOM file ({exc})") from exc
        return None
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise InvalidInputError(f"{path}: unreadable or truncated DICOM file ({exc})") from exc
    return ds, "", note


def _refuse_other_patients(
    struct_path: str, struct_ds: Dataset, others: list[tuple[str, str, Dataset]]
) -> None:
    """Refuse a plan whose objects belong to two patients: every object must carry the
    RTSTRUCT's PatientID and (where both state one) PatientBirthDate. An RTDOSE that references
    neither an RTPLAN nor the RTSTRUCT, tied to the plan by its frame of reference alone, must
    also be of the RTSTRUCT's study. The IDs are shown by their last characters and a hash,
    never whole."""
    patient = str(struct_ds.get("PatientID", "")).strip()
    born = str(struct_ds.get("PatientBirthDate", "")).strip()
    study = str(struct_ds.get("StudyInstanceUID", "")).strip()
    for kind, path, ds in others:
        other = str(ds.get("PatientID", "")).strip()
        if other != patient:
            raise PlanLinkError(
                f"{path}: the {kind} is of patient {masked_id(other)}, the RTSTRUCT "
                f"({struct_path}) of patient {masked_id(patient)}: a plan assembled from two "
                "patients is refused"
            )
        other_born = str(ds.get("PatientBirthDate", "")).strip()
        if born and other_born and other_born != born:
            raise PlanLinkError(
                f"{path}: the {kind}'s PatientBirthDate differs from the RTSTRUCT's "
                f"({struct_path}) for the same PatientID {masked_id(patient)}: a plan assembled "
                "from two patients is refused"
            )
        linked = referenced_uid(ds, "ReferencedRTPlanSequence") or referenced_uid(
            ds, "ReferencedStructureSetSequence"
        )
        other_study = str(ds.get("StudyInstanceUID", "")).strip()
        if kind == "RTDOSE" and not linked and study and other_study != study:
            raise PlanLinkError(
                f"{path}: the RTDOSE references no RTPLAN or RTSTRUCT and is of study "
                f"{masked_id(other_study)}, the RTSTRUCT ({struct_path}) of study "
                f"{masked_id(study)}: nothing shows it is this patient's plan's dose"
            )


def masked_id(identifier: str) -> str:
    """An identifier as an error message shows it: its last 4 characters and the first 8 hex
    digits of its SHA-256 (a PatientID is never printed whole)."""
    if not identifier:
        return "(none)"
    digest = hashlib.sha256(identifier.encode("utf-8", "replace")).hexdigest()[:8]
    tail = printable(identifier[-4:])
    return f"'…{tail}' (sha256 {digest})"


def _refuse_duplicate_uids(datasets: list[tuple[str, Dataset]]) -> None:
    seen: dict[str, str] = {}
    for path, ds in datasets:
        uid = str(ds.get("SOPInstanceUID", ""))
        if uid in seen:
            raise PlanLinkError(f"{path} and {seen[uid]} have the same SOPInstanceUID {uid}")
        seen[uid] = path


def referenced_uid(ds: Dataset, sequence: str) -> str:
    """ReferencedSOPInstanceUID of the first item of ``sequence``, or ""."""
    items = ds.get(sequence)
    if not items:
        return ""
    return str(items[0].get("ReferencedSOPInstanceUID", ""))


def _roi_frame_uid(ds: Dataset) -> str:
    for item in ds.get("StructureSetROISequence", []):
        uid = str(item.get("ReferencedFrameOfReferenceUID", ""))
        if uid:
            return uid
    return ""


def read_plan_info(ds: Dataset, path: str) -> PlanInfo:
    def refuse(where: str) -> Callable[[str], InvalidInputError]:
        return lambda message: InvalidInputError(f"{path}: {where}: {message}")

    fractions = None
    groups = ds.get("FractionGroupSequence")
    if groups and groups[0].get("NumberOfFractionsPlanned") not in (None, ""):
        where = refuse("FractionGroupSequence item 1")
        fractions = integer(groups[0], "NumberOfFractionsPlanned", where, largest=MAX_FRACTIONS)
    targets: list[tuple[str, int | None, float]] = []
    for i, ref in enumerate(ds.get("DoseReferenceSequence", []), start=1):
        if ref.get("TargetPrescriptionDose") in (None, ""):
            continue
        if str(ref.get("DoseReferenceType", "TARGET")) != "TARGET":
            continue
        where = refuse(f"DoseReferenceSequence item {i}")
        dose = number(ref, "TargetPrescriptionDose", where, positive=True, largest=MAX_DOSE_GY)
        name = str(ref.get("DoseReferenceDescription", "") or ref.get("DoseReferenceNumber", ""))
        roi = None
        if ref.get("ReferencedROINumber") not in (None, ""):
            roi = roi_number(ref, "ReferencedROINumber", where)
        targets.append((name, roi, dose))
    prescription = max((d for *_, d in targets), default=None)
    return PlanInfo(
        sop_instance_uid=str(ds.SOPInstanceUID),
        label=str(ds.get("RTPlanLabel", "") or ds.get("RTPlanName", "") or "plan"),
        fractions=fractions,
        prescription_gy=prescription,
        target_prescriptions=tuple(targets),
        structure_set_uid=referenced_uid(ds, "ReferencedStructureSetSequence"),
        plan_date=dicom_date(ds.get("RTPlanDate")),
    )


def dicom_date(value: object) -> date | None:
    """A DA value (YYYYMMDD) as a date; None when absent or not a valid date."""
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _choose_structure_set(
    structs: list[tuple[str, Dataset]], plans: list[PlanInfo], notes: list[str]
) -> tuple[str, Dataset]:
    by_uid = {str(ds.SOPInstanceUID): (path, ds) for path, ds in structs}
    wanted = {p.structure_set_uid for p in plans if p.structure_set_uid}
    if len(wanted) > 1:
        raise PlanLinkError(
            f"the RTPLANs reference {len(wanted)} different structure sets; give one plan at a time"
        )
    if wanted:
        uid = wanted.pop()
        if uid not in by_uid:
            raise PlanLinkError(
                f"the RTPLAN references RTSTRUCT {uid}, which is not among the files given"
            )
        if len(structs) > 1:
            notes.append(f"{len(structs) - 1} RTSTRUCT(s) not referenced by the RTPLAN ignored")
        return by_uid[uid]
    if len(structs) > 1:
        raise PlanLinkError(
            f"{len(structs)} RTSTRUCTs and no RTPLAN referencing one of them: cannot choose"
        )
    return structs[0]


def dose_sets_of(
    doses: list[tuple[str, Dataset]],
    plan_by_uid: dict[str, PlanInfo],
    have_plans: bool,
    notes: list[str],
) -> list[DoseSet]:
    groups: dict[str, list[tuple[str, Dataset]]] = defaultdict(list)
    for path, ds in doses:
        plan_uid = referenced_uid(ds, "ReferencedRTPlanSequence")
        if have_plans and not plan_uid:
            # Every object shares the structure set's frame of reference (checked before):
            # a lone RTPLAN is the one this dose belongs to; among several, none can be chosen.
            if len(plan_by_uid) > 1:
                raise PlanLinkError(
                    f"{path}: RTDOSE references no RTPLAN and {len(plan_by_uid)} RTPLANs are "
                    "given: cannot tell which plan it is the dose of; give one plan at a time"
                )
            plan_uid = next(iter(plan_by_uid))
            notes.append(
                f"{path}: RTDOSE references no RTPLAN; linked to the only RTPLAN given "
                f"({plan_by_uid[plan_uid].label}, same frame of reference)"
            )
        elif have_plans and plan_uid not in plan_by_uid:
            raise PlanLinkError(
                f"{path}: RTDOSE references RTPLAN {plan_uid}, which is not among the files given"
            )
        # A dose that names no plan stands on its own.
        groups[plan_uid or f"dose:{ds.SOPInstanceUID}"].append((path, ds))

    sets: list[DoseSet] = []
    for key, members in groups.items():
        plan = plan_by_uid.get(key)
        by_type: dict[str, list[tuple[str, Dataset]]] = defaultdict(list)
        for path, ds in members:
            by_type[str(ds.get("DoseSummationType", "")).upper()].append((path, ds))
        chosen_type = next((t for t in ("PLAN", "BEAM", "FRACTION") if by_type.get(t)), None)
        if chosen_type is None:
            kinds = ", ".join(sorted(by_type))
            raise InvalidDoseError(
                f"{members[0][0]}: DoseSummationType {kinds or '(missing)'} is not supported "
                "(PLAN, BEAM or FRACTION)"
            )
        chosen = by_type[chosen_type]
        ignored = sum(len(v) for t, v in by_type.items() if t != chosen_type)
        if ignored:
            notes.append(
                f"plan {plan.label if plan else key}: {ignored} RTDOSE ignored beside its "
                f"{chosen_type} dose"
            )
        if chosen_type in ("PLAN", "FRACTION") and len(chosen) > 1:
            raise PlanLinkError(
                f"{len(chosen)} RTDOSE of type {chosen_type} for the same plan "
                f"({', '.join(p for p, _ in chosen)}): cannot choose"
            )
        grids = [read_dose_grid(ds, path) for path, ds in chosen]
        grid = sum_grids(grids, chosen_type) if len(grids) > 1 else grids[0]
        if chosen_type == "FRACTION":
            notes.append(
                f"plan {plan.label if plan else key}: the dose is that of one fraction "
                "(DoseSummationType FRACTION)"
            )
        label = plan.label if plan else f"dose {len(sets) + 1}"
        sets.append(
            DoseSet(
                label=label,
                grid=grid,
                plan=plan,
                per_fraction=chosen_type == "FRACTION",
                source_uids=tuple(str(ds.SOPInstanceUID) for _, ds in chosen),
            )
        )
    return sets
