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
