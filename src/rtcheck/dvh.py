"""Dose-volume histograms from fractional occupancy and trilinearly interpolated dose.

For each ROI, a sampling grid finer than the dose grid is laid over the ROI's bounding box:
fine enough to put about :data:`SAMPLES_ACROSS` samples across the ROI's smallest in-plane
extent, never coarser than the dose grid or :data:`MAX_SAMPLE_SPACING_MM`. Each contour slab is
cut at the dose frames it contains, so that the trilinear dose is linear in z within each piece.
Every sample carries the fraction of its pixel inside the ROI (exact along x, on scanlines along
y), the dose at the centroid of the covered part, and the spread of dose across it that the
local gradient gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.dose import DoseGrid, interpolation_matrix
from rtcheck.errors import InvalidStructureError
from rtcheck.occupancy import PixelGrid
from rtcheck.regions import Region
from rtcheck.structures import Structure

#: Width of the differential histogram bins (Gy); D-metrics interpolate inside a bin.
BIN_WIDTH_GY = 0.005
#: Samples across the smallest in-plane extent of an ROI.
SAMPLES_ACROSS = 32
MIN_SAMPLE_SPACING_MM = 0.2
MAX_SAMPLE_SPACING_MM = 1.5
#: Scanlines per sampling-pixel row for the coverage computation.
SCANLINES_PER_PIXEL = 4
#: Planes are filled in batches of at most this many sampling pixels (memory bound).
CHUNK_PIXELS = 2_000_000


@dataclass(frozen=True, eq=False)
class DVH:
    """A cumulative dose-volume histogram of one ROI and one dose distribution.

    The histogram covers the part of the ROI inside the dose grid; ``volume_cc`` is the whole
    ROI. Relative volumes (``%``) are relative to the part inside the grid, and a warning says
    when that differs from the whole.

    Attributes
    ----------
    name
        The ROI's name.
    volume_cc
        Volume of the ROI (cc), inside and outside the dose grid.
    volume_in_grid_cc
        Volume of the part of the ROI inside the dose grid (cc).
    bin_width_gy
        Width of the histogram bins (Gy).
    differential_cc
        Volume (cc) with dose in ``[i*w, (i+1)*w)`` for bin ``i``.
    mean_gy, min_gy, max_gy
        Volume-weighted mean, lowest and highest dose (Gy) in the part inside the grid.
    warnings
        What the user must know before trusting the numbers.
    """

    name: str
    volume_cc: float
    volume_in_grid_cc: float
    bin_width_gy: float
    differential_cc: NDArray[np.float64]
    mean_gy: float
    min_gy: float
    max_gy: float
    warnings: tuple[str, ...] = ()

    @property
    def dose_coverage(self) -> float:
        """Fraction (0..1) of the ROI's volume that lies inside the dose grid."""
        return self.volume_in_grid_cc / self.volume_cc if self.volume_cc > 0 else 0.0

    @property
    def dose_edges_gy(self) -> NDArray[np.float64]:
        """Bin edges (Gy), one more than bins."""
        return np.arange(len(self.differential_cc) + 1, dtype=np.float64) * self.bin_width_gy

    @property
    def cumulative_cc(self) -> NDArray[np.float64]:
        """Volume (cc) receiving at least each bin edge's dose."""
        tail = np.cumsum(self.differential_cc[::-1])[::-1]
        return np.append(tail, 0.0)

    def volume_at_dose(self, dose_gy: float) -> float:
        """Volume (cc) receiving at least ``dose_gy``, interpolated within a bin."""
        if self.volume_in_grid_cc <= 0:
            return 0.0
        if dose_gy <= self.min_gy:
            return self.volume_in_grid_cc
        if dose_gy > self.max_gy:
            return 0.0
        return float(np.interp(dose_gy, self.dose_edges_gy, self.cumulative_cc))

    def dose_at_volume(self, volume_cc: float) -> float:
        """Highest dose (Gy) that at least ``volume_cc`` receives, interpolated within a bin."""
        if self.volume_in_grid_cc <= 0:
            return float("nan")
        if volume_cc <= 0:
            return self.max_gy
        if volume_cc >= self.volume_in_grid_cc:
            return self.min_gy
        cumulative = self.cumulative_cc
        # Last edge whose cumulative volume still reaches volume_cc; cumulative is non-increasing.
        i = int(np.searchsorted(-cumulative, -volume_cc, side="right")) - 1
        upper, lower = cumulative[i], cumulative[i + 1]
        fraction = (upper - volume_cc) / (upper - lower)
        dose = (i + fraction) * self.bin_width_gy
        return float(min(max(dose, self.min_gy), self.max_gy))


