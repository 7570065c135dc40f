"""Analytical DVHs of polygon stacks in linear dose fields, computed independently of rtcheck.

A contoured shape is a stack of slabs ``z_k ± t/2`` whose cross-section is the polygon region on
plane ``k``. In a field linear along x or z, the volume receiving at least ``d`` is a sum of exact
polygon areas (clipped by a half-plane for x) times slab lengths (clipped for z), so the
DVH, its inverse and the mean follow exactly; the only numerical step is root finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq


def polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def polygon_centroid_x(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    signed = cross.sum() / 2
    return float(((x + xn) * cross).sum() / (6 * signed))


def clip_right(poly: np.ndarray, x0: float) -> np.ndarray:
    """The part of a polygon with x >= x0 (Sutherland-Hodgman against one half-plane)."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        p_in, q_in = p[0] >= x0, q[0] >= x0
        if p_in:
            out.append(p)
        if p_in != q_in:
            t = (x0 - p[0]) / (q[0] - p[0])
            out.append(p + t * (q - p))
    return np.array(out) if len(out) >= 3 else np.zeros((0, 2))


@dataclass
class Slab:
    """One contour plane: z (mm), thickness (mm), outer polygons and hole polygons."""

    z: float
    t: float
    outer: list[np.ndarray]
    holes: list[np.ndarray]


def slabs_from_planes(planes: list[tuple[float, list[np.ndarray]]], t: float) -> list[Slab]:
    """Planes of a shape whose first polygon is the outline and others are holes."""
    return [Slab(z, t, polys[:1], polys[1:]) for z, polys in planes]


class LinearFieldTruth:
    """Exact DVH of a slab stack in D(x, y, z) = offset + gradient * coordinate[axis]."""

    def __init__(self, slabs: list[Slab], offset: float, gradient: float, axis: str) -> None:
        assert axis in ("x", "z") and gradient > 0
        self.slabs, self.offset, self.gradient, self.axis = slabs, offset, gradient, axis
        self.areas = [
            sum(polygon_area(p) for p in s.outer) - sum(polygon_area(p) for p in s.holes)
            for s in slabs
        ]
        self.volume_cc = sum(a * s.t for a, s in zip(self.areas, slabs, strict=True)) / 1000

    def volume_at_dose(self, dose: float) -> float:
        """Volume (cc) receiving at least ``dose``."""
        c = (dose - self.offset) / self.gradient
        total = 0.0
        for area, s in zip(self.areas, self.slabs, strict=True):
            if self.axis == "z":
                length = np.clip(s.z + s.t / 2 - c, 0.0, s.t)
                total += area * length
            else:
                clipped = sum(polygon_area(clip_right(p, c)) for p in s.outer)
                clipped -= sum(polygon_area(clip_right(p, c)) for p in s.holes)
                total += clipped * s.t
        return total / 1000

    def dose_range(self) -> tuple[float, float]:
        if self.axis == "z":
            lo = min(s.z - s.t / 2 for s in self.slabs)
            hi = max(s.z + s.t / 2 for s in self.slabs)
        else:
            xs = np.concatenate([p[:, 0] for s in self.slabs for p in s.outer])
            lo, hi = float(xs.min()), float(xs.max())
        return self.offset + self.gradient * lo, self.offset + self.gradient * hi

    def dose_at_volume(self, volume_cc: float) -> float:
        lo, hi = self.dose_range()
        return float(brentq(lambda d: self.volume_at_dose(d) - volume_cc, lo, hi, xtol=1e-7))

    def dose_at_percent(self, percent: float) -> float:
        return self.dose_at_volume(percent / 100 * self.volume_cc)

    def mean(self) -> float:
        moment = 0.0
        for area, s in zip(self.areas, self.slabs, strict=True):
            if self.axis == "z":
                moment += area * s.t * s.z
            else:
                m = sum(polygon_area(p) * polygon_centroid_x(p) for p in s.outer)
                m -= sum(polygon_area(p) * polygon_centroid_x(p) for p in s.holes)
                moment += m * s.t
        return self.offset + self.gradient * moment / (self.volume_cc * 1000)
