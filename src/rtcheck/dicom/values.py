"""Numbers read from DICOM elements, checked where they are read.

A value that is not a number, not finite, of the wrong multiplicity or outside its range is
refused with one line naming the file, the element and the value, never passed on to become an
internal error or a silent wrong number further down.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset

from rtcheck.errors import RtcheckError

#: Builds the error to raise from a message (the caller's error class, with the file named).
Refusal = Callable[[str], RtcheckError]

_UNREADABLE = (ValueError, TypeError, OverflowError, AttributeError, KeyError)


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str | bytes) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _raw(ds: Dataset, keyword: str, refuse: Refusal) -> Any:
    try:
        value = ds.get(keyword)
    except _UNREADABLE as exc:  # pydicom converts on access, and may fail there
        raise refuse(f"{keyword} cannot be read ({exc})") from None
    if value is None or value == "":
        raise refuse(f"{keyword} is missing")
    return value


def numbers(
    ds: Dataset,
    keyword: str,
    count: int | None,
    refuse: Refusal,
    *,
    positive: bool = False,
    largest: float = 1e6,
) -> list[float]:
    """The finite numbers of an element (exactly ``count`` of them unless None), each of
    magnitude at most ``largest`` (strictly positive with ``positive``)."""
    raw = _raw(ds, keyword, refuse)
    single = isinstance(raw, str | bytes) or not hasattr(raw, "__iter__")
    items = [raw] if single else list(raw)
    if count is not None and len(items) != count:
        raise refuse(f"{keyword} has {len(items)} values, not {count}: {_shown(raw)}")
    values = []
    for item in items:
        try:
            value = float(item)
        except _UNREADABLE:
            raise refuse(f"{keyword} {_shown(raw)} is not a number") from None
        if not math.isfinite(value) or abs(value) > largest:
            raise refuse(f"{keyword} {_shown(raw)} is not a finite number within ±{largest:g}")
        if positive and not value > 0:
            raise refuse(f"{keyword} {_shown(raw)} is not positive")
        values.append(value)
    return values


def number(
    ds: Dataset, keyword: str, refuse: Refusal, *, positive: bool = False, largest: float = 1e6
) -> float:
    """One finite number (see :func:`numbers`)."""
    return numbers(ds, keyword, 1, refuse, positive=positive, largest=largest)[0]


def roi_number(ds: Dataset, keyword: str, refuse: Refusal) -> int:
    """An ROI number: any signed 32-bit whole number (IS), as RTSTRUCTs and RTPLANs write."""
    return integer(ds, keyword, refuse, smallest=-(2**31), largest=2**31 - 1)


def integer(
    ds: Dataset,
    keyword: str,
    refuse: Refusal,
    *,
    smallest: int = 1,
    largest: int = 10**9,
    default: int | None = None,
) -> int:
    """A whole number from ``smallest`` to ``largest``; ``default`` where the element is absent
    or empty (else absent is refused)."""
    if default is not None and ds.get(keyword) in (None, ""):
        return default
    raw = _raw(ds, keyword, refuse)
    try:
        value = float(raw)
    except _UNREADABLE:
        raise refuse(f"{keyword} {_shown(raw)} is not a whole number") from None
    if not math.isfinite(value) or value != int(value) or not smallest <= value <= largest:
        raise refuse(f"{keyword} {_shown(raw)} is not a whole number from {smallest} to {largest}")
    return int(value)
