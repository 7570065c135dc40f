"""An earlier course's dose sampled on the current course's dose grid.

Each point of the current grid is mapped into the earlier course's frame of reference (a
registration's :data:`~rtcheck.dicom.registration.PointMap`) and the earlier dose is
interpolated there trilinearly, between the eight grid points around it (the uneven slice
spacing of GridFrameOffsetVector included). A point beyond the earlier grid gets 0 Gy and is
counted, so that what the earlier grid did not cover is said, never assumed silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.dicom.dose import GRID_EDGE_TOLERANCE_MM, DoseGrid
from rtcheck.dicom.registration import PointMap

#: Points of the current grid mapped and interpolated at a time (memory bound).
CHUNK_POINTS = 1 << 20


@dataclass(frozen=True, eq=False)
class Resampled:
    """An earlier dose on the current grid.

    Attributes
    ----------
    grid
        The current grid's geometry holding the earlier dose (Gy).
    outside
        True at the current grid's points that fall beyond the earlier dose grid (given 0 Gy),
        shaped as the grid.
    edge_max_gy
        The highest earlier dose on the earlier grid's outer faces: where it is small, the
        earlier grid held the whole fall-off and 0 Gy beyond it is no assumption.
    """

    grid: DoseGrid
    outside: NDArray[np.bool_]
    edge_max_gy: float


def resample(source: DoseGrid, target: DoseGrid, point_map: PointMap) -> Resampled:
    """``source`` (the earlier dose, in its own frame) on ``target``'s grid points, which
    ``point_map`` carries into the source's frame; trilinear interpolation."""
    nz, ny, nx = target.shape
    yy, xx = np.meshgrid(target.y_mm, target.x_mm, indexing="ij")
    plane_xy = np.column_stack([xx.ravel(), yy.ravel()])
    dose = np.zeros(target.shape, dtype=np.float32)
    outside = np.zeros(target.shape, dtype=bool)
    frames = max(1, CHUNK_POINTS // max(nx * ny, 1))
    for first in range(0, nz, frames):
        z = target.z_mm[first : first + frames]
        points = np.column_stack([np.tile(plane_xy, (len(z), 1)), np.repeat(z, len(plane_xy))])
        values, beyond = sample(source, point_map(points))
        dose[first : first + len(z)] = values.reshape(len(z), ny, nx)
        outside[first : first + len(z)] = beyond.reshape(len(z), ny, nx)
    return Resampled(target.with_dose(dose, "RESAMPLED"), outside, _edge_max(source))


def sample(
    grid: DoseGrid, points_mm: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The grid's dose (Gy) at points (N, 3) by trilinear interpolation, and which points lie
    beyond the grid (by more than :data:`GRID_EDGE_TOLERANCE_MM`; their dose is 0)."""
    points = np.asarray(points_mm, dtype=np.float64)
    beyond = np.zeros(len(points), dtype=bool)
    dose = grid.dose_gy
    sizes = (dose.shape[2], dose.shape[1], dose.shape[0])  # along x, y, z
    lows, uppers = [], []
    for axis, coords in enumerate((grid.x_mm, grid.y_mm, grid.z_mm)):
        p = points[:, axis]
        beyond |= p < coords[0] - GRID_EDGE_TOLERANCE_MM
        beyond |= p > coords[-1] + GRID_EDGE_TOLERANCE_MM
        if len(coords) == 1:
            lows.append((np.zeros(len(p), dtype=np.intp), 0))
            uppers.append(np.zeros(len(p)))
            continue
        index = np.interp(p, coords, np.arange(len(coords), dtype=np.float64))
        low = np.minimum(index.astype(np.intp), len(coords) - 2)  # index >= 0: floor
        lows.append((low, 1))
        uppers.append(index - low)
    (ix, sx), (iy, sy), (iz, sz) = lows
    fx, fy, fz = uppers
    # Flat indices of the lower corner and the steps to the others (0 along a one-point axis).
    step_y, step_z = sizes[0] * sy, sizes[0] * sizes[1] * sz
    base = (iz * sizes[1] + iy) * sizes[0] + ix
    flat = dose.reshape(-1)

    def along_x(offset: int) -> NDArray[np.float64]:
        at = base + offset if offset else base
        lower = np.take(flat, at).astype(np.float64)
        upper = np.take(flat, at + sx) if sx else lower
        interpolated: NDArray[np.float64] = lower + fx * (upper - lower)
        return interpolated

    def along_xy(offset: int) -> NDArray[np.float64]:
        front = along_x(offset)
        back = along_x(offset + step_y) if sy else front
        return front + fy * (back - front)

    below = along_xy(0)
    above = along_xy(step_z) if sz else below
    values = below + fz * (above - below)
    values[beyond] = 0.0
    return values, beyond


def _edge_max(grid: DoseGrid) -> float:
    d = grid.dose_gy
    faces = (d[0], d[-1], d[:, 0], d[:, -1], d[:, :, 0], d[:, :, -1])
    return float(max(float(f.max()) for f in faces if f.size))
