"""Numbers as rtcheck's JSON files hold them."""

from __future__ import annotations

import math


def json_number(value: float | None, digits: int = 4) -> float | None:
    """A finite number rounded for JSON, or None (JSON has no NaN or infinity)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)
