"""CSV cells that a spreadsheet opens as text, never as a formula.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken by Excel,
LibreOffice and Google Sheets as a formula (a PatientID of ``=HYPERLINK(...)`` becomes a live
link). OWASP's rule for CSV injection: such a text value is written with a single quote
before it, which the spreadsheet shows as text. Numbers are written as they are (``-1.5`` is a
number, not a formula), so only text that would be read as a formula changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would read as a formula gets a single
    quote before it; numbers, empty cells and other text are unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value  # a number written as text ("-1.5")


def row(values: Iterable[Any]) -> list[Any]:
    """Every cell of a row, as :func:`cell` writes it."""
    return [cell(v) for v in values]


def mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every cell of a row given by column, as :func:`cell` writes it."""
    return {k: cell(v) for k, v in values.items()}
