"""Plan-quality indices of a stereotactic lesion, against its own prescription: the RTOG
conformity index (R100%), R50%, the Paddick conformity and gradient indices, D2cm and the
ICRU 83 homogeneity index. Definitions and sources: ``../shared/reference/constraints.md`` §F,
repeated in :data:`~rtcheck.dvh.indices.INDICES`.

**Which dose belongs to which lesion.** Isodose volumes are taken in the body outline, and each
point of the body is attributed to the nearest target (every PTV of the plan: the lesions' and
the primary's), by its distance to the target's surface; a lesion's isodose volumes and its
D2cm are taken in its own part only, and within :data:`NEIGHBOURHOOD_MM` of its PTV. So a
neighbouring lesion's own high dose is never counted for another, and dose between two lesions
is split at the surface equidistant from both; a target beyond the neighbourhood still takes
the points nearer to it. Where the 50 % isodose attributed to a lesion reaches the edge of its
neighbourhood or the end of the body outline, or the dose grid does not cover the body there,
the isodose volumes are not attributed (the index is undefined, with the reason naming the
edge), rather than cut.

**How it is measured.** The neighbourhood is sampled on a regular grid (1.5 mm, coarser only
for very large ones, see :data:`MAX_POINTS`); each sample carries the fraction of its cell
inside the body (exact in-plane, :func:`~rtcheck.dvh.occupancy.polygon_coverage`), the
trilinear dose at its centre and the dose gradient there (for the part of the cell above an
isodose level, :func:`_above`); distances come from a Euclidean distance transform of the
targets' masks (sample centres inside). The PTV's own volume, its volume covered by the
prescription and its D2%/D98%/D50% come from its DVH (:mod:`rtcheck.dvh.engine`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from rtcheck.dicom.dose import AxisInterpolation, DoseGrid, interpolation_along
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.engine import DVH
from rtcheck.dvh.margin import Margin
from rtcheck.dvh.margins import expand, plane_shapes
from rtcheck.dvh.metrics import evaluate_metric
from rtcheck.dvh.occupancy import PixelGrid, polygon_coverage
from rtcheck.dvh.regions import Region

#: How far from its PTV a lesion's dose is attributed to it (mm). A stereotactic plan's 50 %
#: isodose lies well within it (R50% at the RTOG table's minor limits puts it 7-19 mm beyond
#: PTVs of 1.8-163 cc), and D2cm is looked for from 20 mm out.
NEIGHBOURHOOD_MM = 35.0
#: D2cm: the highest dose at this distance or more from the PTV (mm).
D2CM_DISTANCE_MM = 20.0
#: Largest gap (mm) between the boundary points where D2cm is looked for.
BOUNDARY_STEP_MM = 0.2
#: Finest sampling of the neighbourhood (mm), and the most samples it may take.
SAMPLE_MM = 1.5
MAX_POINTS = 6_000_000
#: Scanlines per sample row for the in-plane fractions (the body's, the targets' and the grown
#: targets'): exact along x, and a midpoint rule in y with this many lines.
SUBSAMPLES = 2


@dataclass(frozen=True)
class LesionQuality:
    """What a lesion's plan-quality indices are made of (volumes in cc, doses in % of the
    prescription), and why some cannot be attributed.

    Attributes
    ----------
    ptv_cc
        The PTV's volume (cc).
    covered_cc
        The PTV's volume receiving the prescription or more (cc).
    piv_cc, v50_cc
        The body volume in the lesion's part receiving 100 % / 50 % of the prescription (cc).
    d2cm_pct
        The highest dose 2 cm or more from the PTV in the lesion's part (% of prescription).
    d2_gy, d98_gy, d50_gy
        The PTV's D2%, D98% and D50% (Gy).
    unattributed
        Why the isodose volumes could not be attributed (empty when they could).
    """

    ptv_cc: float
    covered_cc: float
    piv_cc: float
    v50_cc: float
    d2cm_pct: float | None
    d2_gy: float
    d98_gy: float
    d50_gy: float
    unattributed: tuple[str, ...] = ()

    def value(self, index: str) -> float:
        """The index's value; NaN where it is undefined (see :meth:`undefined`)."""
        if self.undefined(index):
            return math.nan
        if index == "R100%":
            return self.piv_cc / self.ptv_cc
        if index == "R50%":
            return self.v50_cc / self.ptv_cc
        if index == "CI_Paddick":
            return self.covered_cc**2 / (self.ptv_cc * self.piv_cc)
        if index == "GI_Paddick":
            return self.v50_cc / self.piv_cc
        if index == "D2cm[%]":
            return self.d2cm_pct if self.d2cm_pct is not None else math.nan
        return (self.d2_gy - self.d98_gy) / self.d50_gy

    def undefined(self, index: str) -> str | None:
        """Why an index has no value, or None."""
        if index != "HI_ICRU83" and self.unattributed:
            return "; ".join(self.unattributed)
        if index in ("CI_Paddick", "GI_Paddick") and self.piv_cc <= 0:
            return "no volume receives the prescription"
        if index == "D2cm[%]" and self.d2cm_pct is None:
            return f"no body within the lesion's part {D2CM_DISTANCE_MM:g} mm or more from its PTV"
        if index == "HI_ICRU83" and self.d50_gy <= 0:
            return "no dose in the PTV"
        return None


