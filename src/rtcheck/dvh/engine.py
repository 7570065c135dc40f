"""Dose-volume histograms from fractional occupancy and trilinearly interpolated dose.

For each ROI, a sampling grid is laid over the ROI's bounding box: fine enough to put about
:data:`SAMPLES_ACROSS` samples across the ROI's smallest in-plane extent, never coarser than the
dose grid, and aligned with the dose grid so that each sample lies within one dose cell. Each
contour slab is cut at the dose frames it contains, so that the trilinear dose is linear in z
within each piece. Every sample carries the fraction of its pixel inside the ROI (exact along x,
on scanlines along y), the dose at the centroid of the covered part, and the spread of dose
across it that the local gradient gives. Boundaries are thus resolved below the sample size by
the fractional coverage and its centroid, which is why large organs need no sampling finer than
the dose grid, and small ones get it. A wholly covered pixel pools its pieces within each dose
cell into one sample (see :func:`_whole_cells`); the samples go to a streaming histogram
(:class:`~rtcheck.dvh.histogram.HistogramTally`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rtcheck.caps import SAMPLES_PER_ROI, SAMPLING_PIXELS
from rtcheck.dicom.dose import (
    GRID_EDGE_TOLERANCE_MM,
    AxisInterpolation,
    DoseGrid,
    interpolation_along,
)
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.histogram import HistogramTally
from rtcheck.dvh.occupancy import CoveredPixels, PixelGrid
from rtcheck.dvh.regions import Region, Slabs
from rtcheck.errors import InvalidStructureError

#: Width of the differential histogram bins (Gy); D-metrics interpolate inside a bin.
BIN_WIDTH_GY = 0.005
#: Samples across the smallest in-plane extent of an ROI.
SAMPLES_ACROSS = 32
MIN_SAMPLE_SPACING_MM = 0.2
#: Scanlines per sampling-pixel row for the coverage computation.
SCANLINES_PER_PIXEL = 4
#: Planes are filled in batches of about this many sampling pixels (a memory bound), counted
#: over each plane's window (the pixels its contours span); a batch ends at a dose frame (or
#: beyond the dose grid), so that it may hold more where the frames lie farther apart.
CHUNK_PIXELS = 65536
#: Coverage from which a sampling pixel counts as wholly inside (rounding aside).
WHOLE_FRACTION = 1.0 - 1e-9


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

    By default the spacing puts about :data:`SAMPLES_ACROSS` pixels across the width of the
    region's largest part (:meth:`~rtcheck.dvh.regions.Region.part_width_mm`), between
    :data:`MIN_SAMPLE_SPACING_MM` and the dose grid spacing. Where the dose grid is uniform and
    square in-plane, the spacing divides the dose spacing and the pixel edges fall on the dose
    grid lines: every pixel then lies within one dose cell, where the interpolated dose is
    bilinear, so its centre value and gradient describe it exactly up to the small bilinear
    cross term.

    Parameters
    ----------
    spacing_mm
        Pixel spacing (mm) to use instead.
    """
    lo, hi = region.xy_bounds()
    cell = _uniform_square_spacing(dose)
    s = spacing_mm if spacing_mm is not None else sampling_spacing(region, dose)
    # Pixel edges on a lattice fixed in space (on the dose grid lines where the dose grid is
    # uniform), so that a far-away part of an ROI does not move its other parts' samples.
    origin_x = float(dose.x_mm[0]) if cell is not None else 0.0
    origin_y = float(dose.y_mm[0]) if cell is not None else 0.0
    x0 = origin_x + math.floor((float(lo[0]) - origin_x) / s) * s
    y0 = origin_y + math.floor((float(lo[1]) - origin_y) / s) * s
    nx = int(math.ceil((float(hi[0]) - x0) / s)) + 2
    ny = int(math.ceil((float(hi[1]) - y0) / s)) + 2
    width, height = (float(v) for v in hi - lo)
    SAMPLING_PIXELS.check(
        nx * ny,
        f"ROI {region.name!r}, whose contours span {width:.0f} x {height:.0f} mm sampled "
        f"every {s:.3g} mm (a contour far from the others?), needs",
    )
    return PixelGrid(x0_mm=x0 - s, y0_mm=y0 - s, spacing_mm=s, nx=nx, ny=ny)


