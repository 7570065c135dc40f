"""Fast reading of DICOM decimal strings (DS) such as ContourData.

A large structure set holds hundreds of thousands of decimal strings; converting them one by
one costs more than everything else in loading a plan. :func:`parse_plain_decimals` reads the
plain ones (``-12.5``, ``3``, ``.25``) in a few array passes and gives exactly what ``float``
gives; anything else is left to the caller's general path.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Powers of ten that a double holds exactly.
_POWERS = 10.0 ** np.arange(16)
#: Digits per value above which the integer mantissa may no longer be exact in a double.
MAX_DIGITS = 15

_BACKSLASH, _DOT, _MINUS, _ZERO, _NINE = (ord(c) for c in "\\.-09")


def parse_plain_decimals(text: bytes) -> NDArray[np.float64] | None:
    """The backslash-separated values of ``text`` as floats, or None unless every value is a
    plain decimal: an optional leading ``-``, at most one ``.``, 1 to :data:`MAX_DIGITS`
    digits, nothing else (no spaces, exponents or ``+``, no empty value).

    Each value is its integer mantissa divided by a power of ten, both exact in a double, so
    the result is the correctly rounded value that ``float`` gives.
    """
    b = np.frombuffer(text, dtype=np.uint8)
    if b.size == 0:
        return None
    separator = b == _BACKSLASH
    digit = (b >= _ZERO) & (b <= _NINE)
    dot = b == _DOT
    minus = b == _MINUS
    if not np.all(separator | digit | dot | minus):
        return None
    token = np.cumsum(separator)
    count = int(token[-1]) + 1
    cuts = np.flatnonzero(separator)
    starts = np.concatenate(([0], cuts + 1))
    ends = np.concatenate((cuts, [b.size]))
    if np.any(ends <= starts):
        return None
    dots = np.flatnonzero(dot)
    minuses = np.flatnonzero(minus)
    digits = np.flatnonzero(digit)
    owner = token[digits]
    per_token = np.bincount(owner, minlength=count)
    if (
        np.any(np.bincount(token[dots], minlength=count) > 1)
        or np.any(minuses != starts[token[minuses]])
        or np.any(per_token == 0)
        or np.any(per_token > MAX_DIGITS)
    ):
        return None
    point = ends.copy()
    point[token[dots]] = dots
    has_point = point < ends
    # A digit's place counts the digits after it in its value; a point between is no digit.
    place = ends[owner] - 1 - digits - ((digits < point[owner]) & has_point[owner])
    mantissa = np.bincount(owner, weights=(b[digits] - _ZERO) * _POWERS[place], minlength=count)
    scale = _POWERS[np.where(has_point, ends - 1 - point, 0)]
    values = mantissa / scale
    values[token[minuses]] *= -1.0
    return values
