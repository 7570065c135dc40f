"""The sizes rtcheck accepts, checked before anything is allocated.

A file may declare any size, and a typo (a coordinate 50 m off, a PixelSpacing of 1e-9) may
derive any size from a small file. Every size that memory or time grows with is checked against
a limit here before it is allocated, and refused with a message that names the limit and the
environment variable that raises it. Real clinical plans stay well inside the defaults: a 1 mm
whole-thorax dose grid has about 30 million voxels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rtcheck.errors import LimitExceededError


@dataclass(frozen=True)
class Cap:
    """One enforced size cap.

    Attributes
    ----------
    variable
        The environment variable that sets it.
    default
        Its value when the variable is not set.
    what
        What it counts, for messages ("dose voxels").
    """

    variable: str
    default: int
    what: str

    @property
    def value(self) -> int:
        """The limit in force: the environment variable's value, else the default."""
        text = os.environ.get(self.variable, "").strip()
        if not text:
            return self.default
        try:
            value = int(text)
        except ValueError:
            raise LimitExceededError(f"{self.variable}={text!r} is not a whole number") from None
        if value < 1:
            raise LimitExceededError(f"{self.variable}={text!r} is not a positive number")
        return value

    def check(self, amount: int, subject: str) -> None:
        """Refuse ``amount`` above the limit; ``subject`` says whose it is (a file, an ROI)."""
        limit = self.value
        if amount > limit:
            raise LimitExceededError(
                f"{subject}: {amount:,} {self.what}, more than the limit of {limit:,} "
                f"(set {self.variable} to raise it if the plan is real)"
            )


#: Voxels of one RTDOSE grid (about 8 bytes each while it is read).
DOSE_VOXELS = Cap("RTCHECK_MAX_DOSE_VOXELS", 100_000_000, "dose voxels")
#: Bytes a deflated file inflates to.
INFLATED_BYTES = Cap("RTCHECK_MAX_INFLATED_BYTES", 500_000_000, "bytes once inflated")
#: Contour points of one structure set.
CONTOUR_POINTS = Cap("RTCHECK_MAX_CONTOUR_POINTS", 10_000_000, "contour points")
#: Points of one contour (a clinical contour has a few thousand).
POINTS_PER_CONTOUR = Cap("RTCHECK_MAX_POINTS_PER_CONTOUR", 200_000, "points in one contour")
#: Pixels of one plane of an ROI's sampling grid.
SAMPLING_PIXELS = Cap("RTCHECK_MAX_SAMPLING_PIXELS", 16_000_000, "sampling pixels per plane")
#: Samples of one ROI's DVH, over all its planes (a clinical body outline takes about 10
#: million on a 1.5 mm dose grid, 30 million on a 1 mm one).
SAMPLES_PER_ROI = Cap("RTCHECK_MAX_SAMPLES_PER_ROI", 200_000_000, "samples for its DVH")
#: ROIs of one structure set that rtcheck takes as metastatic lesions (the trial allows 5).
LESIONS = Cap("RTCHECK_MAX_LESIONS", 50, "numbered lesion targets (PTV_M1...)")
#: Bytes of a protocol or map file (YAML).
YAML_BYTES = Cap("RTCHECK_MAX_YAML_BYTES", 1_000_000, "bytes of YAML")
