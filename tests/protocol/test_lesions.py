"""A lesion's site read from its ROI names when no organ ROI holds it."""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.dicom.structures import ContourPlane, Structure
from rtcheck.protocol.lesions import _site


def roi(name: str) -> Structure:
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    planes = tuple(ContourPlane(z, (square,), z - 1.25, z + 1.25) for z in (0.0, 2.5, 5.0))
    return Structure(1, name, "PTV", planes, ())


@pytest.mark.parametrize(
    ("name", "site"),
    [
        ("PTV_LN2", "node"),  # numbered words name their site too
        ("GTV ln1", "node"),
        ("PTV_Liver2", "liver"),
        ("ptv m1 lungR", "lung"),
        ("PTV_T8", "bone"),  # a vertebral level
        ("PTV_M4", None),
    ],
)
def test_site_from_the_name(name, site):
    found, reason = _site([roi(name)], [], {})
    assert found == site
    assert ("name" in reason) if site else reason.startswith("unknown")
