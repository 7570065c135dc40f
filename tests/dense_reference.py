"""An independent brute-force DVH: dense point sampling, for checking rtcheck on realistic plans.

Points on a fine regular grid are tested against each plane's contours with matplotlib's
point-in-polygon (combined by even-odd), at several depths inside each contour slab; the dose at
each point comes from scipy's ``map_coordinates`` (trilinear) on the RTDOSE grid. It shares no
code with rtcheck's engine. Its own error shrinks with ``spacing_mm`` and ``depths``; at 0.4 mm
and 20 depths it stays below about 0.05 Gy on the phantom's organs (checked against 0.2 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as MplPath
from scipy.ndimage import map_coordinates

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.structures import Structure


@dataclass
class DenseDVH:
    volume_cc: float
    doses: np.ndarray  # sorted descending
    cumulative_cc: np.ndarray

    def dose_at_volume(self, cc: float) -> float:
        i = int(np.searchsorted(self.cumulative_cc, cc))
        return float(self.doses[min(i, len(self.doses) - 1)])

    def dose_at_percent(self, percent: float) -> float:
        return self.dose_at_volume(percent / 100 * self.volume_cc)

    def volume_at_dose(self, dose: float) -> float:
        return (
            float(self.cumulative_cc[np.searchsorted(-self.doses, -dose, side="right") - 1])
            if dose <= self.doses[0]
            else 0.0
        )

    @property
    def mean(self) -> float:
        w = np.diff(np.concatenate([[0.0], self.cumulative_cc]))
        return float(np.dot(w, self.doses) / self.volume_cc)


def dense_dvh(
    structure: Structure, dose: DoseGrid, spacing_mm: float = 0.4, depths: int = 20
) -> DenseDVH:
    pts = np.concatenate([p for plane in structure.planes for p in plane.polygons])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    xs = np.arange(lo[0] + spacing_mm / 2, hi[0], spacing_mm)
    ys = np.arange(lo[1] + spacing_mm / 2, hi[1], spacing_mm)
    gx, gy = np.meshgrid(xs, ys)
    points = np.column_stack([gx.ravel(), gy.ravel()])
    area = spacing_mm * spacing_mm / 1000.0
    col = (points[:, 0] - dose.x_mm[0]) / (dose.x_mm[1] - dose.x_mm[0])
    row = (points[:, 1] - dose.y_mm[0]) / (dose.y_mm[1] - dose.y_mm[0])
    values, volumes = [], []
    for plane in structure.planes:
        inside = np.zeros(len(points), dtype=bool)
        for poly in plane.polygons:
            inside ^= MplPath(poly).contains_points(points)
        if not inside.any():
            continue
        coords = np.vstack([row[inside], col[inside]])
        t = plane.top_mm - plane.bottom_mm
        for j in range(depths):
            z = plane.bottom_mm + (j + 0.5) * t / depths
            frame = float(np.interp(z, dose.z_mm, np.arange(len(dose.z_mm))))
            k = min(int(frame), len(dose.z_mm) - 2)
            f = frame - k
            dose_plane = (1 - f) * dose.dose_gy[k].astype(np.float64) + f * dose.dose_gy[k + 1]
            values.append(map_coordinates(dose_plane, coords, order=1, mode="nearest"))
            volumes.append(np.full(len(values[-1]), area * t / depths))
    order = np.argsort(np.concatenate(values), kind="stable")[::-1]
    doses = np.concatenate(values)[order].astype(np.float64)
    cumulative = np.cumsum(np.concatenate(volumes)[order])
    return DenseDVH(float(cumulative[-1]), doses, cumulative)
