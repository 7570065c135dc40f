"""Fast reading of DICOM decimal strings (DS) such as ContourData.

A large structure set holds millions of decimal strings; converting them one by one costs more
than everything else in loading a plan. :func:`parse_plain_decimals` reads the plain ones
(``-12.5``, ``3``, ``.25``) and gives exactly what ``float`` gives; anything else is left to
the caller's general path.

Two readers, the first that can: simdjson's C++ number parser (pysimdjson), which reads the
values as one JSON array straight into a buffer of doubles (correctly rounded, as ``float``
is), for the text that is also JSON; and a few numpy array passes over the text for the plain
decimals JSON does not allow (``.25``, ``5.``, leading zeros). Measured on 3.3 million values:
see the README's performance section.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Powers of ten that a double holds exactly.
_POWERS = 10.0 ** np.arange(16)
#: Digits per value above which the integer mantissa may no longer be exact in a double.
MAX_DIGITS = 15

_BACKSLASH, _DOT, _MINUS, _ZERO, _NINE = (ord(c) for c in "\\.-09")
#: The bytes a plain decimal string holds: digits, point, minus, and the separator.
_PLAIN = b"0123456789.-\\"
#: The separator as JSON's (one C pass of bytes.translate, four times faster than numpy's).
_TO_JSON = bytes.maketrans(b"\\", b",")


#: Bytes of text read as one JSON document. simdjson's parser keeps buffers of about 50 bytes
#: per value of the largest document it has read: a body outline of a million values read as
#: one document made 50 MB of fresh pages. Read in pieces of this size (about 9,000 values),
#: the buffers stay under half a megabyte: the first reading of a clinical-size structure set
#: took 150-158 ms with 21,900 page faults in one document per ROI, 128-135 ms with 10,000.
JSON_CHUNK_BYTES = 1 << 16


def parse_plain_decimals(text: bytes) -> NDArray[np.float64] | None:
    """The backslash-separated values of ``text`` as floats, or None unless every value is a
    plain decimal: an optional leading ``-``, at most one ``.``, digits, nothing else (no
    spaces, exponents or ``+``, no empty value)."""
    if not text or text.translate(None, _PLAIN):
        return None
    found = _as_json(text)
    return found if found is not None else _by_array_passes(np.frombuffer(text, dtype=np.uint8))


def _as_json(text: bytes) -> NDArray[np.float64] | None:
    """The values read by simdjson, as JSON arrays of at most :data:`JSON_CHUNK_BYTES` of text
    each (cut at separators), or None where the text is not JSON (a value such as ``.25``,
    ``5.``, ``007``, an empty value, an integer beyond 64 bits)."""
    try:
        import simdjson
    except ImportError:  # pragma: no cover - a dependency; the array passes still read it
        return None
    parser = _parser(simdjson)
    values = np.empty(text.count(b"\\") + 1)
    start = filled = 0
    while start <= len(text):
        end = len(text)
        if end - start > JSON_CHUNK_BYTES:
            end = text.rfind(b"\\", start, start + JSON_CHUNK_BYTES)
            if end <= start:  # one value longer than a piece, or an empty value: read on
                end = text.find(b"\\", start + JSON_CHUNK_BYTES)
                end = len(text) if end < 0 else end
        piece = _json_piece(parser, simdjson, text[start:end])
        if piece is None:
            return None
        values[filled : filled + piece.size] = piece
        filled += piece.size
        start = end + 1
    return values if filled == values.size else None


def _json_piece(parser: Any, simdjson: Any, text: bytes) -> NDArray[np.float64] | None:
    """The values of ``text`` read as one JSON array, or None where it is not one.

    The characters are known to be plain (digits, point, minus), so every value JSON accepts
    is a plain decimal, and simdjson's numbers are correctly rounded, as ``float``'s are. JSON
    reads ``-0`` as the integer 0: its sign is put back (``-0.0`` keeps its own)."""
    if not text:
        return None
    try:
        document = parser.parse(b"[" + text.translate(_TO_JSON) + b"]")
        if not isinstance(document, simdjson.Array):
            return None
        # as_buffer copies the values out of the parser into a buffer of their own, writable
        # and valid after the parser is reused (pysimdjson's documentation).
        values = np.frombuffer(document.as_buffer(of_type="d"), dtype=np.float64)
        del document  # the parser may be reused only once nothing refers to its document
    except (ValueError, RuntimeError, TypeError, OverflowError):
        return None
    # Only the integer "-0" loses its sign ("-0.0" keeps it): the text is searched for it only
    # where a value is zero.
    zeros = np.flatnonzero(values == 0.0)
    if zeros.size and (b"-0\\" in text or text.endswith(b"-0")):
        b = np.frombuffer(text, dtype=np.uint8)
        starts = np.concatenate(([0], np.flatnonzero(b == _BACKSLASH) + 1))
        values[zeros[b[starts[zeros]] == _MINUS]] = -0.0
    return values


_LOCAL = threading.local()


def _parser(simdjson: Any) -> Any:
    """This thread's simdjson parser: kept, as a new one allocates its buffers again (40 ms
    on a clinical structure set); a parser is not shared between threads."""
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = simdjson.Parser()
    return parser


def _by_array_passes(b: NDArray[np.uint8]) -> NDArray[np.float64] | None:
    """The plain decimals of ``b`` in a few array passes, or None for a value that is not one
    or holds more than :data:`MAX_DIGITS` digits.

    Each value is its integer mantissa divided by a power of ten, both exact in a double, so
    the result is the correctly rounded value that ``float`` gives.
    """
    separator = b == _BACKSLASH
    digit = (b >= _ZERO) & (b <= _NINE)
    dot = b == _DOT
    minus = b == _MINUS
    if not np.all(separator | digit | dot | minus):
        return None
    cuts = np.flatnonzero(separator)
    starts = np.concatenate(([0], cuts + 1))
    ends = np.concatenate((cuts, [b.size]))
    if np.any(ends <= starts):
        return None
    count = len(starts)
    # At most one point and one leading minus per value; everything else is digits.
    dots = np.flatnonzero(dot)
    owner_of_dot = np.cumsum(separator, dtype=np.intp)[dots]
    negative = b[starts] == _MINUS
    if np.any(np.diff(owner_of_dot) <= 0) or np.count_nonzero(minus) != np.count_nonzero(negative):
        return None
    decimals = np.zeros(count, dtype=np.intp)
    decimals[owner_of_dot] = ends[owner_of_dot] - dots - 1
    per_value = ends - starts - negative
    per_value[owner_of_dot] -= 1
    if np.any(per_value == 0) or np.any(per_value > MAX_DIGITS):
        return None
    # The digits of all values in order; a digit's place is the number of digits after it in
    # its own value (the point is no digit), so the mantissa is an exact integer sum.
    values_digits = (b[digit] - _ZERO).astype(np.float64)
    last = np.cumsum(per_value) - 1
    place = np.repeat(last, per_value) - np.arange(values_digits.size)
    values_digits *= _POWERS[place]
    mantissa = np.add.reduceat(values_digits, last - per_value + 1)
    values: NDArray[np.float64] = mantissa / _POWERS[decimals]
    values[negative] *= -1.0
    return values