def sampling_spacing(region: Region, dose: DoseGrid) -> float:
    """The default pixel spacing (mm) of :func:`sampling_grid`."""
    cell = _uniform_square_spacing(dose)
    coarsest = cell if cell is not None else min(_step(dose.x_mm), _step(dose.y_mm))
    wanted = region.part_width_mm() / SAMPLES_ACROSS
    wanted = float(np.clip(wanted, MIN_SAMPLE_SPACING_MM, coarsest))
    return cell / math.ceil(cell / wanted - 1e-9) if cell is not None else wanted


def compute_dvh(
    structure: Structure | Region,
    dose: DoseGrid,
    spacing_mm: float | None = None,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
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
    end_caps
        How far the outermost contour planes reach along z (:class:`~rtcheck.dicom.slabs.EndCaps`).

    Raises
    ------
    InvalidStructureError
        If the ROI has no contours.
    """
    region = structure if isinstance(structure, Region) else Region.of(structure)
    if region.is_empty:
        raise InvalidStructureError(f"ROI {region.name!r} has no closed contours")
    s = spacing_mm if spacing_mm is not None else sampling_spacing(region, dose)
    # Parts of the region far apart in-plane (the two lungs) are sampled each over its own
    # bounding box, not over one box spanning the gap between them; the cap on the samples
    # holds for the whole region.
    parts = [
        (part, sampling_grid(part, dose, s), part.slabs(end_caps))
        for part in region.apart(margin_mm=4 * s)
    ]
    planes = sum(len(slabs) for _, _, slabs in parts)
    SAMPLES_PER_ROI.check(
        sum(grid.nx * grid.ny * len(slabs) for _, grid, slabs in parts),
        f"ROI {region.name!r}, {planes} planes sampled every {s:.3g} mm in-plane, needs",
    )
    tally = HistogramTally(BIN_WIDTH_GY)
    volume_mm3 = sum(_tally_part(*part, dose, tally) for part in parts)
    volume_cc = volume_mm3 / 1000.0
    warnings = list(region.warnings)
    totals = tally.summary()
    in_grid_cc = totals.volume_cc
    if in_grid_cc <= 0:
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
        differential_cc=totals.differential_cc,
        mean_gy=totals.mean_gy,
        min_gy=totals.min_gy,
        max_gy=totals.max_gy,
        warnings=tuple(warnings),
    )


def _tally_part(
    region: Region, grid: PixelGrid, slabs: Slabs, dose: DoseGrid, tally: HistogramTally
) -> float:
    """Add the samples of ``region`` (its ``slabs``) on ``grid`` to ``tally``; returns its
    volume (mm³), inside and outside the dose grid.

    The slabs go in batches (:func:`_batches`) that end at dose frames, so that each dose
    cell lies in one batch and pools its whole pixels there (the DVH does not depend on how
    the slabs are batched); each batch is sampled over the window of ``grid`` its contours span
    (an organ's apex needs far fewer pixels than the box of its widest plane).
    """
    along_x = interpolation_along(dose.x_mm, grid.x_centres())
    along_y = interpolation_along(dose.y_mm, grid.y_centres())
    volume_mm3 = 0.0
    for batch, rows, columns in _batches(region, grid, slabs, dose):
        window = PixelGrid(
            grid.x0_mm + columns.start * grid.spacing_mm,
            grid.y0_mm + rows.start * grid.spacing_mm,
            grid.spacing_mm,
            columns.stop - columns.start,
            rows.stop - rows.start,
        )
        volume_mm3 += _tally_batch(
            region, window, batch, dose, _part(along_y, rows), _part(along_x, columns), tally
        )
    return volume_mm3


def _batches(
    region: Region, grid: PixelGrid, slabs: Slabs, dose: DoseGrid
) -> Iterator[tuple[Slabs, slice, slice]]:
    """The batches of ``slabs``, each with the rows and columns of ``grid`` its added ROIs'
    contours span (one pixel to spare on every side; the subtracted ROIs only take away).

    A batch is cut where it reaches :data:`CHUNK_PIXELS` window pixels, at the highest dose
    frame below that (a slab across the frame is cut there too, into the two batches), or at
    a slab's end beyond the dose grid, where there are no dose cells. Cut at a frame, a slab
    is cut where :class:`_SlabPieces` cuts it anyway: every piece, and every dose cell, lies
    in exactly one batch.
    """
    low, high = _slab_extents(region, slabs)
    s = grid.spacing_mm
    c0 = np.clip(np.floor((low[:, 0] - grid.x0_mm) / s) - 1, 0, grid.nx).astype(np.intp)
    c1 = np.clip(np.ceil((high[:, 0] - grid.x0_mm) / s) + 1, 0, grid.nx).astype(np.intp)
    r0 = np.clip(np.floor((low[:, 1] - grid.y0_mm) / s) - 1, 0, grid.ny).astype(np.intp)
    r1 = np.clip(np.ceil((high[:, 1] - grid.y0_mm) / s) + 1, 0, grid.ny).astype(np.intp)
    held = c1 > c0  # (a slab where no added ROI has contours spans no window)
    pixels = np.where(held, (c1 - c0) * (r1 - r0), 0)
    z = dose.z_mm
    beyond = GRID_EDGE_TOLERANCE_MM + 1e-3  # farther than this from the grid, no dose cell
    bottom, top = slabs.bottom_mm, slabs.top_mm

    def cut_below(limit: float, above: float) -> float | None:
        """The highest place to cut at in (above, limit]: a dose frame, or ``limit`` itself
        where it lies beyond the dose grid; None where there is none."""
        k = int(np.searchsorted(z, limit, side="right")) - 1
        frame = float(z[k]) if k >= 0 and z[k] > above else None
        if len(z) == 0 or limit < z[0] - beyond or limit > z[-1] + beyond:
            return limit if frame is None else max(frame, limit)
        return frame

    def batch(lower: float, upper: float) -> tuple[Slabs, slice, slice] | None:
        inside = np.flatnonzero((top > lower) & (bottom < upper) & held)
        if not inside.size:
            return None
        first, stop = int(inside[0]), int(inside[-1]) + 1
        part = Slabs(
            np.maximum(bottom[first:stop], lower),
            np.minimum(top[first:stop], upper),
            tuple(p[first:stop] for p in slabs.planes),
        )
        rows = slice(int(r0[inside].min()), int(r1[inside].max()))
        columns = slice(int(c0[inside].min()), int(c1[inside].max()))
        return part, rows, columns

    lower, gathered = -math.inf, 0
    for i in range(len(slabs)):
        gathered += int(pixels[i])
        if gathered < CHUNK_PIXELS or i == len(slabs) - 1:
            continue
        upper = cut_below(float(top[i]), lower)
        if upper is None:
            continue
        found = batch(lower, upper)
        if found is not None:
            yield found
        lower = upper
        # What lies above the cut goes to the next batch (the slab across it, in part).
        gathered = int(pixels[: i + 1][top[: i + 1] > upper].sum())
    found = batch(lower, math.inf)
    if found is not None:
        yield found


def _slab_extents(region: Region, slabs: Slabs) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The lowest and highest (x, y) (mm) of the added ROIs' contours in each slab, shaped
    ``(slabs, 2)``; +inf and -inf where no added ROI has contours."""
    low = np.full((len(slabs), 2), np.inf)
    high = np.full((len(slabs), 2), -np.inf)
    for structure, planes in zip(region.plus, slabs.planes, strict=False):
        used = planes >= 0
        if used.any():
            plane_low, plane_high = structure.plane_extents
            low[used] = np.minimum(low[used], plane_low[planes[used]])
            high[used] = np.maximum(high[used], plane_high[planes[used]])
    return low, high


def _part(along: AxisInterpolation, cut: slice) -> AxisInterpolation:
    """The interpolation at the points ``cut`` of those of ``along``."""
    return AxisInterpolation(
        along.index[cut], along.below[cut], along.above[cut], along.per_mm[cut], along.inside[cut]
    )


def _tally_batch(
    region: Region,
    grid: PixelGrid,
    batch: Slabs,
    dose: DoseGrid,
    along_y: AxisInterpolation,
    along_x: AxisInterpolation,
    tally: HistogramTally,
) -> float:
    """Add the samples of ``region`` in the slabs ``batch`` on the window ``grid`` (whose
    pixel centres ``along_y`` and ``along_x`` interpolate the dose at) to ``tally``; returns
    their volume (mm³), inside and outside the dose grid."""
    s = grid.spacing_mm
    npix = grid.nx * grid.ny
    coverage = region.coverage(grid, batch, SCANLINES_PER_PIXEL)
    fraction = coverage.fraction.reshape(len(batch), npix)
    volume_mm3 = float(fraction.sum(axis=1) @ batch.depth_mm) * s * s
    pieces = _SlabPieces.of(batch.bottom_mm, batch.top_mm, dose)
    if pieces is None:
        return volume_mm3
    inside_xy = np.outer(along_y.inside, along_x.inside).ravel()
    frames = _FineFrames(dose, along_y, along_x, *pieces.frames_used(len(dose.z_mm)))
    whole = (fraction >= WHOLE_FRACTION) & inside_xy
    tally.add(*_cell_samples(frames, *_whole_cells(pieces, whole), s))
    flat = np.flatnonzero((fraction > 0) & ~whole & inside_xy)
    if flat.size:
        plane, pixel = np.divmod(flat, npix)
        for sample in _partial_samples(frames, pieces, plane, pixel, coverage.at(flat), s):
            tally.add(*sample)
    return volume_mm3


class _FineFrames:
    """Dose frames ``first..last`` of the RTDOSE resampled (bilinearly) onto a sampling grid,
    with the in-plane slopes of that bilinear interpolant.

    ``value``, ``slope_x`` and ``slope_y`` (Gy, Gy/mm) have shape ``(frames, sampling pixels)``;
    row ``r`` holds frame ``first + r``.
    """

    def __init__(
        self,
        dose: DoseGrid,
        along_y: AxisInterpolation,
        along_x: AxisInterpolation,
        first: int,
        last: int,
    ):
        self.frame_count = len(dose.z_mm)
        self.first = first
        rows, cols = along_y.support(), along_x.support()
        y0, y1, down, up = self._taps(along_y, rows)
        x0, x1, left, right = self._taps(along_x, cols)
        n, npix = last - first + 1, len(y0) * len(x0)
        window = dose.dose_gy[first : last + 1, rows, cols]
        if window.size == 0:
            zeros = np.zeros((n, npix))
            self.value, self.slope_x, self.slope_y = zeros, zeros, zeros
            return
        window = window.astype(np.float64)
        # np.take keeps the arrays in C order, which every later gather and ravel relies on.
        a0, a1 = np.take(window, x0, axis=2), np.take(window, x1, axis=2)
        across = a0 * left + a1 * right
        rise_x = a1 - a0
        rise_x *= along_x.per_mm
        b0, b1 = np.take(across, y0, axis=1), np.take(across, y1, axis=1)
        value = b0 * down[:, None] + b1 * up[:, None]
        slope_y = (b1 - b0) * along_y.per_mm[:, None]
        slope_x = np.take(rise_x, y0, axis=1) * down[:, None]
        slope_x += np.take(rise_x, y1, axis=1) * up[:, None]
        self.value = value.reshape(n, -1)
        self.slope_x = slope_x.reshape(n, -1)
        self.slope_y = slope_y.reshape(n, -1)

    @staticmethod
    def _taps(
        along: AxisInterpolation, window: slice
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        """The two window indices and two weights of each sampling point."""
        size = max(window.stop - window.start, 1)
        lower = np.clip(along.index - window.start, 0, size - 1)
        return lower, np.minimum(lower + 1, size - 1), along.below, along.above


@dataclass(frozen=True, eq=False)
class _SlabPieces:
    """The pieces of a batch of contour slabs cut at the dose frames inside them, as arrays of
    shape ``(planes, pieces)``: the interpolated dose is linear in z within each piece.

    ``frame`` and ``fraction`` place each piece's centre ``fraction`` of the way from dose
    frame ``frame`` to the next (the piece lies in dose cell ``frame``); ``depth_mm`` is its
    thickness (0 for a missing piece, or one outside the dose grid); ``per_mm`` is 1 / the
    distance between the two frames.
    """

    frame: NDArray[np.intp]
    fraction: NDArray[np.float64]
    depth_mm: NDArray[np.float64]
    per_mm: NDArray[np.float64]

    @classmethod
    def of(
        cls, bottom_mm: NDArray[np.float64], top_mm: NDArray[np.float64], dose: DoseGrid
    ) -> _SlabPieces | None:
        """The pieces of the slabs ``bottom_mm..top_mm``; None when no piece lies inside the
        dose grid."""
        z = dose.z_mm
        lo, hi = bottom_mm, top_mm
        # The frames strictly inside each slab cut it; edges past a slab's own repeat its top.
        first = np.searchsorted(z, lo + 1e-6, side="right")
        inner = np.maximum(np.searchsorted(z, hi - 1e-6, side="left") - first, 0)
        width = int(inner.max(initial=0)) + 1
        step = np.arange(width - 1)
        cut = z[np.minimum(first[:, None] + step, len(z) - 1)]
        edges = np.column_stack([lo, np.where(step < inner[:, None], cut, hi[:, None]), hi])
        below, above = edges[:, :-1], edges[:, 1:]
        centre = (below + above) / 2
        present = (above - below > 1e-6) & (centre >= z[0] - GRID_EDGE_TOLERANCE_MM)
        present &= centre <= z[-1] + GRID_EDGE_TOLERANCE_MM
        if not present.any():
            return None
        if len(z) == 1:
            frame = np.zeros(centre.shape, dtype=np.intp)
            fraction = np.zeros(centre.shape)
            per_mm = np.zeros(centre.shape)
        else:
            frame = np.clip(np.searchsorted(z, centre, side="right") - 1, 0, len(z) - 2)
            gap = z[frame + 1] - z[frame]
            fraction = np.clip((centre - z[frame]) / gap, 0.0, 1.0)
            per_mm = 1.0 / gap
        depth = np.where(present, above - below, 0.0)
        # A missing piece points at a frame the batch uses anyway, and adds no depth.
        frame[~present] = int(frame[present].min())
        return cls(frame, fraction, depth, per_mm)

    def frames_used(self, frame_count: int) -> tuple[int, int]:
        """First and last dose frame that the pieces' cells touch."""
        return int(self.frame.min()), min(int(self.frame.max()) + 1, frame_count - 1)


def _whole_cells(
    pieces: _SlabPieces, whole: NDArray[np.bool_]
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Whole sampling pixels pooled per dose cell (the slab between two dose frames): the
    cells the pieces of a batch lie in, and their moments over the pixels ``whole`` (planes ×
    pixels), shaped ``(cells, 3, pixels)``.

    Where a pixel lies wholly inside the ROI, every slab piece it has in one dose cell adds to
    one sample: the trilinear dose is linear in z there, so the pooled sample's mean is the
    dose at its mean depth, and its z spread follows from the depth moments. Large organs thus
    need about one sample per dose cell, not one per slab piece. A cell's three moments are,
    over the sampling pixels, the depth (mm), and the depth-weighted first and second moments
    of the position within the cell (0..1); a cell no piece reached holds zeros, and its
    samples no volume.
    """
    present = pieces.depth_mm > 0
    plane = np.nonzero(present)[0]
    k = pieces.frame[present]
    dz = pieces.depth_mm[present]
    f = pieces.fraction[present]
    extent = dz * pieces.per_mm[present]  # the piece's thickness as a part of its cell
    lowest = int(k.min())
    cells = int(k.max()) - lowest + 1
    n_planes, npix = whole.shape
    slot = (k - lowest) * 3 * n_planes + plane
    weights = np.zeros(cells * 3 * n_planes)
    for row, w in enumerate((dz, dz * f, dz * (f * f + extent * extent / 12.0))):
        weights += np.bincount(slot + row * n_planes, weights=w, minlength=weights.size)
    sums = weights.reshape(cells * 3, n_planes) @ whole.astype(np.float64)
    return np.arange(lowest, lowest + cells), sums.reshape(cells, 3, npix)


def _cell_samples(
    frames: _FineFrames,
    cells: NDArray[np.intp],
    moments: NDArray[np.float64],
    spacing_mm: float,
) -> tuple[NDArray[np.float64], ...]:
    """The pooled samples of whole pixels in dose cells ``cells``: mean dose (Gy), volume (cc)
    and dose variance (Gy²) of each pixel of each cell (volume 0 where the cell holds none of
    the pixel), from the cells' depth moments (see :func:`_whole_cells`)."""
    lower = cells - frames.first
    upper = np.minimum(cells + 1, frames.frame_count - 1) - frames.first
    depth = moments[:, 0, :]
    # Pixels without depth have no moments either: any positive divisor leaves them at 0.
    per_depth = 1.0 / np.maximum(depth, 1e-300)
    u = moments[:, 1, :] * per_depth
    spread_u = moments[:, 2, :] * per_depth
    spread_u -= u * u
    np.maximum(spread_u, 0.0, out=spread_u)
    mean = np.take(frames.value, lower, axis=0)
    rise = np.take(frames.value, upper, axis=0)  # the dose change across the cell
    rise -= mean
    gx = np.take(frames.slope_x, lower, axis=0)
    gx += u * (np.take(frames.slope_x, upper, axis=0) - gx)
    gy = np.take(frames.slope_y, lower, axis=0)
    gy += u * (np.take(frames.slope_y, upper, axis=0) - gy)
    mean += u * rise
    area_mm2 = spacing_mm * spacing_mm
    # In-place arithmetic: these arrays span every pixel of several cells.
    variance = gx * gx
    variance += gy * gy
    variance *= area_mm2 / 12.0
    rise *= rise
    rise *= spread_u
    variance += rise
    return mean.ravel(), (depth * (area_mm2 / 1000.0)).ravel(), variance.ravel()


def _partial_samples(
    frames: _FineFrames,
    pieces: _SlabPieces,
    plane: NDArray[np.intp],
    pixel: NDArray[np.intp],
    covered: CoveredPixels,
    spacing_mm: float,
) -> Iterator[tuple[NDArray[np.float64], ...]]:
    """Samples of the covered part of partly covered sampling pixels ``pixel`` of contour slabs
    ``plane``, one group per slab piece: mean dose (Gy), volume (cc; 0 where the slab has no
    such piece) and dose variance (Gy²).

    Within a piece the dose is trilinear: its mean over the covered part is its value at the
    part's centroid (the small bilinear cross term aside), and its variance follows from the
    in-plane slopes and the part's second moments, and from the z slope across the piece.
    """
    value, slope_x, slope_y = frames.value.ravel(), frames.slope_x.ravel(), frames.slope_y.ravel()
    npix = frames.value.shape[1]
    last = frames.first + frames.value.shape[0] - 1
    ox, oy = covered.offset_x_mm, covered.offset_y_mm
    vx, vy, cxy2 = covered.var_x_mm2, covered.var_y_mm2, 2.0 * covered.cov_xy_mm2
    area_cc = covered.fraction * (spacing_mm * spacing_mm / 1000.0)
    for j in range(pieces.frame.shape[1]):
        k = pieces.frame[plane, j]
        f = pieces.fraction[plane, j]
        dz = pieces.depth_mm[plane, j]
        lower = (k - frames.first) * npix + pixel
        upper = (np.minimum(k + 1, last) - frames.first) * npix + pixel
        v0 = value[lower]
        step = value[upper] - v0
        gx = slope_x[lower]
        gx += f * (slope_x[upper] - gx)
        gy = slope_y[lower]
        gy += f * (slope_y[upper] - gy)
        mean = v0 + f * step + gx * ox + gy * oy
        rise = step * pieces.per_mm[plane, j] * dz  # the dose change across the piece
        variance = gx * gx * vx + gy * gy * vy + gx * gy * cxy2 + rise * rise / 12.0
        yield mean, area_cc * dz, variance


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
