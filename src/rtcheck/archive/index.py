"""Indexing a plan archive: one walk, headers only, files grouped into plans by their UIDs.

A plan is one RTSTRUCT with the RTPLANs that reference it and the RTDOSEs that reference those
plans (several plans of one patient on one structure set, such as a primary and a lesion boost,
are one task, so that their doses are summed as the protocol says). An RTDOSE whose RTPLAN is
not in the archive joins the RTSTRUCT of the same study and frame of reference. What has no
partner is an orphan: a dose without a structure set, a structure set without a dose. Images are
recognised by SOP Class from the header and skipped; unreadable files are counted, never fatal.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom.dataset import Dataset

from rtcheck.dicom.files import (
    RT_CLASSES,
    RTDOSE,
    RTION_PLAN,
    RTPLAN,
    RTSTRUCT,
    is_regular_file,
    read_dicom,
    sop_class_of,
)
from rtcheck.dicom.plan import referenced_uid
from rtcheck.dicom.registration import REGISTRATION_CLASSES

_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "PatientID",
    "ReferencedRTPlanSequence",
    "ReferencedStructureSetSequence",
    "ReferencedFrameOfReferenceSequence",
    "RTPlanDate",
    "RegistrationSequence",
    "DeformableRegistrationSequence",
]


@dataclass(frozen=True)
class Header:
    """What the index reads of one RT file."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    frame_uid: str
    patient_id: str
    referenced_plan: str
    referenced_structure_set: str
    sha256: str
    #: RTPlanDate (YYYYMMDD) of an RTPLAN, else "".
    plan_date: str = ""
    #: The frames of reference a registration object relates (its own among them).
    related_frames: tuple[str, ...] = ()


@dataclass(frozen=True)
class EarlierTask:
    """An earlier plan of the same patient, to be summed with a task's plan.

    Attributes
    ----------
    key
        The earlier task's key (its RTSTRUCT's SOP Instance UID).
    files
        Its files.
    registration
        The registration object relating the two frames; "" when they share one.
    """

    key: str
    files: tuple[str, ...]
    registration: str


@dataclass(frozen=True)
class PlanTask:
    """One plan to check: its files and the hash of their contents.

    Attributes
    ----------
    key
        The RTSTRUCT's SOP Instance UID: stable across runs, so results can be resumed.
    files
        Paths of the RTSTRUCT, RTPLANs and RTDOSEs, sorted.
    input_hash
        SHA-256 over the files' own SHA-256 digests, in path order.
    patient_id, study_uid
        From the RTSTRUCT.
    frame_uid, plan_date
        The RTSTRUCT's frame of reference; the latest RTPlanDate of its RTPLANs (YYYYMMDD, or
        "").
    earlier
        Earlier plans of the patient found in the archive, each with the registration that
        relates it to this plan (or none, in the same frame): summed with it in EQD2.
    unsummed
        Other plans of the patient that could not be summed, and why: the check says that
        earlier courses exist but were not summed.
    """

    key: str
    files: tuple[str, ...]
    input_hash: str
    patient_id: str
    study_uid: str
    frame_uid: str = ""
    plan_date: str = ""
    earlier: tuple[EarlierTask, ...] = ()
    unsummed: tuple[str, ...] = ()
    #: ``check`` (a plan), or ``screen`` (a structure set without a dose, screened).
    kind: str = "check"


@dataclass(frozen=True)
class Orphan:
    """An RT object that cannot form a plan, and why."""

    path: str
    modality: str
    reason: str


@dataclass
class ArchiveIndex:
    """The result of indexing an archive."""

    tasks: list[PlanTask] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    #: Structure sets without a dose, as screening tasks (``batch --screen`` runs them).
    screens: list[PlanTask] = field(default_factory=list)
    files_seen: int = 0
    images_skipped: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    not_regular: int = 0
    copies_skipped: int = 0


def walk_files(root: str | Path) -> Iterator[str]:
    """Every file under ``root`` (pipes and devices too: the caller sorts them out); symbolic
    links to folders are not followed (no loops),
    and folders that cannot be listed are skipped."""
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=lambda _: None):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(folder, name)


