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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.dose import AxisInterpolation, DoseGrid, interpolation_along
from rtcheck.errors import InvalidStructureError
from rtcheck.occupancy import CoveredPixels, PixelGrid
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
CHUNK_PIXELS = 65536


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
    along_x = interpolation_along(dose.x_mm, grid.x_centres())
    along_y = interpolation_along(dose.y_mm, grid.y_centres())
    inside_xy = np.outer(along_y.inside, along_x.inside)

    thickness = region.slab_thickness_mm
    frames = _FineFrames(dose, along_y, along_x)

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
        flat = np.flatnonzero((coverage.fraction > 0) & inside_xy[None, :, :])
        pieces = _SlabPieces.of(batch, thickness, dose)
        if flat.size == 0 or pieces is None:
            continue
        npix = grid.nx * grid.ny
        bounds = np.searchsorted(flat, np.arange(len(batch) + 1) * npix)
        which = np.repeat(np.arange(len(batch)), np.diff(bounds))
        pixel = flat - which * npix
        pixels = coverage.at(flat)
        for area_mm2, depth_mm, mean_gy, variance in _slab_samples(
            frames, pieces, which, pixel, pixels, s
        ):
            keep = depth_mm > 0
            doses.append(mean_gy[keep])
            weights.append(area_mm2[keep] * depth_mm[keep])
            # A uniform spread of half-width sqrt(3) sigma has the sample's variance.
            spreads.append(np.sqrt(3.0 * np.maximum(variance[keep], 0.0)))

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
    sampling grid. The ends of each range are taken to the nearest bin edge (half a bin at
    most), and a range narrower than a bin fills the bin nearest to it; dose below 0 Gy
    belongs to the first bin.
    """
    scale = 1.0 / bin_width_gy
    lo = np.rint((dose_gy - half_width_gy) * scale)
    np.maximum(lo, 0.0, out=lo)
    hi = np.rint((dose_gy + half_width_gy) * scale)
    np.maximum(hi, lo + 1.0, out=hi)
    density = volume_cc / (hi - lo)
    first, last = lo.astype(np.intp), hi.astype(np.intp)
    n_bins = int(last.max())
    # Each sample adds its density to the bins first..last-1: steps up and down, summed.
    steps = np.bincount(first, weights=density, minlength=n_bins + 1)
    steps -= np.bincount(last, weights=density, minlength=n_bins + 1)
    return np.maximum(np.cumsum(steps[:n_bins]), 0.0)


class _FineFrames:
    """Dose frames of the RTDOSE resampled (bilinearly) onto an ROI's sampling grid, with the
    in-plane slopes of that bilinear interpolant."""

    def __init__(self, dose: DoseGrid, along_y: AxisInterpolation, along_x: AxisInterpolation):
        self._dose = dose
        self._rows, self._cols = along_y.support(), along_x.support()
        self._y = self._taps(along_y, self._rows)
        self._x = self._taps(along_x, self._cols)
        self._per_mm_x, self._per_mm_y = along_x.per_mm, along_y.per_mm
        self.frame_count = len(dose.z_mm)

    @staticmethod
    def _taps(
        along: AxisInterpolation, window: slice
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        """The two window indices and two weights of each sampling point."""
        size = max(window.stop - window.start, 1)
        lower = np.clip(along.index - window.start, 0, size - 1)
        return lower, np.minimum(lower + 1, size - 1), along.below, along.above

    def stack(
        self, first: int, last: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Dose (Gy) and its x and y slopes (Gy/mm) on frames ``first..last`` (inclusive),
        each of shape ``(frames, sampling pixels)``."""
        n = last - first + 1
        window = self._dose.dose_gy[first : last + 1, self._rows, self._cols]
        if window.size == 0:
            zeros = np.zeros((n, len(self._y[0]) * len(self._x[0])))
            return zeros, zeros, zeros
        window = window.astype(np.float64)
        x0, x1, left, right = self._x
        y0, y1, down, up = self._y
        a0, a1 = window[:, :, x0], window[:, :, x1]
        across = a0 * left + a1 * right
        rise_x = a1 - a0
        rise_x *= self._per_mm_x
        b0, b1 = across[:, y0, :], across[:, y1, :]
        value = b0 * down[:, None] + b1 * up[:, None]
        slope_y = (b1 - b0) * self._per_mm_y[:, None]
        slope_x = rise_x[:, y0, :] * down[:, None] + rise_x[:, y1, :] * up[:, None]
        return value.reshape(n, -1), slope_x.reshape(n, -1), slope_y.reshape(n, -1)


