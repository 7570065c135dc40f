"""Dose-volume histograms from fractional occupancy and trilinearly interpolated dose.

For each ROI, a sampling grid is laid over the ROI's bounding box: fine enough to put about
:data:`SAMPLES_ACROSS` samples across the ROI's smallest in-plane extent, never coarser than the
dose grid, and aligned with the dose grid so that each sample lies within one dose cell. Each
contour slab is cut at the dose frames it contains, so that the trilinear dose is linear in z
within each piece. Every sample carries the fraction of its pixel inside the ROI (exact along x,
on scanlines along y), the dose at the centroid of the covered part, and the spread of dose
across it that the local gradient gives. Boundaries are thus resolved below the sample size by
the fractional coverage and its centroid, which is why large organs need no sampling finer than
the dose grid, and small ones get it.
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


def sampling_grid(region: Region, dose: DoseGrid, spacing_mm: float | None = None) -> PixelGrid:
    """The in-plane sampling grid laid over ``region``: its pixels tile the region's bounding box
    with one pixel to spare on every side.

    By default the spacing puts about :data:`SAMPLES_ACROSS` pixels across the region's smallest
    in-plane extent, between :data:`MIN_SAMPLE_SPACING_MM` and the dose grid spacing. Where the
    dose grid is uniform and square in-plane, the spacing divides the dose spacing and the pixel
    edges fall on the dose grid lines: every pixel then lies within one dose cell, where the
    interpolated dose is bilinear, so its centre value and gradient describe it exactly up to
    the small bilinear cross term.

    Parameters
    ----------
    spacing_mm
        Pixel spacing (mm) to use instead, with no alignment to the dose grid.
    """
    lo, hi = region.xy_bounds()
    x0, y0 = float(lo[0]), float(lo[1])
    cell = _uniform_square_spacing(dose)
    if spacing_mm is not None:
        s = spacing_mm
    else:
        smallest_extent = float(min(hi - lo))
        coarsest = cell if cell is not None else min(_step(dose.x_mm), _step(dose.y_mm))
        wanted = float(np.clip(smallest_extent / SAMPLES_ACROSS, MIN_SAMPLE_SPACING_MM, coarsest))
        if cell is not None:
            s = cell / math.ceil(cell / wanted - 1e-9)
            x0 = float(dose.x_mm[0]) + math.floor((x0 - float(dose.x_mm[0])) / s) * s
            y0 = float(dose.y_mm[0]) + math.floor((y0 - float(dose.y_mm[0])) / s) * s
        else:
            s = wanted
    return PixelGrid(
        x0_mm=x0 - s,
        y0_mm=y0 - s,
        spacing_mm=s,
        nx=int(math.ceil((float(hi[0]) - x0) / s)) + 2,
        ny=int(math.ceil((float(hi[1]) - y0) / s)) + 2,
    )


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
        In-plane sampling spacing (mm); by default :func:`sampling_grid` chooses it.

    Raises
    ------
    InvalidStructureError
        If the ROI has no contours.
    """
    region = structure if isinstance(structure, Region) else Region.of(structure)
    if region.is_empty:
        raise InvalidStructureError(f"ROI {region.name!r} has no closed contours")
    grid = sampling_grid(region, dose, spacing_mm)
    s = grid.spacing_mm
    wx, sx, inside_x = interpolation_matrix(dose.x_mm, grid.x_centres())
    wy, sy, inside_y = interpolation_matrix(dose.y_mm, grid.y_centres())
    cols = _support(wx)
    rows = _support(wy)
    wx, wy, sx, sy = wx[:, cols], wy[:, rows], sx[:, cols], sy[:, rows]
    inside_xy = np.outer(inside_y, inside_x)

    thickness = region.slab_thickness_mm
    frames = _FineFrames(dose, (wy, sy), (wx, sx), rows, cols)

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
        flat = np.flatnonzero(covered)
        which, pixel = np.divmod(flat, grid.nx * grid.ny)
        pixels = coverage.at(flat)
        fraction_all = pixels.fraction
        offset_x_all, offset_y_all = pixels.offset_x_mm, pixels.offset_y_mm
        var_x_all, var_y_all, cov_xy_all = pixels.var_x_mm2, pixels.var_y_mm2, pixels.cov_xy_mm2
        bounds = np.searchsorted(which, np.arange(len(batch) + 1))
        for n, plane_z in enumerate(batch):
            part = slice(bounds[n], bounds[n + 1])
            if part.start == part.stop:
                continue
            index = pixel[part]
            fraction = fraction_all[part]
            offset_x, offset_y = offset_x_all[part], offset_y_all[part]
            var_x, var_y, cov_xy = var_x_all[part], var_y_all[part], cov_xy_all[part]
            for centre, dz in _subslices(plane_z, thickness, dose.z_mm):
                located = dose.locate_z(centre)
                if located is None:
                    continue
                value, grad_x, grad_y, grad_z = frames.sample(*located, index)
                # The dose at the centroid of the covered part is the mean dose over that part
                # wherever the field is locally linear, and its variance there follows from the
                # covered part's second moments. A uniform spread of half-width sqrt(3) sigma
                # has that variance.
                doses.append(value + grad_x * offset_x + grad_y * offset_y)
                weights.append(fraction * (s * s * dz))
                variance = (
                    grad_x * grad_x * var_x
                    + grad_y * grad_y * var_y
                    + 2.0 * grad_x * grad_y * cov_xy
                    + grad_z * grad_z * (dz * dz / 12.0)
                )
                spreads.append(np.sqrt(3.0 * np.maximum(variance, 0.0)))

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
    """Dose frames of the RTDOSE resampled (bilinearly) onto an ROI's sampling grid, with the
    in-plane slopes of that bilinear interpolant, computed once per frame and shared by every
    contour plane."""

    def __init__(
        self,
        dose: DoseGrid,
        along_y: tuple[NDArray[np.float64], NDArray[np.float64]],
        along_x: tuple[NDArray[np.float64], NDArray[np.float64]],
        rows: slice,
        cols: slice,
    ) -> None:
        """``along_y`` and ``along_x`` hold the interpolation and slope matrices of
        :func:`~rtcheck.dose.interpolation_matrix`, cut to the dose ``rows`` and ``cols``."""
        self._dose = dose
        (self._wy, self._sy), (self._wx, self._sx) = along_y, along_x
        self._rows, self._cols = rows, cols
        self._cache: dict[int, tuple[NDArray[np.float64], ...]] = {}

    def _frame(self, k: int) -> tuple[NDArray[np.float64], ...]:
        if k not in self._cache:
            window = self._dose.dose_gy[k, self._rows, self._cols].astype(np.float64)
            across = window @ self._wx.T
            fine = self._wy @ across
            grad_y = self._sy @ across
            grad_x = self._wy @ (window @ self._sx.T)
            self._cache[k] = (fine.ravel(), grad_x.ravel(), grad_y.ravel())
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


def _uniform_square_spacing(dose: DoseGrid) -> float | None:
    """The in-plane spacing (mm) of a dose grid whose columns and rows are evenly spaced by the
    same amount, else None."""
    steps = np.concatenate([np.diff(dose.x_mm), np.diff(dose.y_mm)])
    if steps.size == 0 or len(dose.x_mm) < 2 or len(dose.y_mm) < 2:
        return None
    cell = float(np.mean(steps))
    if cell <= 0 or np.ptp(steps) > 1e-4 * cell:
        return None
    return cell


def _step(axis: NDArray[np.float64]) -> float:
    return float(np.min(np.diff(axis))) if len(axis) > 1 else math.inf


def _support(weights: NDArray[np.float64]) -> slice:
    """The smallest slice of grid columns that carries non-zero weights."""
    used = np.nonzero(weights.any(axis=0))[0]
    if used.size == 0:
        return slice(0, 0)
    return slice(int(used[0]), int(used[-1]) + 1)
