"""Reading one DICOM file, including the old exports that lack the DICOM preamble and File Meta
header (some XiO and Pinnacle exports, pydicom's ``rtstruct.dcm``).

Such a file is read only when its content is a recognisable RT object: its SOP Class UID is one
of the RT classes rtcheck reads. Anything else stays "not DICOM".
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

RTDOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RTION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
PLAN_CLASSES = frozenset({RTPLAN, RTION_PLAN})
RT_CLASSES = frozenset({RTDOSE, RTSTRUCT, *PLAN_CLASSES})

#: The warning for a file read without its File Meta header.
NO_HEADER_NOTE = "read without a DICOM preamble and File Meta header (an old export)"

_ENCODINGS = {
    (True, True): "1.2.840.10008.1.2",  # Implicit VR Little Endian
    (False, True): "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    (False, False): "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}


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
    OSError
        The file cannot be read.
    """
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