@dataclass(frozen=True, eq=False)
class _SlabPieces:
    """The pieces of a batch of contour slabs cut at the dose frames inside them, as arrays of
    shape ``(planes, pieces)``: the interpolated dose is linear in z within each piece.

    ``frame`` and ``fraction`` place each piece's centre ``fraction`` of the way from dose
    frame ``frame`` to the next; ``depth_mm`` is its thickness (0 for a missing piece, or one
    outside the dose grid); ``per_mm`` is 1 / the distance between the two frames.
    """

    frame: NDArray[np.intp]
    fraction: NDArray[np.float64]
    depth_mm: NDArray[np.float64]
    per_mm: NDArray[np.float64]

    @classmethod
    def of(cls, planes_mm: list[float], thickness_mm: float, dose: DoseGrid) -> _SlabPieces | None:
        """The pieces of the slabs ``z ± thickness/2`` of ``planes_mm``; None when no piece
        lies inside the dose grid."""
        z = dose.z_mm
        rows: list[list[tuple[float, float, float, float]]] = []
        for plane_z in planes_mm:
            lo, hi = plane_z - thickness_mm / 2, plane_z + thickness_mm / 2
            inner = z[(z > lo + 1e-6) & (z < hi - 1e-6)]
            edges = [lo, *(float(v) for v in inner), hi]
            row = []
            for a, b in zip(edges[:-1], edges[1:], strict=True):
                located = dose.locate_z((a + b) / 2) if b - a > 1e-6 else None
                if located is None:
                    continue
                k, f = located
                per_mm = 1.0 / float(z[k + 1] - z[k]) if k + 1 < len(z) else 0.0
                row.append((float(k), f, b - a, per_mm))
            rows.append(row)
        width = max(len(r) for r in rows)
        if width == 0:
            return None
        table = np.zeros((len(rows), width, 4))
        for n, row in enumerate(rows):
            if row:
                table[n, : len(row)] = row
        frame = table[:, :, 0].astype(np.intp)
        present = table[:, :, 2] > 0
        # A missing piece points at a frame the batch uses anyway, and adds no depth.
        frame[~present] = int(frame[present].min())
        return cls(frame, table[:, :, 1], table[:, :, 2], table[:, :, 3])


def _slab_samples(
    frames: _FineFrames,
    pieces: _SlabPieces,
    plane: NDArray[np.intp],
    pixel: NDArray[np.intp],
    covered: CoveredPixels,
    spacing_mm: float,
) -> Iterator[tuple[NDArray[np.float64], ...]]:
    """Samples of the covered part of each sampling pixel ``pixel`` of contour slab ``plane``,
    one group per slab piece: covered area (mm²), depth inside the dose grid (mm; 0 where the
    slab has no such piece), mean dose (Gy) and dose variance (Gy²).

    Within a piece the dose is trilinear: its mean over the covered part is its value at the
    part's centroid (the small bilinear cross term aside), and its variance follows from the
    in-plane slopes and the part's second moments, and from the z slope across the piece.
    Whole pixels, most of an organ, need no centroid or moments of their own.
    """
    first = int(pieces.frame.min())
    last = min(int(pieces.frame.max()) + 1, frames.frame_count - 1)
    value, slope_x, slope_y = (a.ravel() for a in frames.stack(first, last))
    npix = value.size // (last - first + 1)
    part = covered.partial
    whole_var = spacing_mm * spacing_mm / 12.0
    ox, oy = covered.offset_x_mm[part], covered.offset_y_mm[part]
    extra_x = covered.var_x_mm2[part] - whole_var
    extra_y = covered.var_y_mm2[part] - whole_var
    cxy2 = 2.0 * covered.cov_xy_mm2[part]
    area_mm2 = covered.fraction * (spacing_mm * spacing_mm)
    for j in range(pieces.frame.shape[1]):
        k = pieces.frame[plane, j]
        f = pieces.fraction[plane, j]
        dz = pieces.depth_mm[plane, j]
        lower = (k - first) * npix + pixel
        upper = (np.minimum(k + 1, last) - first) * npix + pixel
        v0 = value[lower]
        step = value[upper] - v0
        gx = slope_x[lower]
        gx += f * (slope_x[upper] - gx)
        gy = slope_y[lower]
        gy += f * (slope_y[upper] - gy)
        mean = v0 + f * step
        rise = step * pieces.per_mm[plane, j] * dz  # the dose change across the piece
        variance = (gx * gx + gy * gy) * whole_var + rise * rise / 12.0
        if part.size:
            px, py = gx[part], gy[part]
            mean[part] += px * ox + py * oy
            variance[part] += px * px * extra_x + py * py * extra_y + px * py * cxy2
        yield area_mm2, dz, mean, variance


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
