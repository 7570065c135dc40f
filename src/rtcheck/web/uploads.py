"""A plan's files uploaded to the dashboard, put in a temporary folder and nowhere else.

Files and zip entries are written under names made safe (no folder part, no leading dot), so
no entry can reach outside the folder (zip slip); the total size and the number of files are
bounded, the sizes inside a zip included (a zip bomb is refused before it is expanded).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rtcheck.errors import UploadError
from rtcheck.logs import printable
from rtcheck.outputs.filenames import safe_name

#: Defaults: a clinical plan (CT left out) is well under 200 MB and a few hundred files.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_FILES = 2000


@dataclass(frozen=True)
class UploadLimits:
    """The most bytes (uncompressed) and files one upload may bring."""

    max_bytes: int = MAX_UPLOAD_BYTES
    max_files: int = MAX_FILES


def size_text(size: int) -> str:
    """A size in bytes as people read it (MB, kB)."""
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 1024:.0f} kB"


def _unique(name: str, number: int) -> str:
    # The number keeps two entries of the same name (in different zip folders) apart.
    return f"{number:05d}_{safe_name(_base_name(name), 120)}"


def _base_name(name: str) -> str:
    """The last part of an uploaded file's or zip entry's name (either separator)."""
    return Path(name.replace(chr(92), "/")).name


def unpack(
    uploads: Iterable[tuple[str, bytes]], folder: Path, limits: UploadLimits = UploadLimits()
) -> dict[str, str]:
    """Write uploaded files into ``folder``, expanding zip files; for each file written, the
    name it was written under and the user's name for it (``plan.zip: RS.dcm`` for an entry),
    made printable.

    Raises
    ------
    UploadError
        More than the limits allow, nothing at all, or a zip that cannot be read.
    """
    written = total = 0
    names: dict[str, str] = {}

    def put(name: str, data: bytes, shown: str) -> None:
        nonlocal written, total
        written += 1
        total += len(data)
        if written > limits.max_files:
            raise UploadError(f"more than {limits.max_files} files in one upload")
        if total > limits.max_bytes:
            raise UploadError(f"the upload is larger than {size_text(limits.max_bytes)}")
        stored = _unique(name, written)
        (folder / stored).write_bytes(data)
        names[stored] = printable(shown)[:200]

    for name, data in uploads:
        if data[:4] == b"PK\x03\x04":
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
                entries = [e for e in archive.infolist() if not e.is_dir()]
            except zipfile.BadZipFile as exc:
                raise UploadError(f"{safe_name(name)}: not a readable zip file ({exc})") from None
            declared = sum(e.file_size for e in entries)
            if declared + total > limits.max_bytes or len(entries) + written > limits.max_files:
                raise UploadError(
                    f"{safe_name(name)}: expands to {len(entries)} files, {size_text(declared)}: "
                    f"more than {size_text(limits.max_bytes)} or {limits.max_files} files"
                )
            for entry in entries:
                try:
                    shown = f"{_base_name(name)}: {entry.filename}"
                    put(entry.filename, archive.read(entry), shown)
                except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
                    raise UploadError(f"{safe_name(name)}: cannot read an entry ({exc})") from None
        else:
            put(name, data, _base_name(name))
    if written == 0:
        raise UploadError("no file was uploaded")
    return names
