"""dicompyler-core as the reference DVH engine, for cross-checks and benchmarks only.

dicompyler-core 0.5.6 imports ``pydicom.dicomio.read_file``, which pydicom 3 removed. The
compatibility step that restores it lives here, in the cross-check code, and nowhere in rtcheck.
"""

from __future__ import annotations

import warnings
from typing import Any

import pydicom
import pydicom.dicomio


def _restore_read_file() -> None:
    if not hasattr(pydicom.dicomio, "read_file"):
        pydicom.dicomio.read_file = pydicom.dcmread  # type: ignore[attr-defined]


def dicompyler_dvhcalc() -> Any:
    """The ``dicompylercore.dvhcalc`` module, importable under pydicom 3."""
    _restore_read_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dicompylercore import dvhcalc
    return dvhcalc


def dicompyler_dvh(rtstruct: Any, rtdose: Any, roi_number: int) -> Any:
    """dicompyler-core's plain ``get_dvh`` (voxel centres in polygons on the dose grid)."""
    dvhcalc = dicompyler_dvhcalc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dvhcalc.get_dvh(rtstruct, rtdose, roi_number)
