"""Names of the files rtcheck writes from identifiers a DICOM file holds: sanitised (no folder
part, no "..", no leading dot) and made unique by a hash, so that no PatientID or UID can
reach outside the folder written to, nor two plans share a file."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name part made from an identifier: no separators, no '..', no leading dot."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "unknown"
    cleaned = cleaned.replace("..", "_")
    return cleaned[:limit]


def plan_file_name(patient_id: str | None, key: str, suffix: str) -> str:
    """File name for a plan's record or report: sanitised identifiers (never a raw PatientID),
    then 10 hex digits of a hash of both as given, so that two plans never share a name however
    alike their sanitised, shortened identifiers are."""
    digest = hashlib.sha256(f"{patient_id or ''}\x00{key}".encode()).hexdigest()[:10]
    return f"{safe_name(patient_id or 'unknown', 40)}_{safe_name(key)}_{digest}{suffix}"


def report_name(patient_id: str | None, key: str) -> str:
    """File name of a plan's HTML report."""
    return plan_file_name(patient_id, key, ".html")
