"""Regions whose DVH is computed: one ROI, or a derived structure (union and subtraction of ROIs,
such as ``Lungs = Lung_L + Lung_R`` or ``Lungs-PTV``), combined on the sampling masks.

Combining fractional masks: a union adds the fractions (exact for disjoint ROIs, such as the two
lungs) and a subtraction removes the subtracted fraction (exact where the subtracted ROI's partial
pixels lie inside the other), both clipped to 0..1. Derived structures never add DVHs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.errors import InvalidStructureError
from rtcheck.occupancy import Coverage, PixelGrid, ScanlineCover, polygon_coverage
from rtcheck.structures import PLANE_MERGE_TOLERANCE_MM, Structure

_THICKNESS_TOLERANCE_MM = 1e-3


@dataclass(frozen=True, eq=False)
class Region:
    """A region of space: the union of ``plus`` minus the union of ``minus``.

    Attributes
    ----------
    name
        How results name it (an ROI name, or a derived structure's name).
    plus, minus
        The ROIs added and subtracted.
    """

    name: str
    plus: tuple[Structure, ...]
    minus: tuple[Structure, ...] = ()

    @classmethod
    def of(cls, structure: Structure) -> Region:
        """The region of a single ROI."""
        return cls(structure.name, (structure,))

    def __post_init__(self) -> None:
        if not self.plus:
            raise InvalidStructureError(f"region {self.name!r} has no ROI to add")
        used = [s for s in (*self.plus, *self.minus) if not s.is_empty]
        thicknesses = {round(s.slab_thickness_mm / _THICKNESS_TOLERANCE_MM) for s in used}
        if len(thicknesses) > 1:
            names = ", ".join(f"{s.name} ({s.slab_thickness_mm:g} mm)" for s in used)
            raise InvalidStructureError(
                f"cannot combine ROIs with different contour spacing into {self.name!r}: {names}"
            )

    @property
    def is_empty(self) -> bool:
        """True when no added ROI has contours."""
        return all(s.is_empty for s in self.plus)

    @property
    def slab_thickness_mm(self) -> float:
        """Contour plane spacing (mm) shared by the ROIs."""
        return next(s.slab_thickness_mm for s in self.plus if not s.is_empty)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The warnings of the ROIs it is made of."""
        return tuple(w for s in (*self.plus, *self.minus) for w in s.warnings)

    def plane_z_mm(self) -> list[float]:
        """Positions (mm) of the contour planes of the added ROIs, sorted."""
        zs = sorted(p.z_mm for s in self.plus for p in s.planes)
        merged: list[float] = []
        for z in zs:
            if not merged or z - merged[-1] > PLANE_MERGE_TOLERANCE_MM:
                merged.append(z)
        return merged

    def xy_bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lowest and highest (x, y) of the added ROIs' contours (mm)."""
        points = np.concatenate([poly for s in self.plus for p in s.planes for poly in p.polygons])
        return points.min(axis=0), points.max(axis=0)

    def coverage(self, grid: PixelGrid, zs: Sequence[float], subsamples: int) -> Coverage:
        """Fractional occupancy of ``grid`` on the planes ``zs`` (mm)."""
        if len(self.plus) == 1 and not self.minus:
            return polygon_coverage(_polygons_at(self.plus[0], zs), grid, subsamples)
        shape = (len(zs), grid.ny, grid.nx)
        total = np.zeros(shape)
        added = np.zeros(shape)
        parts: list[tuple[float, ScanlineCover]] = []
        for sign, structures in ((1.0, self.plus), (-1.0, self.minus)):
            for structure in structures:
                c = polygon_coverage(_polygons_at(structure, zs), grid, subsamples)
                if sign > 0:
                    added += c.fraction
                    total += c.fraction
                else:
                    total = np.minimum(total, added) - c.fraction
                parts.extend((sign * s, cover) for s, cover in c.parts)
        fraction = np.clip(total, 0.0, 1.0)
        return Coverage(fraction, grid.spacing_mm, tuple(parts))


def _polygons_at(
    structure: Structure, zs: Sequence[float]
) -> list[tuple[NDArray[np.float64], ...]]:
    """The structure's polygons on each of the planes ``zs`` (none where it has no contour)."""
    planes = structure.planes
    positions = np.array([p.z_mm for p in planes]) if planes else np.zeros(0)
    result: list[tuple[NDArray[np.float64], ...]] = []
    for z in zs:
        if positions.size:
            k = int(np.argmin(np.abs(positions - z)))
            if abs(positions[k] - z) <= PLANE_MERGE_TOLERANCE_MM:
                result.append(planes[k].polygons)
                continue
        result.append(())
    return result
