"""Regions whose DVH is computed: one ROI, or a derived structure (union and subtraction of ROIs,
such as ``Lungs = Lung_L + Lung_R`` or ``Lungs-PTV``), combined on the sampling masks.

Along z a region is a stack of slabs cut at every slab end of its ROIs, so ROIs whose slices
differ (or that end at different planes under an end-cap convention) combine exactly; in each
slab every ROI contributes the contours of its plane whose slab holds it.

Combining fractional masks: a union adds the fractions (exact for disjoint ROIs, such as the two
lungs) and a subtraction removes the subtracted fraction (exact where the subtracted ROI's partial
pixels lie inside the other), both clipped to 0..1. Derived structures never add DVHs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.dicom.slabs import CONTIGUOUS_TOLERANCE_MM, EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.occupancy import Coverage, PixelGrid, ScanlineCover, polygon_coverage
from rtcheck.errors import InvalidStructureError


@dataclass(frozen=True, eq=False)
class Slabs:
    """The slabs a region is cut into along z, increasing.

    Attributes
    ----------
    bottom_mm, top_mm
        Each slab's ends (mm).
    planes
        For each ROI of the region (added, then subtracted), the index of its plane that each
        slab lies in, or -1 where it has none.
    """

    bottom_mm: NDArray[np.float64]
    top_mm: NDArray[np.float64]
    planes: tuple[NDArray[np.intp], ...]

    def __len__(self) -> int:
        return len(self.bottom_mm)

    @property
    def depth_mm(self) -> NDArray[np.float64]:
        """Each slab's thickness (mm)."""
        return self.top_mm - self.bottom_mm

    def part(self, first: int, stop: int) -> Slabs:
        """Slabs ``first`` to ``stop - 1``."""
        cut = slice(first, stop)
        return Slabs(self.bottom_mm[cut], self.top_mm[cut], tuple(p[cut] for p in self.planes))


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

    @property
    def is_empty(self) -> bool:
        """True when no added ROI has contours."""
        return all(s.is_empty for s in self.plus)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The warnings of the ROIs it is made of, their defects among them."""
        return tuple(
            w
            for s in (*self.plus, *self.minus)
            for w in (*s.warnings, *(f"ROI {s.name!r}: {d}" for d in s.defects))
        )

    def slabs(self, end_caps: EndCaps = EndCaps.HALF_SLAB) -> Slabs:
        """The region's slabs: cut at every slab end of its ROIs, and kept where an added ROI
        has a plane."""
        rois = (*self.plus, *self.minus)
        bounds = [s.slabs(end_caps) for s in rois]
        ends = np.sort(np.concatenate([np.concatenate(b) for b in bounds]))
        ends = ends[np.concatenate(([True], np.diff(ends) > CONTIGUOUS_TOLERANCE_MM))]
        middle = (ends[:-1] + ends[1:]) / 2
        planes = tuple(_plane_holding(middle, *b) for b in bounds)
        kept = np.any(np.stack(planes[: len(self.plus)]) >= 0, axis=0)
        return Slabs(ends[:-1][kept], ends[1:][kept], tuple(p[kept] for p in planes))

    def xy_bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lowest and highest (x, y) of the added ROIs' contours (mm)."""
        extents = [s.extent for s in self.plus if not s.is_empty]
        low = np.min([e.low_mm for e in extents], axis=0)
        high = np.max([e.high_mm for e in extents], axis=0)
        return low, high

    def part_width_mm(self) -> float:
        """The width (mm) of the region's largest part in-plane: the largest, over the added
        ROIs' contours, of a contour's smaller extent. Unlike the bounding box, it does not
        grow when parts of the region lie far apart."""
        return max(s.extent.part_width_mm for s in self.plus if not s.is_empty)

    def apart(self, margin_mm: float) -> list[Region]:
        """The region as parts whose in-plane extents lie more than ``margin_mm`` apart (the
        two lungs of Lungs - PTV): each part holds a group of the added ROIs and the subtracted
        ROIs that reach its extent. A union of disjoint parts, so their DVHs add up to the
        region's. The region itself where it is one part."""
        added = [s for s in self.plus if not s.is_empty]
        boxes = [(s.extent.low_mm - margin_mm, s.extent.high_mm + margin_mm) for s in added]
        group = list(range(len(added)))  # each ROI's group: merged until no two boxes meet
        merged = True
        while merged:
            merged = False
            for i in range(len(added)):
                for j in range(i):
                    if group[i] != group[j] and _meet(boxes[i], boxes[j]):
                        old, new = group[i], group[j]
                        group = [new if g == old else g for g in group]
                        merged = True
        if len(set(group)) <= 1:
            return [self]
        parts = []
        for g in sorted(set(group)):
            members = [i for i in range(len(added)) if group[i] == g]
            low = np.min([boxes[i][0] for i in members], axis=0)
            high = np.max([boxes[i][1] for i in members], axis=0)
            minus = tuple(
                s
                for s in self.minus
                if not s.is_empty and _meet((low, high), (s.extent.low_mm, s.extent.high_mm))
            )
            parts.append(Region(self.name, tuple(added[i] for i in members), minus))
        return parts

    def coverage(self, grid: PixelGrid, slabs: Slabs, subsamples: int) -> Coverage:
        """Fractional occupancy of ``grid`` in each of ``slabs`` (from :meth:`slabs`)."""
        rois = (*self.plus, *self.minus)
        if len(rois) == 1:
            return polygon_coverage(_polygons_in(rois[0], slabs.planes[0]), grid, subsamples)
        total = np.zeros((len(slabs), grid.ny, grid.nx))
        parts: list[tuple[float, ScanlineCover]] = []
        for i, structure in enumerate(rois):
            c = polygon_coverage(_polygons_in(structure, slabs.planes[i]), grid, subsamples)
            if not c.parts:  # none of its contours in these slabs
                continue
            sign = 1.0 if i < len(self.plus) else -1.0
            # Only the ROI's own window changes: elsewhere its fraction is 0.
            window = c.window
            total[window] += sign * c.fraction[window]
            parts.extend((sign * s, cover) for s, cover in c.parts)
        np.clip(total, 0.0, 1.0, out=total)
        return Coverage(total, grid.spacing_mm, tuple(parts))


def _meet(
    a: tuple[NDArray[np.float64], NDArray[np.float64]],
    b: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> bool:
    """Whether two in-plane boxes (low, high corners) overlap or touch."""
    return bool(np.all(a[0] <= b[1]) and np.all(b[0] <= a[1]))


def _plane_holding(
    z_mm: NDArray[np.float64], bottom: NDArray[np.float64], top: NDArray[np.float64]
) -> NDArray[np.intp]:
    """For each position, the index of the slab ``bottom..top`` holding it, or -1."""
    if len(bottom) == 0:
        return np.full(len(z_mm), -1, dtype=np.intp)
    k = np.clip(np.searchsorted(bottom, z_mm, side="right") - 1, 0, len(bottom) - 1)
    inside = (z_mm >= bottom[k]) & (z_mm < top[k])
    return np.where(inside, k, -1).astype(np.intp)


def _polygons_in(
    structure: Structure, planes: NDArray[np.intp]
) -> list[tuple[NDArray[np.float64], ...]]:
    """The structure's polygons of plane ``k`` for each ``k`` of ``planes`` (none for -1)."""
    return [structure.planes[k].polygons if k >= 0 else () for k in planes]