def sampling_spacing_mm(region: Region, dose: DoseGrid) -> float:
    """In-plane spacing (mm) of the sampling grid used for ``region``."""
    lo, hi = region.xy_bounds()
    smallest_extent = float(min(hi - lo))
    dose_spacing = min(_step(dose.x_mm), _step(dose.y_mm))
    coarsest = min(MAX_SAMPLE_SPACING_MM, dose_spacing)
    return float(np.clip(smallest_extent / SAMPLES_ACROSS, MIN_SAMPLE_SPACING_MM, coarsest))


def compute_dvh(
    structure: Structure | Region, dose: DoseGrid, spacing_mm: float | None = None
) -> DVH:
    """Compute the DVH of one ROI, or of a derived region, in one dose grid.

    Parameters
    ----------
    structure
        The ROI (with at least one contour) or region.
    dose
        The dose grid (Gy), in the ROI's frame of reference.
    spacing_mm
        In-plane sampling spacing (mm); by default :func:`sampling_spacing_mm`.

    Raises
    ------
    InvalidStructureError
        If the ROI has no contours.
    """
    region = structure if isinstance(structure, Region) else Region.of(structure)
    if region.is_empty:
        raise InvalidStructureError(f"ROI {region.name!r} has no closed contours")
    s = spacing_mm if spacing_mm is not None else sampling_spacing_mm(region, dose)
    lo, hi = region.xy_bounds()
    grid = PixelGrid(
        x0_mm=float(lo[0]) - s,
        y0_mm=float(lo[1]) - s,
        spacing_mm=s,
        nx=int(math.ceil((hi[0] - lo[0]) / s)) + 2,
        ny=int(math.ceil((hi[1] - lo[1]) / s)) + 2,
    )
    wx, inside_x = interpolation_matrix(dose.x_mm, grid.x_centres())
    wy, inside_y = interpolation_matrix(dose.y_mm, grid.y_centres())
    cols = _support(wx)
    rows = _support(wy)
    wx, wy = wx[:, cols], wy[:, rows]
    inside_xy = np.outer(inside_y, inside_x)

    thickness = region.slab_thickness_mm
    frames = _FineFrames(dose, wy, wx, rows, cols, s)

    doses: list[NDArray[np.float64]] = []
    weights: list[NDArray[np.float64]] = []
    spreads: list[NDArray[np.float64]] = []
    volume_mm3 = 0.0
    planes = region.plane_z_mm()
    chunk = max(1, CHUNK_PIXELS // (grid.nx * grid.ny))
    for first in range(0, len(planes), chunk):
        batch = planes[first : first + chunk]
        coverage = region.coverage(grid, batch, SCANLINES_PER_PIXEL)
        volume_mm3 += float(coverage.fraction.sum()) * s * s * thickness
        covered = (coverage.fraction > 0) & inside_xy[None, :, :]
        which, rows_in, cols_in = np.nonzero(covered)
        fraction_all = coverage.fraction[covered]
        offset_x_all = coverage.offset_x_mm[covered]
        offset_y_all = coverage.offset_y_mm[covered]
        bounds = np.searchsorted(which, np.arange(len(batch) + 1))
        for n, plane_z in enumerate(batch):
            part = slice(bounds[n], bounds[n + 1])
            if part.start == part.stop:
                continue
            index = rows_in[part] * grid.nx + cols_in[part]
            fraction = fraction_all[part]
            offset_x, offset_y = offset_x_all[part], offset_y_all[part]
            width = s * np.sqrt(fraction)  # side of the square with the covered area
            for centre, dz in _subslices(plane_z, thickness, dose.z_mm):
                located = dose.locate_z(centre)
                if located is None:
                    continue
                value, grad_x, grad_y, grad_z = frames.sample(*located, index)
                # The dose at the centroid of the covered part is the mean dose over that part
                # wherever the field is locally linear.
                doses.append(value + grad_x * offset_x + grad_y * offset_y)
                weights.append(fraction * (s * s * dz))
                spreads.append(
                    0.5
                    * np.sqrt((grad_x * width) ** 2 + (grad_y * width) ** 2 + (grad_z * dz) ** 2)
                )

    volume_cc = volume_mm3 / 1000.0
    warnings = list(region.warnings)
    if not doses or sum(w.size for w in weights) == 0:
        warnings.append(f"ROI {region.name!r} lies entirely outside the dose grid")
        return DVH(
            name=region.name,
            volume_cc=volume_cc,
            volume_in_grid_cc=0.0,
            bin_width_gy=BIN_WIDTH_GY,
            differential_cc=np.zeros(1),
            mean_gy=math.nan,
            min_gy=math.nan,
            max_gy=math.nan,
            warnings=tuple(warnings),
        )
    d = np.maximum(np.concatenate(doses), 0.0)
    w = np.concatenate(weights) / 1000.0
    h = np.concatenate(spreads)
    in_grid_cc = float(w.sum())
    if in_grid_cc < volume_cc * (1 - 1e-6):
        warnings.append(
            f"ROI {region.name!r}: {100 * (1 - in_grid_cc / volume_cc):.2f}% of its volume "
            "lies outside the dose grid; its DVH covers only the part inside"
        )
    return DVH(
        name=region.name,
        volume_cc=volume_cc,
        volume_in_grid_cc=min(in_grid_cc, volume_cc),
        bin_width_gy=BIN_WIDTH_GY,
        differential_cc=spread_histogram(d, w, h, BIN_WIDTH_GY),
        mean_gy=float(np.dot(d, w) / in_grid_cc),
        min_gy=float(max(0.0, np.min(d - h))),
        max_gy=float(np.max(d + h)),
        warnings=tuple(warnings),
    )


def spread_histogram(
    dose_gy: NDArray[np.float64],
    volume_cc: NDArray[np.float64],
    half_width_gy: NDArray[np.float64],
    bin_width_gy: float,
) -> NDArray[np.float64]:
    """Differential histogram of samples, each spread uniformly over ``dose ± half_width``.

    A sample stands for a small volume over which the dose varies; spreading it over the range
    that the local gradient gives (with the same variance) keeps D-metrics from snapping to the
    sampling grid. A zero half-width puts the whole sample in its bin.
    """
    top = float(np.max(dose_gy + half_width_gy))
    n_bins = int(top / bin_width_gy) + 2
    edges = np.arange(n_bins + 1) * bin_width_gy
    # Cumulative volume below each edge, G(e_m) = sum over kinks p of slope * max(0, e_m - p),
    # accumulated with two cumulative sums over the bin index where each kink takes effect.
    ramp = half_width_gy > 1e-9
    all_ramp = bool(ramp.all())
    d, h, w = (a if all_ramp else a[ramp] for a in (dose_gy, half_width_gy, volume_cc))
    slope = w / (2 * h)
    size = n_bins + 1
    s1 = np.zeros(size)
    s2 = np.zeros(size)
    for kink, sign in ((d - h, 1.0), (d + h, -1.0)):
        index = np.floor(kink * (1 / bin_width_gy)).astype(np.int64)
        index += 1
        np.clip(index, 0, n_bins, out=index)
        s1 += sign * np.bincount(index, weights=slope, minlength=size)
        s2 += sign * np.bincount(index, weights=slope * kink, minlength=size)
    below = edges * np.cumsum(s1) - np.cumsum(s2)
    if not all_ramp:  # samples with no spread are steps at their dose
        step = ~ramp
        index = np.floor(dose_gy[step] * (1 / bin_width_gy)).astype(np.int64) + 1
        np.clip(index, 0, n_bins, out=index)
        below += np.cumsum(np.bincount(index, weights=volume_cc[step], minlength=size))
    histogram = np.diff(below)
    histogram[0] += below[0]  # volume spread below 0 Gy belongs to the first bin
    return np.maximum(histogram, 0.0)


def _subslices(
    z_mm: float, thickness_mm: float, frames_mm: NDArray[np.float64]
) -> list[tuple[float, float]]:
    """(centre, thickness) in mm of the pieces of the slab ``z_mm ± thickness_mm / 2`` cut at
    every dose frame inside it: the interpolated dose is linear in z within each piece, which
    the spread of each sample then represents exactly."""
    lo, hi = z_mm - thickness_mm / 2, z_mm + thickness_mm / 2
    inner = frames_mm[(frames_mm > lo + 1e-6) & (frames_mm < hi - 1e-6)]
    edges = np.concatenate([[lo], inner, [hi]])
    return [
        (float((a + b) / 2), float(b - a))
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b - a > 1e-6
    ]


class _FineFrames:
    """Dose frames of the RTDOSE resampled (bilinearly) onto an ROI's sampling grid, with their
    in-plane gradients, computed once per frame and shared by every contour plane."""

    def __init__(
        self,
        dose: DoseGrid,
        wy: NDArray[np.float64],
        wx: NDArray[np.float64],
        rows: slice,
        cols: slice,
        spacing_mm: float,
    ) -> None:
        self._dose, self._wy, self._wx = dose, wy, wx
        self._rows, self._cols, self._spacing = rows, cols, spacing_mm
        self._cache: dict[int, tuple[NDArray[np.float64], ...]] = {}

    def _frame(self, k: int) -> tuple[NDArray[np.float64], ...]:
        if k not in self._cache:
            window = self._dose.dose_gy[k, self._rows, self._cols].astype(np.float64)
            fine = self._wy @ window @ self._wx.T
            if min(fine.shape) >= 2:
                grad_y, grad_x = np.gradient(fine, self._spacing)
            else:
                grad_y = grad_x = np.zeros_like(fine)
            self._cache[k] = (fine.ravel(), np.ravel(grad_x), np.ravel(grad_y))
        return self._cache[k]

    def sample(
        self, k: int, f: float, index: NDArray[np.intp]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Dose, and its x, y and z gradients (Gy/mm), at fine pixels ``index`` of the plane
        a fraction ``f`` of the way from frame ``k`` to frame ``k + 1``."""
        lower = self._frame(k)
        z = self._dose.z_mm
        if k + 1 >= len(z):
            value, gx, gy = (a[index] for a in lower)
            return value, gx, gy, np.zeros_like(value)
        upper = self._frame(k + 1)
        lo_v, up_v = lower[0][index], upper[0][index]
        value = lo_v + f * (up_v - lo_v)
        gx = lower[1][index]
        gx += f * (upper[1][index] - gx)
        gy = lower[2][index]
        gy += f * (upper[2][index] - gy)
        gz = (up_v - lo_v) / (z[k + 1] - z[k])
        return value, gx, gy, gz


def _step(axis: NDArray[np.float64]) -> float:
    return float(np.min(np.diff(axis))) if len(axis) > 1 else math.inf


def _support(weights: NDArray[np.float64]) -> slice:
    """The smallest slice of grid columns that carries non-zero weights."""
    used = np.nonzero(weights.any(axis=0))[0]
    if used.size == 0:
        return slice(0, 0)
    return slice(int(used[0]), int(used[-1]) + 1)
