"""An earlier radiotherapy course: its dose, fractions, prescription and end date, read from its
RTDOSE, RTPLAN and treatment records, and the registration objects given with it.

The end of the course is taken, in this order, from RT Beams Treatment Records (the latest
TreatmentDate: delivered), from the RTPLAN's RTPlanDate (planned, not delivered), or from the
date the user gives; the record says which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from pydicom.dataset import Dataset

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.files import PLAN_CLASSES, RT_CLASSES, RTDOSE
from rtcheck.dicom.plan import (
    Plan,
    SourceFile,
    by_sop_class,
    dicom_date,
    dose_sets_of,
    masked_id,
    read_plan_info,
    read_rt_objects,
    skipped_text,
)
from rtcheck.dicom.registration import (
    REGISTRATION_CLASSES,
    DeformationGrid,
    PointMap,
    Registration,
    outside_deformation,
    read_registration,
    registration_from,
)
from rtcheck.errors import PlanLinkError, PriorCourseError

RT_BEAMS_RECORD = "1.2.840.10008.5.1.4.1.1.481.4"
RT_ION_BEAMS_RECORD = "1.2.840.10008.5.1.4.1.1.481.9"
RECORD_CLASSES = frozenset({RT_BEAMS_RECORD, RT_ION_BEAMS_RECORD})
#: Every class an earlier course's files may hold.
COURSE_CLASSES = RT_CLASSES | RECORD_CLASSES | REGISTRATION_CLASSES

#: How the end date was found, as the record says it.
FROM_RECORDS = "RT Beams Treatment Record (latest TreatmentDate: delivered)"
FROM_PLAN = "RTPlanDate (planned, not delivered)"
FROM_USER = "given (--prior-end)"
UNKNOWN = "unknown"


@dataclass(frozen=True, eq=False)
class EarlierCourse:
    """One earlier course of radiotherapy, as read.

    Attributes
    ----------
    label
        Its RTPLAN's label, else ``earlier course``.
    dose
        Its whole-course physical dose (Gy), in its own frame of reference.
    fractions
        NumberOfFractionsPlanned of its RTPLAN; None without one.
    prescription_gy
        Its highest target prescription (Gy); None when its RTPLAN states none.
    frame_of_reference_uid
        The frame its dose is in.
    end_date, end_date_source
        When it ended, and how that was found (:data:`FROM_RECORDS`, :data:`FROM_PLAN`,
        :data:`FROM_USER` or :data:`UNKNOWN`).
    files
        The files used, with their hashes.
    registrations
        Registration objects found among its files.
    warnings
        What was ignored or assumed while reading it.
    """

    label: str
    dose: DoseGrid
    fractions: int | None
    prescription_gy: float | None
    frame_of_reference_uid: str
    end_date: date | None
    end_date_source: str
    files: tuple[SourceFile, ...]
    registrations: tuple[Registration, ...]
    warnings: tuple[str, ...]


def load_earlier_course(
    paths: Sequence[str | os.PathLike[str]], current: Plan, end_date: date | None = None
) -> EarlierCourse:
    """Read an earlier course of the current plan's patient.

    Parameters
    ----------
    paths
        Files and folders holding the earlier course's RTDOSE, and optionally its RTPLAN,
        RTSTRUCT, RT Beams Treatment Records and registration objects.
    current
        The plan being checked: the course must be of its patient.
    end_date
        The end of the course, used when no treatment record or RTPlanDate states it.

    Raises
    ------
    PriorCourseError
        No RTDOSE, several plans' doses, a per-fraction dose, or another patient.
    """
    datasets, hashes, notes, skipped = read_rt_objects(paths, COURSE_CLASSES)
    where = ", ".join(str(p) for p in paths)
    by_class = by_sop_class(datasets)
    doses = by_class[RTDOSE]
    if not doses:
        raise PriorCourseError(f"{where}: no RTDOSE of the earlier course{skipped_text(skipped)}")
    plan_files = [item for cls in PLAN_CLASSES for item in by_class[cls]]
    records = [item for cls in RECORD_CLASSES for item in by_class[cls]]
    registrations = tuple(
        registration_from(ds, path) for cls in REGISTRATION_CLASSES for path, ds in by_class[cls]
    )
    for path, ds in [*plan_files, *doses, *records]:
        _refuse_other_patient(path, ds, current)
    plans = [read_plan_info(ds, path) for path, ds in plan_files]
    try:
        sets = dose_sets_of(doses, {p.sop_instance_uid: p for p in plans}, bool(plans), notes)
    except PlanLinkError as exc:
        raise PriorCourseError(f"earlier course: {exc}") from None
    if len(sets) != 1:
        raise PriorCourseError(
            f"{where}: the doses of {len(sets)} plans; give each earlier course with its own "
            "--prior"
        )
    chosen = sets[0]
    if chosen.per_fraction:
        raise PriorCourseError(
            f"{where}: the earlier RTDOSE is the dose of one fraction, not of the course"
        )
    info = chosen.plan
    found_end, source = _end_date(records, info.plan_date if info else None, end_date)
    used = set(chosen.source_uids) | ({info.sop_instance_uid} if info else set())
    used |= {str(ds.SOPInstanceUID) for _, ds in records}
    used |= {r.sop_instance_uid for r in registrations}
    files = tuple(
        SourceFile(path, str(ds.get("Modality", "")), str(ds.SOPInstanceUID), hashes[path])
        for path, ds in datasets
        if str(ds.get("SOPInstanceUID", "")) in used
    )
    if info is None:
        notes.append("the earlier course has no RTPLAN: its fractions and prescription are unknown")
    return EarlierCourse(
        label=info.label if info else "earlier course",
        dose=chosen.grid,
        fractions=info.fractions if info else None,
        prescription_gy=info.prescription_gy if info else None,
        frame_of_reference_uid=chosen.grid.frame_of_reference_uid,
        end_date=found_end,
        end_date_source=source,
        files=files,
        registrations=registrations,
        warnings=tuple(notes),
    )


def _end_date(
    records: list[tuple[str, Dataset]], plan_date: date | None, given: date | None
) -> tuple[date | None, str]:
    treated = [d for _, ds in records if (d := dicom_date(ds.get("TreatmentDate"))) is not None]
    if treated:
        return max(treated), FROM_RECORDS
    if plan_date is not None:
        return plan_date, FROM_PLAN
    if given is not None:
        return given, FROM_USER
    return None, UNKNOWN


def _refuse_other_patient(path: str, ds: Dataset, current: Plan) -> None:
    other = str(ds.get("PatientID", "")).strip()
    if other != current.patient_id.strip():
        raise PriorCourseError(
            f"{path}: the earlier course is of patient {masked_id(other)}, the plan of patient "
            f"{masked_id(current.patient_id.strip())}: an earlier course of another patient "
            "is refused"
        )
    born, other_born = current.patient_birth_date, str(ds.get("PatientBirthDate", "")).strip()
    if born and other_born and born != other_born:
        raise PriorCourseError(
            f"{path}: the earlier course's PatientBirthDate differs from the plan's for the "
            f"same PatientID {masked_id(other)}: refused"
        )


@dataclass(frozen=True, eq=False)
class Placement:
    """How an earlier course's frame of reference is reached from the current course's.

    Attributes
    ----------
    point_map
        Current-frame points (N, 3, mm) → earlier-frame points.
    method
        ``same frame of reference``, ``rigid`` or ``deformable``.
    registration
        The registration object used; None in the same frame.
    matrix
        For a rigid registration, the 4×4 matrix (row-major) that carries a current point into
        the earlier frame (``M_earlier⁻¹ M_current``), for the physicist to check the direction.
    """

    point_map: PointMap
    method: str
    registration: Registration | None
    matrix: tuple[tuple[float, ...], ...] | None
    #: For a deformable registration, its grid (beyond it the nearest edge vector is used).
    deformation: DeformationGrid | None = None

    def corners_beyond_deformation(self, grid: DoseGrid) -> int:
        """How many of the 8 corners of ``grid`` lie beyond the deformation grid (0: the whole
        dose grid is inside it, both being boxes)."""
        if self.deformation is None:
            return 0
        corners = np.array(
            [
                [x, y, z]
                for x in grid.x_mm[[0, -1]]
                for y in grid.y_mm[[0, -1]]
                for z in grid.z_mm[[0, -1]]
            ]
        )
        return outside_deformation(self.deformation, corners)


def place(course: EarlierCourse, current: Plan, registrations: Sequence[Registration]) -> Placement:
    """Find how to carry the current course's points into ``course``'s frame: the same frame
    needs no registration; otherwise exactly one registration object (given, or among the
    course's files) must relate both frames.

    Raises
    ------
    PriorCourseError
        No registration relates the two frames, or several different ones do, or the one that
        does is of another patient.
    RegistrationError
        The registration relates them in a way rtcheck refuses (see
        :meth:`~rtcheck.dicom.registration.Registration.point_map`).
    """
    current_frame = current.structure_set.frame_of_reference_uid or (
        current.doses[0].grid.frame_of_reference_uid
    )
    earlier_frame = course.frame_of_reference_uid
    if earlier_frame == current_frame:
        return Placement(lambda points: points, "same frame of reference", None, None)
    offered = {r.sop_instance_uid: r for r in (*registrations, *course.registrations)}
    relating = [r for r in offered.values() if r.relates(current_frame, earlier_frame)]
    if not relating:
        given = f" (the {len(offered)} given relate other frames)" if offered else ""
        raise PriorCourseError(
            f"the earlier course {course.label!r} is in frame of reference {earlier_frame}, the "
            f"plan in {current_frame}, and no registration relates them{given}: give the "
            "Spatial Registration object with --registration"
        )
    if len(relating) > 1:
        names = ", ".join(r.path for r in relating)
        raise PriorCourseError(
            f"{len(relating)} registrations relate the earlier course {course.label!r} to the "
            f"plan ({names}): give one"
        )
    chosen = relating[0]
    if chosen.patient_id.strip() and chosen.patient_id.strip() != current.patient_id.strip():
        raise PriorCourseError(
            f"{chosen.path}: the registration is of patient {masked_id(chosen.patient_id)}, the "
            f"plan of patient {masked_id(current.patient_id)}: refused"
        )
    point_map = chosen.point_map(current_frame, earlier_frame)
    matrix = None
    if chosen.kind == "rigid":
        origin_and_axes = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
        moved = point_map(origin_and_axes)
        combined = np.eye(4)
        combined[:3, 3] = moved[0]
        combined[:3, :3] = (moved[1:] - moved[0]).T
        matrix = tuple(tuple(float(v) for v in row) for row in combined)
    deformation = next(
        (d for d in chosen.deformations if d.source_frame_uid == earlier_frame), None
    )
    return Placement(point_map, chosen.kind, chosen, matrix, deformation)


def placed_courses(
    current: Plan,
    courses: Sequence[tuple[Sequence[str | os.PathLike[str]], Sequence[str | os.PathLike[str]]]],
    end_date: date | None = None,
) -> list[tuple[EarlierCourse, Placement]]:
    """Each earlier course, given as (its files, the registration files offered for it), read
    (:func:`load_earlier_course`) and placed in the plan's frame (:func:`place`)."""
    placed = []
    for paths, registration_paths in courses:
        course = load_earlier_course(paths, current, end_date)
        offered = [read_registration(path) for path in registration_paths]
        placed.append((course, place(course, current, offered)))
    return placed
