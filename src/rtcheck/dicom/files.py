"""Reading one DICOM file, including the old exports that lack the DICOM preamble and File Meta
header (some XiO and Pinnacle exports, pydicom's ``rtstruct.dcm``).

Such a file is read only when its content is a recognisable RT object: its SOP Class UID is one
of the RT classes rtcheck reads. Anything else stays "not DICOM".
"""

from __future__ import annotations

import os
import stat
import warnings
import zlib
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID

from rtcheck.caps import INFLATED_BYTES
from rtcheck.errors import LimitExceededError

RTDOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RTION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
PLAN_CLASSES = frozenset({RTPLAN, RTION_PLAN})
RT_CLASSES = frozenset({RTDOSE, RTSTRUCT, *PLAN_CLASSES})
DEFLATED = "1.2.840.10008.1.2.1.99"

#: The warning for a file read without its File Meta header.
NO_HEADER_NOTE = "read without a DICOM preamble and File Meta header (an old export)"

_ENCODINGS = {
    (True, True): "1.2.840.10008.1.2",  # Implicit VR Little Endian
    (False, True): "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    (False, False): "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (or a link to one); False for pipes, sockets and devices, whose
    reading may never end, and for what cannot be looked at."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _refuse_inflating_beyond_limit(path: str | os.PathLike[str]) -> None:
    """Refuse a deflated file that inflates beyond :data:`~rtcheck.caps.INFLATED_BYTES`,
    measured by inflating it in pieces before pydicom inflates it whole (a 2 MB file can
    inflate to 14 GB). Other files pass untouched."""
    with open(path, "rb") as file:
        head = file.read(132)
        if head[128:132] != b"DICM":
            return
        meta_start = file.tell()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                meta = read_file_meta_info(path)
        except Exception:  # not a File Meta header rtcheck can read: pydicom will say so
            return
        if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
            return
        group_length = int(meta.get("FileMetaInformationGroupLength", 0) or 0)
        file.seek(meta_start + 12 + group_length)  # the (0002,0000) element is 12 bytes
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        limit = INFLATED_BYTES.value
        total = 0
        while data := inflater.unconsumed_tail or file.read(1 << 20):
            try:
                # At most 4 MB of output at a time: the measure itself stays small.
                total += len(inflater.decompress(data, 1 << 22))
            except zlib.error:
                return  # damaged: pydicom reports it
            if total > limit:
                raise LimitExceededError(
                    f"{path}: a deflated file that inflates to more than {limit:,} bytes "
                    f"(set {INFLATED_BYTES.variable} to raise the limit if the plan is real)"
                )


def sop_class_of(ds: Dataset) -> str:
    """The SOP Class UID of a dataset, or of its File Meta header when the dataset lacks it."""
    value = ds.get("SOPClassUID")
    if not value:
        meta = getattr(ds, "file_meta", None)
        value = meta.get("MediaStorageSOPClassUID", "") if meta else ""
    return str(value or "")


def read_dicom(path: str | os.PathLike[str], **options: Any) -> tuple[Dataset, str | None]:
    """Read a DICOM file with pydicom's ``dcmread(path, **options)``.

    Returns
    -------
    The dataset, and :data:`NO_HEADER_NOTE` when it was read without a File Meta header (its
    transfer syntax is then the encoding pydicom found, set in memory), else None.

    Raises
    ------
    InvalidDicomError
        The file is not DICOM, nor a headerless RT object.
    LimitExceededError
        A deflated file would inflate beyond the limit.
    OSError
        The file cannot be read.
    """
    _refuse_inflating_beyond_limit(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dcmread(path, **options), None
        except InvalidDicomError as exc:
            try:
                ds = dcmread(path, force=True, **options)
                recognised = str(ds.get("SOPClassUID", "")) in RT_CLASSES
            except Exception:  # a forced read of a non-DICOM file fails in many ways
                recognised = False
            if not recognised:
                raise exc from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        encoding = ds.original_encoding
        syntax = _ENCODINGS.get((bool(encoding[0]), bool(encoding[1])), "1.2.840.10008.1.2")
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds, NO_HEADER_NOTE