def lesion_quality(
    target: Structure,
    target_dvh: DVH,
    *,
    others: Sequence[Structure],
    body: Structure,
    grid: DoseGrid,
    prescription_gy: float,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> LesionQuality:
    """The quality figures of the lesion whose PTV is ``target`` (its DVH ``target_dvh`` on the
    lesion's dose ``grid``), with ``others`` the plan's other targets and ``body`` the body
    outline; ``prescription_gy`` the lesion's prescription (Gy)."""
    low, high = _bounds(target, end_caps)
    low, high = low - NEIGHBOURHOOD_MM, high + NEIGHBOURHOOD_MM
    step = max(SAMPLE_MM, (float(np.prod(high - low)) / MAX_POINTS) ** (1 / 3))
    counts = np.maximum(np.ceil((high - low) / step).astype(int), 1)
    centres, pixels = _lattice(low, step, counts)

    def fraction(structure: Structure) -> NDArray[np.float64]:
        return _sampled(structure, pixels, centres[2], end_caps)

    # A target outside the box can still be nearer than this lesion to a sample inside it:
    # every target within NEIGHBOURHOOD_MM of the box is labelled, on the box grown towards it.
    others = [
        o for o in others if _overlaps(o, low - NEIGHBOURHOOD_MM, high + NEIGHBOURHOOD_MM, end_caps)
    ]
    distance, nearest_is_own = _attribution(target, others, low, step, counts, end_caps)
    own = np.where(nearest_is_own, distance, np.inf)
    cell = nearest_is_own & (own <= NEIGHBOURHOOD_MM)
    weight = fraction(body) * cell
    dose, known = _trilinear(grid, centres)
    slope = np.sqrt(sum(g**2 for g in np.gradient(dose, step)))
    cell_cc = step**3 / 1000.0
    half = 0.5 * prescription_gy
    unattributed = []
    if np.any((weight > 0) & ~known):
        unattributed.append(
            f"the dose grid does not cover the body within {NEIGHBOURHOOD_MM:g} mm of "
            f"{target.name!r}"
        )
    isodose = cell & known & (dose >= half)
    if np.any(isodose & (weight > 0) & _on_edge(distance)):
        unattributed.append(
            f"the 50 % isodose attributed to {target.name!r} reaches {NEIGHBOURHOOD_MM:g} mm "
            "from it, the edge of the region its dose is attributed in"
        )
    body_bottom, body_top = _z_extent(body, end_caps)
    beyond = (centres[2] < body_bottom) | (centres[2] >= body_top)
    if np.any(isodose & beyond[:, None, None]):
        unattributed.append(
            f"the 50 % isodose attributed to {target.name!r} reaches the end of the body "
            f"outline (z {body_bottom:g} to {body_top:g} mm), beyond which it is not contoured"
        )
    d2cm = _d2cm(target, others, body, grid, cell, dose, known, pixels, centres, end_caps)
    d2cm = None if d2cm is None else d2cm / prescription_gy * 100
    ptv_cc = target_dvh.volume_in_grid_cc
    covered = evaluate_metric("V100%[cc]", target_dvh, prescription_gy)
    return LesionQuality(
        ptv_cc=ptv_cc,
        covered_cc=covered,
        piv_cc=float(np.sum(weight * _above(dose, slope, prescription_gy, step))) * cell_cc,
        v50_cc=float(np.sum(weight * _above(dose, slope, half, step))) * cell_cc,
        d2cm_pct=d2cm,
        d2_gy=evaluate_metric("D2%[Gy]", target_dvh),
        d98_gy=evaluate_metric("D98%[Gy]", target_dvh),
        d50_gy=evaluate_metric("D50%[Gy]", target_dvh),
        unattributed=tuple(unattributed),
    )


def _attribution(
    target: Structure,
    others: Sequence[Structure],
    low: NDArray[np.float64],
    step: float,
    counts: NDArray[np.int_],
    end_caps: EndCaps,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """For every sample of the box (``counts`` samples of ``step`` mm from ``low``, mm): the
    distance (mm) to the nearest target's samples, and whether that target is this lesion.

    The targets are sampled on the box grown, on the same lattice, as far as the others reach
    (at most :data:`NEIGHBOURHOOD_MM`: a target farther than that from a sample cannot take it
    from a lesion whose neighbourhood holds it); one distance transform over it then gives
    each sample its nearest target. This lesion is labelled last, so that it wins where
    targets overlap."""
    high = low + counts * step
    wide_low, wide_high = low.copy(), high.copy()
    for other in others:
        o_low, o_high = _bounds(other, end_caps)
        wide_low = np.minimum(wide_low, np.maximum(o_low, low - NEIGHBOURHOOD_MM))
        wide_high = np.maximum(wide_high, np.minimum(o_high, high + NEIGHBOURHOOD_MM))
    before = np.ceil((low - wide_low) / step - 1e-9).astype(int)
    after = np.ceil((wide_high - high) / step - 1e-9).astype(int)
    start = low - before * step
    total = counts + before + after
    centres, pixels = _lattice(start, step, total)
    labels = np.zeros((len(centres[2]), len(centres[1]), len(centres[0])), dtype=np.int16)
    for number, other in enumerate(others, start=2):
        labels[_sampled(other, pixels, centres[2], end_caps) >= 0.5] = number
    inside_target = _sampled(target, pixels, centres[2], end_caps) >= 0.5
    if not inside_target.any():
        inside_target = _nearest_sample(target, centres)
    labels[inside_target] = 1
    distance, nearest = ndimage.distance_transform_edt(
        labels == 0, sampling=step, return_indices=True
    )
    own = labels[tuple(nearest)] == 1
    box = tuple(slice(before[a], before[a] + counts[a]) for a in (2, 1, 0))
    return distance[box], own[box]


def _lattice(
    low: NDArray[np.float64], step: float, counts: NDArray[np.int_]
) -> tuple[list[NDArray[np.float64]], PixelGrid]:
    """The sample centres along x, y and z (mm) of ``counts`` cells of ``step`` mm from
    ``low``, and the in-plane pixel grid they make."""
    centres = [low[a] + (np.arange(counts[a]) + 0.5) * step for a in range(3)]
    return centres, PixelGrid(float(low[0]), float(low[1]), step, int(counts[0]), int(counts[1]))


def _z_extent(structure: Structure, end_caps: EndCaps) -> tuple[float, float]:
    """The lowest and highest z (mm) a structure's slabs reach."""
    bottom, top = structure.slabs(end_caps)
    return float(bottom[0]), float(top[-1])


def _d2cm(
    target: Structure,
    others: Sequence[Structure],
    body: Structure,
    grid: DoseGrid,
    cell: NDArray[np.bool_],
    dose: NDArray[np.float64],
    known: NDArray[np.bool_],
    pixels: PixelGrid,
    centres: list[NDArray[np.float64]],
    end_caps: EndCaps,
) -> float | None:
    """The highest dose (Gy) in the lesion's part of the body (``cell``, within its
    neighbourhood) 2 cm or more from its PTV and from every other target.

    Excluding 2 cm around the other targets too keeps a neighbour's own high dose out even
    where the halfway surface passes within 2 cm of it. Each target grown by 2 cm
    (:func:`~rtcheck.dvh.margins.expand`, exact in-plane) bounds the region; the dose is taken
    at the samples outside every grown target and on the grown targets' contours (densified
    to :data:`BOUNDARY_STEP_MM`), where the maximum usually lies: sampling alone would miss it
    by the dose gradient times half a sample (10 % of D2cm for a steep fall-off).
    """
    box_low = np.array([centres[a][0] for a in range(3)]) - pixels.spacing_mm
    box_high = np.array([centres[a][-1] for a in range(3)]) + pixels.spacing_mm
    shells = [_shell(s, end_caps) for s in (target, *others)]
    shells = [s for s in shells if _overlaps(s, box_low, box_high, end_caps)]
    # Samples whose whole cell lies outside every grown target (tested at both its faces
    # along z, and in the middle where the target's slabs are thinner than a cell): a sample
    # near the boundary could be inside it, and the boundary itself is taken exactly below.
    outside = cell & known
    half = pixels.spacing_mm / 2
    for shell in shells:
        bottom, top = shell.slabs(end_caps)
        thin = bool(np.min(top - bottom) < pixels.spacing_mm) if len(bottom) else False
        for dz in (-half, 0.0, half) if thin else (-half, half):
            outside &= _sampled(shell, pixels, centres[2] + dz, end_caps) <= 0.0
    found = [float(dose[outside].max())] if outside.any() else []
    step = pixels.spacing_mm
    for i, shell in enumerate(shells):
        points = _boundary_points(shell)
        if not len(points):
            continue
        index = np.stack(
            [
                np.clip(
                    np.round((points[:, a] - centres[a][0]) / step).astype(int),
                    0,
                    len(centres[a]) - 1,
                )
                for a in range(3)
            ],
            axis=1,
        )
        usable = cell[index[:, 2], index[:, 1], index[:, 0]]
        usable &= _inside(body, points, end_caps)
        for j, other in enumerate(shells):
            if j != i and usable.any():
                usable &= ~_inside(other, points, end_caps)
        at = _trilinear_points(grid, points[usable])
        at = at[~np.isnan(at)]
        if len(at):
            found.append(float(at.max()))
    return max(found) if found else None


@functools.lru_cache(maxsize=8)
def _shell(structure: Structure, end_caps: EndCaps) -> Structure:
    """A target grown by 2 cm; kept for the plan's other lesions, which need it too."""
    margin = Margin.isotropic(D2CM_DISTANCE_MM)
    return expand(structure, margin, f"{structure.name}+2cm", end_caps)


def _boundary_points(structure: Structure) -> NDArray[np.float64]:
    """Points (x, y, z) along every contour of a structure, at most BOUNDARY_STEP_MM apart."""
    import shapely

    rows = []
    for plane in structure.planes:
        for ring in plane.polygons:
            line = shapely.segmentize(shapely.LinearRing(ring), BOUNDARY_STEP_MM)
            xy = np.asarray(line.coords, dtype=np.float64)[:-1, :2]
            rows.append(np.column_stack((xy, np.full(len(xy), plane.z_mm))))
    return np.concatenate(rows) if rows else np.zeros((0, 3))


def _trilinear_points(grid: DoseGrid, points: NDArray[np.float64]) -> NDArray[np.float64]:
    """The trilinear dose (Gy) at arbitrary points (x, y, z), NaN outside the grid."""
    axes = (grid.x_mm, grid.y_mm, grid.z_mm)
    ax, ay, az = (interpolation_along(g, points[:, i]) for i, g in enumerate(axes))
    dose = grid.dose_gy
    total = np.zeros(len(points))
    for iz, wz in ((az.index, az.below), (np.minimum(az.index + 1, len(axes[2]) - 1), az.above)):
        for iy, wy in (
            (ay.index, ay.below),
            (np.minimum(ay.index + 1, len(axes[1]) - 1), ay.above),
        ):
            for ix, wx in (
                (ax.index, ax.below),
                (np.minimum(ax.index + 1, len(axes[0]) - 1), ax.above),
            ):
                total += wz * wy * wx * dose[iz, iy, ix]
    inside = ax.inside & ay.inside & az.inside
    return np.where(inside, total, np.nan)


def _inside(
    structure: Structure, points: NDArray[np.float64], end_caps: EndCaps
) -> NDArray[np.bool_]:
    """Whether each point (x, y, z) lies inside the structure (even-odd, in its slab)."""
    import shapely

    result = np.zeros(len(points), dtype=bool)
    if structure.is_empty:
        return result
    bottom, top = structure.slabs(end_caps)
    k = np.clip(np.searchsorted(bottom, points[:, 2], side="right") - 1, 0, len(bottom) - 1)
    held = (points[:, 2] >= bottom[k]) & (points[:, 2] < top[k])
    shapes = plane_shapes(structure)
    for plane in np.unique(k[held]):
        chosen = held & (k == plane)
        result[chosen] = shapely.contains_xy(shapes[plane], points[chosen, 0], points[chosen, 1])
    return result


def _overlaps(
    structure: Structure, low: NDArray[np.float64], high: NDArray[np.float64], end_caps: EndCaps
) -> bool:
    """Whether the structure's bounding box meets the box ``low``..``high`` (mm)."""
    if structure.is_empty:
        return False
    s_low, s_high = _bounds(structure, end_caps)
    return bool(np.all(s_low <= high) and np.all(s_high >= low))


def _above(
    dose: NDArray[np.float64], slope: NDArray[np.float64], level: float, step: float
) -> NDArray[np.float64]:
    """The fraction of each sample's cell at or above ``level`` (Gy): the dose taken as linear
    across the cell with the local gradient ``slope`` (Gy/mm), its values spread uniformly over
    the range whose variance a cube of side ``step`` gives (``step`` times the slope), as the
    DVH engine spreads its samples. Sub-sample accuracy is what lets a 2 mm sampling measure
    isodose volumes to a fraction of a percent."""
    spread = slope * step
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = np.clip(0.5 + (dose - level) / spread, 0.0, 1.0)
    return np.where(spread > 0, ramp, (dose >= level).astype(np.float64))


def _bounds(
    structure: Structure, end_caps: EndCaps
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The structure's bounding box (mm): lowest and highest (x, y, z)."""
    xy_low, xy_high = Region.of(structure).xy_bounds()
    bottom, top = structure.slabs(end_caps)
    return (
        np.array([xy_low[0], xy_low[1], bottom[0]], dtype=np.float64),
        np.array([xy_high[0], xy_high[1], top[-1]], dtype=np.float64),
    )


def _sampled(
    structure: Structure, pixels: PixelGrid, z_mm: NDArray[np.float64], end_caps: EndCaps
) -> NDArray[np.float64]:
    """The fraction of each sample cell (in-plane) inside ``structure``, shape (z, y, x)."""
    if structure.is_empty:
        return np.zeros((len(z_mm), pixels.ny, pixels.nx))
    bottom, top = structure.slabs(end_caps)
    k = np.clip(np.searchsorted(bottom, z_mm, side="right") - 1, 0, len(bottom) - 1)
    held = (z_mm >= bottom[k]) & (z_mm < top[k])
    planes = [structure.planes[i].polygons if h else () for i, h in zip(k, held, strict=True)]
    return polygon_coverage(planes, pixels, subsamples=SUBSAMPLES).fraction


def _nearest_sample(structure: Structure, centres: list[NDArray[np.float64]]) -> NDArray[np.bool_]:
    """A mask holding the one sample nearest the centre of a target too small to hold one."""
    points = np.concatenate([poly for p in structure.planes for poly in p.polygons])
    z = np.mean([p.z_mm for p in structure.planes])
    mask = np.zeros((len(centres[2]), len(centres[1]), len(centres[0])), dtype=bool)
    where = (*points.mean(axis=0), z)
    index = [int(np.argmin(np.abs(c - v))) for c, v in zip(centres, where, strict=True)]
    mask[index[2], index[1], index[0]] = True
    return mask


def _trilinear(
    grid: DoseGrid, centres: list[NDArray[np.float64]]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The dose (Gy) at every sample, and whether the dose grid holds it."""
    axes = (grid.x_mm, grid.y_mm, grid.z_mm)
    ax, ay, az = (interpolation_along(g, c) for g, c in zip(axes, centres, strict=True))
    # Only the part of the dose grid the samples reach is read (the grid spans the body).
    first = [int(a.index.min()) for a in (az, ay, ax)]
    last = [int(a.index.max()) + 2 for a in (az, ay, ax)]
    dose = grid.dose_gy[first[0] : last[0], first[1] : last[1], first[2] : last[2]].astype(
        np.float64
    )

    def along(values: NDArray[np.float64], axis: int, a: AxisInterpolation) -> NDArray[np.float64]:
        n = values.shape[axis]
        index = a.index - first[axis]
        lo = np.take(values, index, axis=axis)
        hi = np.take(values, np.minimum(index + 1, n - 1), axis=axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        result: NDArray[np.float64] = lo * a.below.reshape(shape) + hi * a.above.reshape(shape)
        return result

    dose = along(along(along(dose, 0, az), 1, ay), 2, ax)
    known = az.inside[:, None, None] & ay.inside[None, :, None] & ax.inside[None, None, :]
    return dose, known


def _on_edge(distance: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Samples on the faces of the sampled box, or at the neighbourhood's outer distance."""
    edge = np.zeros(distance.shape, dtype=bool)
    edge[[0, -1], :, :] = True
    edge[:, [0, -1], :] = True
    edge[:, :, [0, -1]] = True
    return edge | (distance > NEIGHBOURHOOD_MM - 1.5 * SAMPLE_MM)
