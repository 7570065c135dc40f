"""Where received DICOM objects are kept: one file per SOP instance under
``STORAGE/<PatientID>/<KIND>_<SOPInstanceUID>.dcm``, identifiers sanitised, each file written
once and atomically (written in a staging folder beside the storage, then renamed into place,
so a transfer dropped half-way leaves nothing that could be checked).

Used by ``rtcheck listen`` (objects sent to it) and ``rtcheck pull`` (objects it retrieves).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcheck.dicom.files import RTDOSE, RTION_PLAN, RTPLAN, RTSTRUCT
from rtcheck.errors import UnreadableObjectError
from rtcheck.outputs.filenames import safe_name

#: RT objects a plan is made of, by SOP class, with the kind that starts their file name.
RT_STORAGE = {RTSTRUCT: "RTSTRUCT", RTDOSE: "RTDOSE", RTPLAN: "RTPLAN", RTION_PLAN: "RTIONPLAN"}
#: Images a planning system may send along: accepted, and stored only when asked.
IMAGE_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
}


#: The C-STORE failure status (PS3.4 Annex B.2.3) of an object that is not what it was sent as
#: (one that cannot be decoded is 0xC000, "cannot understand", UnreadableObjectError's default).
DOES_NOT_MATCH = 0xA900


def received_problem(ds: Any, sop_class: str, sop_instance: str) -> UnreadableObjectError | None:
    """Why a received object cannot be kept, or None: each of its elements is decoded, and it
    must be the instance and class it was sent as; an RT object must name its frame of
    reference (without one it could join no plan, and would lie in storage unchecked)."""
    try:
        for element in ds.iterall():
            _ = element.value  # decodes the element (numbers, dates, sequences)
    except Exception as exc:  # whatever pydicom raises on a value it cannot decode
        return UnreadableObjectError(f"cannot be decoded ({type(exc).__name__})")
    if str(ds.get("SOPInstanceUID", "")) != sop_instance:
        return UnreadableObjectError(
            "its SOP Instance UID is not the one it was sent under", DOES_NOT_MATCH
        )
    if str(ds.get("SOPClassUID", "")) != sop_class:
        return UnreadableObjectError("its SOP Class is not the one it was sent as", DOES_NOT_MATCH)
    if sop_class in RT_STORAGE:
        frames = ds.get("ReferencedFrameOfReferenceSequence") or ()
        frame = str(ds.get("FrameOfReferenceUID", "")) or any(
            str(item.get("FrameOfReferenceUID", "")) for item in frames
        )
        if not frame:
            return UnreadableObjectError("names no Frame of Reference UID", DOES_NOT_MATCH)
    return None


@dataclass(frozen=True)
class ObjectStore:
    """A storage folder and its staging folder (``.<name>.incoming`` beside it, never inside,
    so that a half-written file is never indexed)."""

    root: Path

    @property
    def staging(self) -> Path:
        return self.root.parent / f".{self.root.name}.incoming"

    def prepare(self) -> None:
        """Create the storage and staging folders."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(exist_ok=True)

    def path_of(self, patient_id: str, kind: str, sop_instance_uid: str) -> Path:
        """Where an object is kept; no identifier can leave the storage folder."""
        folder = self.root / safe_name(patient_id or "unknown", 40)
        return folder / f"{kind}_{safe_name(sop_instance_uid, 80)}.dcm"

    def holds(self, patient_id: str, sop_instance_uid: str) -> bool:
        """Whether an object of that patient and SOP instance is stored (of any kind)."""
        folder = self.root / safe_name(patient_id or "unknown", 40)
        return any(folder.glob(f"*_{safe_name(sop_instance_uid, 80)}.dcm"))

    def put(self, patient_id: str, kind: str, sop_instance_uid: str, data: bytes) -> bool:
        """Store one encoded object (file meta included); False when the same bytes are
        already stored."""
        return write_once(self.path_of(patient_id, kind, sop_instance_uid), data, self.staging)

    def put_received(self, event: Any, kind: str) -> bool:
        """Store the object of a pynetdicom C-STORE event (sent to ``listen``, or by a PACS
        during a retrieval); False when the same bytes are already stored.

        Raises
        ------
        UnreadableObjectError
            pydicom cannot decode the dataset (it is not stored).
        OSError
            It cannot be written.
        """
        try:
            ds = event.dataset
            patient = str(ds.get("PatientID", "") or "unknown")
        except Exception:  # whatever pydicom raises on a dataset it cannot decode
            raise UnreadableObjectError("cannot be decoded") from None
        request = event.request
        problem = received_problem(
            ds, str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID)
        )
        if problem is not None:
            raise problem
        data = bytes(event.encoded_dataset(include_meta=True))
        return self.put(patient, kind, str(event.request.AffectedSOPInstanceUID), data)


def write_once(path: Path, data: bytes, staging: Path) -> bool:
    """Write ``data`` to ``path`` atomically (written in ``staging``, then renamed into place);
    False when the same bytes are there already."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="incoming-", dir=staging)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
