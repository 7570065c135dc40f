"""rtcheck: decide whether a radiotherapy plan meets a clinical trial's dose limits.

The public API (:func:`load_plan`, :func:`compute_dvh`, :func:`evaluate_metric`...) is imported
on first use, so that ``import rtcheck`` (and every command that needs less) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtcheck.dicom.plan import Plan, load_plan
    from rtcheck.dvh.engine import DVH, compute_dvh
    from rtcheck.dvh.metrics import evaluate_metric, parse_metric
    from rtcheck.errors import RtcheckError

__version__ = "0.1.0"

_HOMES = {
    "DVH": "rtcheck.dvh.engine",
    "Plan": "rtcheck.dicom.plan",
    "RtcheckError": "rtcheck.errors",
    "compute_dvh": "rtcheck.dvh.engine",
    "evaluate_metric": "rtcheck.dvh.metrics",
    "load_plan": "rtcheck.dicom.plan",
    "parse_metric": "rtcheck.dvh.metrics",
}

__all__ = [
    "DVH",
    "Plan",
    "RtcheckError",
    "__version__",
    "compute_dvh",
    "evaluate_metric",
    "load_plan",
    "parse_metric",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtcheck' has no attribute {name!r}")
