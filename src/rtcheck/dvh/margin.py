"""A margin (mm) in each of the six patient directions, as protocols state them; the structures
grown and shrunk by it are built in :mod:`rtcheck.dvh.margins`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rtcheck.dicom.slabs import CONTIGUOUS_TOLERANCE_MM
from rtcheck.errors import InvalidStructureError

#: Largest margin accepted (mm).
MAX_MARGIN_MM = 100.0


#: The six directions a margin is given in.
DIRECTIONS = ("right", "left", "anterior", "posterior", "inferior", "superior")


@dataclass(frozen=True)
class Margin:
    """A margin (mm) in each of the six patient directions; all zero is no margin."""

    right: float = 0.0
    left: float = 0.0
    anterior: float = 0.0
    posterior: float = 0.0
    inferior: float = 0.0
    superior: float = 0.0

    @classmethod
    def isotropic(cls, mm: float) -> Margin:
        """The same margin (mm) in every direction."""
        return cls(mm, mm, mm, mm, mm, mm)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (math.isfinite(value) and 0 <= value <= MAX_MARGIN_MM):
                raise InvalidStructureError(
                    f"margin {name} {value!r} mm: give 0 to {MAX_MARGIN_MM:g} mm"
                )

    @property
    def is_zero(self) -> bool:
        """True when every direction's margin is 0."""
        return not any(vars(self).values())

    @property
    def in_plane(self) -> tuple[float, float, float, float]:
        """(right, left, anterior, posterior) in mm."""
        return self.right, self.left, self.anterior, self.posterior

    def section(self, h_mm: float) -> float:
        """The scale of the kernel's in-plane section at height ``h_mm`` above its centre
        (below for negative), 0..1; -1 where the kernel does not reach."""
        reach = self.superior if h_mm > 0 else self.inferior
        if abs(h_mm) <= CONTIGUOUS_TOLERANCE_MM:
            return 1.0
        if abs(h_mm) > reach:
            return -1.0
        return math.sqrt(max(0.0, 1.0 - (h_mm / reach) ** 2))

    def __str__(self) -> str:
        values = set(vars(self).values())
        if len(values) == 1:
            return f"{values.pop():g} mm"
        return ", ".join(f"{k} {v:g}" for k, v in vars(self).items()) + " mm"