def read_header(path: str) -> Header | None:
    """The UIDs of an RT file, or None for an image or other non-RT DICOM object. Its SHA-256
    is left empty: :func:`index_archive` computes it on a thread of its own.

    Raises
    ------
    OSError, InvalidDicomError
        On files that cannot be read as DICOM (the caller records them).
    """
    ds, _ = read_dicom(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    sop_class = sop_class_of(ds)
    if sop_class not in RT_CLASSES | REGISTRATION_CLASSES:
        return None

    frame = str(ds.get("FrameOfReferenceUID", ""))
    if not frame and ds.get("ReferencedFrameOfReferenceSequence"):
        frame = str(ds.ReferencedFrameOfReferenceSequence[0].get("FrameOfReferenceUID", ""))
    return Header(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        frame_uid=frame,
        patient_id=str(ds.get("PatientID", "")),
        referenced_plan=referenced_uid(ds, "ReferencedRTPlanSequence"),
        referenced_structure_set=referenced_uid(ds, "ReferencedStructureSetSequence"),
        sha256="",
        plan_date=str(ds.get("RTPlanDate", "") or "").strip(),
        related_frames=_related_frames(ds, frame) if sop_class in REGISTRATION_CLASSES else (),
    )


def _related_frames(ds: Dataset, own: str) -> tuple[str, ...]:
    """The frames a registration object relates: its own, its items', its sources'."""
    frames = [own]
    frames += [str(i.get("FrameOfReferenceUID", "")) for i in ds.get("RegistrationSequence", [])]
    frames += [
        str(i.get("SourceFrameOfReferenceUID", ""))
        for i in ds.get("DeformableRegistrationSequence", [])
    ]
    return tuple(dict.fromkeys(f for f in frames if f))


def index_archive(root: str | Path) -> ArchiveIndex:
    """Walk ``root`` once and group its RT files into plans.

    An RT file's SHA-256 is computed on a thread of its own while the next files' headers are
    read: hashing and reading release the interpreter's lock, and an RT archive's bytes are
    mostly its dose grids and structure sets, which only the hash reads whole.
    """
    index = ArchiveIndex()
    headers: list[Header] = []
    with ThreadPoolExecutor(max_workers=HASHING_THREADS) as hashing:
        pending: list[tuple[Header, Future[str]]] = []
        for path in walk_files(root):
            if not is_regular_file(path):
                index.not_regular += 1  # a pipe would block the read forever; a device, worse
                continue
            index.files_seen += 1
            try:
                header = read_header(path)
            except Exception as exc:  # pydicom raises many kinds on damaged files
                index.unreadable.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            if header is None:
                index.images_skipped += 1
            else:
                pending.append((header, hashing.submit(file_sha256, path)))
        for header, digest in pending:
            try:
                headers.append(replace(header, sha256=digest.result()))
            except OSError as exc:  # read while its header was, gone or unreadable since
                index.unreadable.append((header.path, f"{type(exc).__name__}: {exc}"))
    _group(_without_copies(headers, index), index)
    return index


#: Threads hashing an archive's RT files while their headers are read.
HASHING_THREADS = 2


def _without_copies(headers: list[Header], index: ArchiveIndex) -> list[Header]:
    """The headers with byte-identical copies of one object (same SOP Instance UID, same
    SHA-256: an archive exported twice) counted once; the copies are counted as such."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for header in headers:
        identity = (header.sop_instance_uid, header.sha256)
        if identity in seen:
            index.copies_skipped += 1
        else:
            seen.add(identity)
            kept.append(header)
    return kept


def _group(headers: list[Header], index: ArchiveIndex) -> None:
    structs = {h.sop_instance_uid: h for h in headers if h.sop_class_uid == RTSTRUCT}
    plans = {h.sop_instance_uid: h for h in headers if h.sop_class_uid in (RTPLAN, RTION_PLAN)}
    by_study_frame: dict[tuple[str, str], list[Header]] = defaultdict(list)
    for h in structs.values():
        by_study_frame[(h.study_uid, h.frame_uid)].append(h)

    members: dict[str, list[Header]] = {uid: [h] for uid, h in structs.items()}
    has_dose: set[str] = set()
    for plan in plans.values():
        if plan.referenced_structure_set in members:
            members[plan.referenced_structure_set].append(plan)
        else:
            index.orphans.append(Orphan(plan.path, "RTPLAN", "its RTSTRUCT is not in the archive"))
    for dose in (h for h in headers if h.sop_class_uid == RTDOSE):
        target = ""
        dose_plan = plans.get(dose.referenced_plan)
        if dose_plan is not None and dose_plan.referenced_structure_set in members:
            target = dose_plan.referenced_structure_set
        elif dose_plan is None:
            candidates = by_study_frame.get((dose.study_uid, dose.frame_uid), [])
            if dose.referenced_structure_set in members:
                target = dose.referenced_structure_set
            elif len(candidates) == 1:
                target = candidates[0].sop_instance_uid
        if target:
            members[target].append(dose)
            has_dose.add(target)
        else:
            index.orphans.append(
                Orphan(dose.path, "RTDOSE", "no RTSTRUCT in the archive belongs with this dose")
            )
    for uid, group in members.items():
        struct = structs[uid]
        ordered = sorted(group, key=lambda h: h.path)
        digest = hashlib.sha256("".join(h.sha256 for h in ordered).encode()).hexdigest()
        task = PlanTask(
            key=uid,
            files=tuple(h.path for h in ordered),
            input_hash=digest,
            patient_id=struct.patient_id,
            study_uid=struct.study_uid,
            frame_uid=struct.frame_uid,
            plan_date=max((h.plan_date for h in group if h.plan_date), default=""),
            kind="check" if uid in has_dose else "screen",
        )
        if uid not in has_dose:
            index.orphans.append(Orphan(struct.path, "RTSTRUCT", "no RTDOSE references it"))
            index.screens.append(task)
        else:
            index.tasks.append(task)
    registrations = [h for h in headers if h.sop_class_uid in REGISTRATION_CLASSES]
    index.tasks = _with_earlier_courses(index.tasks, registrations)
    index.tasks.sort(key=lambda t: t.files[0])


def _with_earlier_courses(tasks: list[PlanTask], registrations: list[Header]) -> list[PlanTask]:
    """Each task with the patient's other plans: an earlier one (by RTPlanDate) is summed where
    it shares the frame of reference or one registration in the archive relates the two;
    otherwise, and where the order is unknown, the task says so."""
    by_patient: dict[str, list[PlanTask]] = defaultdict(list)
    for task in tasks:
        if task.patient_id:
            by_patient[task.patient_id].append(task)
    linked = []
    for task in tasks:
        others = [t for t in by_patient.get(task.patient_id, []) if t.key != task.key]
        earlier: list[EarlierTask] = []
        unsummed: list[str] = []
        for other in others:
            when = _date_text(other.plan_date)
            if not (task.plan_date and other.plan_date) or other.plan_date == task.plan_date:
                unsummed.append(
                    f"another plan of this patient ({when}, study {other.study_uid}): which "
                    "course came first is unknown (RTPlanDate missing or equal)"
                )
                continue
            if other.plan_date > task.plan_date:
                continue  # a later course: this plan is its earlier one
            if other.frame_uid == task.frame_uid:
                earlier.append(EarlierTask(other.key, other.files, ""))
                continue
            relating = [
                r
                for r in registrations
                if r.patient_id == task.patient_id
                and {task.frame_uid, other.frame_uid} <= set(r.related_frames)
            ]
            if len(relating) == 1:
                earlier.append(EarlierTask(other.key, other.files, relating[0].path))
            else:
                why = "no registration" if not relating else f"{len(relating)} registrations"
                unsummed.append(
                    f"an earlier plan of this patient ({when}, study {other.study_uid}) in "
                    f"another frame of reference: {why} in the archive relating it to this "
                    "plan's"
                )
        if not (earlier or unsummed):
            linked.append(task)
            continue
        used = [e.registration for e in earlier if e.registration]
        digests = [task.input_hash, *(o.input_hash for o in others), *map(file_sha256, used)]
        digest = hashlib.sha256("".join(digests).encode()).hexdigest()
        linked.append(
            replace(task, earlier=tuple(earlier), unsummed=tuple(unsummed), input_hash=digest)
        )
    return linked


def _date_text(value: str) -> str:
    if len(value) == 8 and value.isdigit():
        return f"planned {value[:4]}-{value[4:6]}-{value[6:]}"
    return "no RTPlanDate"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
