"""Checking that a DICOM file is complete before its content is trusted.

pydicom reads a truncated file without complaint when the cut falls inside a sequence of
undefined length: the structure set simply ends early, and ROIs or contours go missing without
a word. This module walks the file's data element headers (tag, VR, length) and refuses a file
whose last element runs past its end or whose open sequences and items are never closed.
"""

from __future__ import annotations

import struct

from rtcheck.errors import InvalidInputError

_UNDEFINED = 0xFFFFFFFF
_ITEM = (0xFFFE, 0xE000)
#: Pixel Data: with an undefined length it holds compressed fragments, not datasets.
_PIXEL_DATA = (0x7FE0, 0x0010)
_DELIMITERS = {(0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)}
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"


def check_complete(path: str, data: bytes, transfer_syntax_uid: str) -> None:
    """Raise :class:`InvalidInputError` when ``data`` (the bytes of the file at ``path``) is cut
    short.

    Parameters
    ----------
    path
        The file's path, for the message.
    data
        The file's bytes.
    transfer_syntax_uid
        The dataset's transfer syntax (from its file meta information).
    """
    if transfer_syntax_uid == _DEFLATED:
        return  # the dataset is compressed as a whole; zlib reports a cut itself
    start = 132 if data[128:132] == b"DICM" else 0
    walker = _Walker(data, transfer_syntax_uid)
    try:
        walker.walk(start, len(data), until_delimiter=False)
    except _Truncated as exc:
        raise InvalidInputError(f"{path}: truncated DICOM file ({exc})") from None


class _Truncated(Exception):
    pass


class _Walker:
    def __init__(self, data: bytes, transfer_syntax_uid: str) -> None:
        self.data = data
        self.explicit = transfer_syntax_uid != _IMPLICIT_LITTLE
        self.order = ">" if transfer_syntax_uid == _EXPLICIT_BIG else "<"

    def walk(self, pos: int, limit: int, until_delimiter: bool, fragments: bool = False) -> int:
        """Walk the elements from ``pos`` to ``limit``; the items of ``fragments`` are opaque
        bytes (encapsulated pixel data), those of a sequence are datasets."""
        data = self.data
        while pos < limit:
            if pos + 8 > limit:
                raise _Truncated(f"an element header is cut at byte {pos}")
            # The file meta group is always explicit VR little endian.
            meta = data[pos : pos + 2] == b"\x02\x00"
            order = "<" if meta else self.order
            group, element = struct.unpack_from(f"{order}HH", data, pos)
            tag = (group, element)
            if tag in _DELIMITERS:
                pos += 8
                if until_delimiter:
                    return pos
                continue
            vr = data[pos + 4 : pos + 6]
            if group != 0xFFFE and (self.explicit or meta) and vr.isalpha():
                if vr in _LONG_VRS:
                    if pos + 12 > limit:
                        raise _Truncated(f"an element header is cut at byte {pos}")
                    (length,) = struct.unpack_from(f"{order}I", data, pos + 8)
                    pos += 12
                else:
                    (length,) = struct.unpack_from(f"{order}H", data, pos + 6)
                    pos += 8
            else:
                (length,) = struct.unpack_from(f"{order}I", data, pos + 4)
                pos += 8
            if length == _UNDEFINED:
                pos = self.walk(pos, limit, until_delimiter=True, fragments=tag == _PIXEL_DATA)
                continue
            if pos + length > limit:
                raise _Truncated(
                    f"element ({group:04X},{element:04X}) declares {length} bytes, "
                    f"{limit - pos} remain"
                )
            if tag == _ITEM and not fragments:
                self.walk(pos, pos + length, until_delimiter=False)
            pos += length
        if until_delimiter:
            raise _Truncated("a sequence or item of undefined length is never closed")
        return pos
