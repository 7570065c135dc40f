"""The axial slab that each contour plane stands for.

A contour is drawn on one CT slice and stands for that slice's slab. rtcheck does not need the
CT: the planes of the whole structure set (all ROIs together; the body outline is usually on
every slice) show where the slices are. The slabs of the set's planes tile the z axis wherever
the planes follow one another at a *slice step*, and each slab ends half-way to its neighbour
(so a series whose slice spacing changes, 3 mm through the target and 5 mm elsewhere, is tiled
exactly). A gap that is not a slice step (no ROI of the set has a contour on the slices in
between) stays a gap: the planes beside it get half a slice of their own on that side.

Which gaps are slice steps: every gap length met at least twice, within :data:`MAX_STEP_RATIO`
of the most common one (two gaps are the same length within :data:`STEP_TOLERANCE`); where no
length recurs, the smallest gap. An ROI that is contoured on a few planes 45 mm apart in a set
of 3 mm slices thus gets 3 mm slabs, never 45 mm ones.

End caps: with ``half-slab`` (the default, and the convention of the Nelms 2015 benchmark, MIM
and Pinnacle) every plane stands for its whole slab; with ``none`` (as Eclipse's volumes behave)
each run of contiguous planes of an ROI ends at its outermost planes, so a cylinder of height
``h`` contoured every ``t`` mm has volume ``h`` times its area instead of ``h + t``. A run of a
single plane keeps its slab, or it would have no volume at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

#: Gaps between planes are the same slice step when they differ by less than this fraction.
STEP_TOLERANCE = 0.02
#: Recurring gaps more than this many times longer or shorter than the most common one are not
#: slice steps (a series' slice spacing changes by less).
MAX_STEP_RATIO = 4.0
#: Slab ends closer than this (mm) meet: the slabs are contiguous.
CONTIGUOUS_TOLERANCE_MM = 1e-3


class EndCaps(StrEnum):
    """How far the outermost contour planes of an ROI reach along z."""

    HALF_SLAB = "half-slab"
    NONE = "none"


def slab_bounds(planes_mm: Sequence[float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The bottom and top (mm) of the slab of each plane of a structure set.

    Parameters
    ----------
    planes_mm
        The set's distinct contour plane positions (mm), increasing; at least two.

    Returns
    -------
    The bottom and top of each plane's slab (mm).
    """
    z = np.asarray(planes_mm, dtype=np.float64)
    gaps = np.diff(z)
    steps, typical = _slice_steps(gaps)
    is_step = np.zeros(len(gaps), dtype=bool)
    for step in steps:
        is_step |= np.abs(gaps - step) <= STEP_TOLERANCE * step
    below = np.full(len(z), np.nan)
    above = np.full(len(z), np.nan)
    below[1:] = np.where(is_step, gaps / 2, np.nan)
    above[:-1] = np.where(is_step, gaps / 2, np.nan)
    # A side with no neighbour a slice step away mirrors the other side, else half the typical.
    below = np.where(np.isnan(below), np.where(np.isnan(above), typical / 2, above), below)
    above = np.where(np.isnan(above), below, above)
    return z - below, z + above


def _slice_steps(gaps: NDArray[np.float64]) -> tuple[list[float], float]:
    """The gap lengths (mm) that are slice steps, and the most common of them.

    Gaps cluster by length (within :data:`STEP_TOLERANCE`); a cluster of two or more is a slice
    step when it lies within :data:`MAX_STEP_RATIO` of the largest cluster. Where no length
    recurs (a set of a few scattered planes), the smallest gap is the only step.
    """
    ordered = np.sort(gaps)
    clusters: list[NDArray[np.float64]] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] - ordered[start] > STEP_TOLERANCE * ordered[i]:
            clusters.append(ordered[start:i])
            start = i
    recurring = [c for c in clusters if len(c) >= 2]
    if not recurring:
        smallest = float(ordered[0])
        return [smallest], smallest
    typical = _middle(max(recurring, key=len))
    steps = [
        _middle(c)
        for c in recurring
        if typical / MAX_STEP_RATIO <= _middle(c) <= typical * MAX_STEP_RATIO
    ]
    return steps, typical


def _middle(ordered: NDArray[np.float64]) -> float:
    """The median of values already in increasing order (``np.median`` would import numpy.ma)."""
    n = len(ordered)
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


def capped_bounds(
    bottom: NDArray[np.float64],
    top: NDArray[np.float64],
    z_mm: NDArray[np.float64],
    end_caps: EndCaps,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """An ROI's slab bounds (mm) under an end-cap convention.

    Parameters
    ----------
    bottom, top
        The slab of each of the ROI's planes (mm), planes increasing.
    z_mm
        The planes' positions (mm).
    end_caps
        With :attr:`EndCaps.NONE`, each run of two or more contiguous slabs ends at its
        outermost planes.
    """
    if end_caps is EndCaps.HALF_SLAB or len(z_mm) == 0:
        return bottom, top
    joined = np.abs(top[:-1] - bottom[1:]) <= CONTIGUOUS_TOLERANCE_MM
    starts_run = np.concatenate(([True], ~joined))
    ends_run = np.concatenate((~joined, [True]))
    alone = starts_run & ends_run
    return (
        np.where(starts_run & ~alone, z_mm, bottom),
        np.where(ends_run & ~alone, z_mm, top),
    )
