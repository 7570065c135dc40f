"""What the contours alone say: volumes of overlap between an organ and a target, grown by a
distance, and the smallest distance between them.

Volumes come from the DVH engine's exact fractional occupancy (:mod:`rtcheck.dvh.engine`), on
no dose at all: a grid of zeros far from the patient gives the volume without sampling any
dose. Overlaps are differences of regions laid over the target's own box, not the organ's (see
:func:`overlap_cc`). A target grown by a distance is built as
:func:`~rtcheck.dvh.margins.expand` builds any margin (exact in-plane, sampled along z).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.engine import compute_dvh
from rtcheck.dvh.margin import Margin
from rtcheck.dvh.regions import Region

#: The distances (mm) of the overlap volume histogram.
OVH_DISTANCES_MM = (0.0, 3.0, 5.0, 10.0, 20.0)
#: Spacing (mm) of the empty grid the volumes are sampled on (finer for small structures).
SAMPLING_MM = 2.0


@lru_cache(maxsize=1)
def _nowhere() -> DoseGrid:
    """A grid of zeros a kilometre above the patient: volumes, and no dose sampled."""
    axis = np.array([0.0, SAMPLING_MM])
    return DoseGrid(axis, axis, axis + 1e6, np.zeros((2, 2, 2), dtype=np.float32), "", "NONE")


def volume_cc(region: Region, end_caps: EndCaps = EndCaps.HALF_SLAB) -> float:
    """The volume (cc) of a region, from the contours' exact fractional occupancy."""
    if region.is_empty:
        return 0.0
    return compute_dvh(region, _nowhere(), end_caps=end_caps).volume_cc


def overlap_cc(organ: Region, target: Structure, end_caps: EndCaps = EndCaps.HALF_SLAB) -> float:
    """The volume (cc) of ``organ`` (its added ROIs ``P`` less its subtracted ones ``M``)
    inside ``target`` ``B``: ``V(B − M) − V(B − (P ∪ M))``. Both regions are laid over the
    target's box, so a small target's overlap with a large organ is not the difference of two
    large volumes."""
    without_m = Region(target.name, (target,), organ.minus)
    without_both = Region(target.name, (target,), (*organ.plus, *organ.minus))
    return max(0.0, volume_cc(without_m, end_caps) - volume_cc(without_both, end_caps))


def grown(target: Structure, distance_mm: float, end_caps: EndCaps) -> Structure:
    """``target`` grown by ``distance_mm`` in every direction (itself at 0 mm)."""
    if distance_mm <= 0:
        return target
    from rtcheck.dvh.margins import expand

    return expand(
        target, Margin.isotropic(distance_mm), f"{target.name}+{distance_mm:g}mm", end_caps
    )


def overlap_histogram(
    organ: Region,
    target: Structure,
    distances_mm: Sequence[float] = OVH_DISTANCES_MM,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> tuple[tuple[float, float], ...]:
    """(distance mm, organ volume cc within that distance of ``target``) for each distance."""
    return tuple((d, overlap_cc(organ, grown(target, d, end_caps), end_caps)) for d in distances_mm)


def smallest_distance_mm(
    organ: Region, target: Structure, end_caps: EndCaps = EndCaps.HALF_SLAB
) -> float:
    """The smallest distance (mm) between the organ and the target: 0 where the target
    overlaps the organ's added ROIs (for a derived organ such as Lungs - PTVs, a target carved
    out of it touches it); else between their contours, sampled every 0.5 mm along each
    outline, on the planes they are drawn on (for a derived organ, to its added ROIs, which can
    only be nearer)."""
    from scipy.spatial import cKDTree

    if overlap_cc(Region(organ.name, organ.plus), target, end_caps) > 0:
        return 0.0
    organ_points = _points(organ.plus)
    target_points = _points((target,))
    if len(organ_points) == 0 or len(target_points) == 0:
        return math.inf
    distances, _ = cKDTree(target_points).query(organ_points, k=1)
    return float(np.min(distances))


#: Contour edges are sampled this finely (mm) for distances: a distance between points is
#: then within half of it of the distance between the drawn outlines on those planes.
EDGE_STEP_MM = 0.5


def _points(structures: Sequence[Structure]) -> np.ndarray:
    parts = []
    for s in structures:
        for plane in s.planes:
            for polygon in plane.polygons:
                outline = _along_edges(polygon)
                parts.append(np.column_stack([outline, np.full(len(outline), plane.z_mm)]))
    return np.concatenate(parts) if parts else np.zeros((0, 3))


def _along_edges(polygon: np.ndarray) -> np.ndarray:
    """The polygon's outline as points at most :data:`EDGE_STEP_MM` apart."""
    start = np.asarray(polygon, dtype=np.float64)
    end = np.roll(start, -1, axis=0)
    lengths = np.hypot(*(end - start).T)
    steps = np.maximum(np.ceil(lengths / EDGE_STEP_MM).astype(int), 1)
    index = np.repeat(np.arange(len(start)), steps)
    fraction = np.concatenate([np.arange(n) / n for n in steps])
    return start[index] + fraction[:, None] * (end - start)[index]
