"""The contours of an ROI read straight from the bytes of its ContourSequence.

pydicom turns every item of a sequence into a Dataset of data elements when the sequence is
first read: about 30 µs an item, which for the 1,500 contours of a clinical structure set is
more than any other step of reading it but the decimal strings. A contour is read for two
elements only, ContourGeometricType and ContourData, and :func:`raw_contours` finds them by
walking the item and element headers of the sequence's bytes as pydicom left them (a
sequence of defined length is kept as bytes until it is used).

It reads the little-endian encodings (implicit and explicit VR) and nothing it is unsure of:
a sequence pydicom has already converted, big endian, a header that runs past its item or
sequence, an element of undefined length other than a sequence, a VR that is not two
capital letters, a delimiter where none belongs, an element found twice in one item, nesting
deeper than :data:`MAX_DEPTH`. For those it returns None, and the caller reads the Datasets
as before, so that every file reads as pydicom reads it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.dataelem import RawDataElement

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_GEOMETRIC_TYPE = 0x30060042
_CONTOUR_DATA = 0x30060050
_WANTED = (_GEOMETRIC_TYPE, _CONTOUR_DATA)
#: Explicit VRs whose length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
#: Sequences nested deeper than this in a contour item are left to pydicom.
MAX_DEPTH = 8

_TAG_LENGTH = struct.Struct("<HHI")
_TAG_VR_SHORT = struct.Struct("<HH2sH")


@dataclass(frozen=True)
class RawContour:
    """One item of a ContourSequence, as written.

    Attributes
    ----------
    geometric_type
        ContourGeometricType's bytes, or None where the item has none.
    contour_data
        ContourData's bytes (backslash-separated decimal strings), or None where the item has
        none.
    """

    geometric_type: bytes | None
    contour_data: bytes | None


class _Unsure(Exception):
    """The bytes are not what this reader reads: pydicom reads them."""


def raw_contours(element: object) -> list[RawContour] | None:
    """The items of a ContourSequence element as :class:`RawContour`, in order; None where the
    element is not raw little-endian bytes or anything in them is not as expected (see the
    module's description)."""
    if not isinstance(element, RawDataElement) or not element.is_little_endian:
        return None
    data = element.value
    if not isinstance(data, bytes):
        return None
    try:
        return _Walk(data, not element.is_implicit_VR).items()
    except (_Unsure, struct.error):
        return None


class _Walk:
    def __init__(self, data: bytes, explicit: bool) -> None:
        self.data = data
        self.explicit = explicit

    def items(self) -> list[RawContour]:
        """The contour items of the whole sequence (its bytes are the items, nothing else)."""
        end = len(self.data)
        pos = 0
        found = []
        while pos < end:
            tag, length, pos = self._item_header(pos, end)
            if tag != _ITEM:
                raise _Unsure
            if length == _UNDEFINED:
                fields, pos = self._elements(pos, end, until_delimiter=True, depth=1)
            else:
                stop = pos + length
                if stop > end:
                    raise _Unsure
                fields, pos = self._elements(pos, stop, until_delimiter=False, depth=1)
            found.append(RawContour(fields.get(_GEOMETRIC_TYPE), fields.get(_CONTOUR_DATA)))
        return found

    def _item_header(self, pos: int, limit: int) -> tuple[int, int, int]:
        """An item's or a delimiter's tag and length (always 4 bytes), and the position after."""
        if pos + 8 > limit:
            raise _Unsure
        group, element, length = _TAG_LENGTH.unpack_from(self.data, pos)
        return (group << 16) | element, length, pos + 8

    def _elements(
        self, pos: int, limit: int, until_delimiter: bool, depth: int
    ) -> tuple[dict[int, bytes], int]:
        """The wanted elements of one item, from ``pos`` to ``limit`` (or to its delimiter),
        and the position after the item."""
        data = self.data
        fields: dict[int, bytes] = {}
        while pos < limit:
            if pos + 8 > limit:
                raise _Unsure
            group, element, vr, short = _TAG_VR_SHORT.unpack_from(data, pos)
            tag = (group << 16) | element
            if group == 0xFFFE:
                length = _TAG_LENGTH.unpack_from(data, pos)[2]
                if tag != _ITEM_END or not until_delimiter or length != 0:
                    raise _Unsure
                return fields, pos + 8
            is_sequence = False
            if self.explicit:
                if not (vr.isalpha() and vr.isupper()):
                    raise _Unsure
                if vr in _LONG_VRS:
                    if pos + 12 > limit:
                        raise _Unsure
                    length = _TAG_LENGTH.unpack_from(data, pos + 4)[2]
                    pos += 12
                else:
                    length = short
                    pos += 8
                is_sequence = vr == b"SQ"
            else:
                length = _TAG_LENGTH.unpack_from(data, pos)[2]
                pos += 8
                is_sequence = length == _UNDEFINED  # implicit VR: only a sequence may be
            if length == _UNDEFINED:
                if not is_sequence:
                    raise _Unsure
                pos = self._skip_sequence(pos, limit, depth + 1)
                continue
            if pos + length > limit:
                raise _Unsure
            if tag in _WANTED:
                if tag in fields:
                    raise _Unsure
                fields[tag] = data[pos : pos + length]
            pos += length
        if until_delimiter:
            raise _Unsure  # the item's delimiter never came
        return fields, pos

    def _skip_sequence(self, pos: int, limit: int, depth: int) -> int:
        """The position after a nested sequence of undefined length starting at ``pos``."""
        if depth > MAX_DEPTH:
            raise _Unsure
        while True:
            tag, length, pos = self._item_header(pos, limit)
            if tag == _SEQUENCE_END:
                if length != 0:
                    raise _Unsure
                return pos
            if tag != _ITEM:
                raise _Unsure
            if length == _UNDEFINED:
                pos = self._elements(pos, limit, until_delimiter=True, depth=depth)[1]
            elif pos + length > limit:
                raise _Unsure
            else:
                pos += length
