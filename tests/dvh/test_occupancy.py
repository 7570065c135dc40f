"""Fractional occupancy, centroids and second moments of pixels, against exact polygon clipping.

The reference clips each polygon to each pixel (Sutherland-Hodgman) and integrates 1, x, y, x²,
y² and xy over the clipped polygon with Green's theorem: exact up to rounding, and sharing no code
with the scanline fill it checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.structures import ContourPlane, Structure
from rtcheck.dvh.engine import sampling_grid
from rtcheck.dvh.occupancy import PixelGrid, polygon_coverage
from rtcheck.dvh.regions import Region
from tests.test_cli import PHANTOM


def clip(polygon: list[tuple[float, float]], x0, x1, y0, y1) -> list[tuple[float, float]]:
    def cut(points, inside, cross):
        out = []
        for i, p in enumerate(points):
            q = points[i - 1]
            if inside(p):
                if not inside(q):
                    out.append(cross(q, p))
                out.append(p)
            elif inside(q):
                out.append(cross(q, p))
        return out

    def at_x(x):
        return lambda q, p: (x, q[1] + (p[1] - q[1]) * (x - q[0]) / (p[0] - q[0]))

    def at_y(y):
        return lambda q, p: (q[0] + (p[0] - q[0]) * (y - q[1]) / (p[1] - q[1]), y)

    points = polygon
    for inside, cross in (
        (lambda p: p[0] >= x0, at_x(x0)),
        (lambda p: p[0] <= x1, at_x(x1)),
        (lambda p: p[1] >= y0, at_y(y0)),
        (lambda p: p[1] <= y1, at_y(y1)),
    ):
        points = cut(points, inside, cross) if points else []
    return points


def moments(polygon, cx, cy):
    """Area and the integrals of x, y, x², y², xy over ``polygon``, about (cx, cy)."""
    a = mx = my = mxx = myy = mxy = 0.0
    for i in range(len(polygon)):
        x1, y1 = polygon[i - 1][0] - cx, polygon[i - 1][1] - cy
        x2, y2 = polygon[i][0] - cx, polygon[i][1] - cy
        c = x1 * y2 - x2 * y1
        a += c / 2
        mx += (x1 + x2) * c / 6
        my += (y1 + y2) * c / 6
        mxx += (x1 * x1 + x1 * x2 + x2 * x2) * c / 12
        myy += (y1 * y1 + y1 * y2 + y2 * y2) * c / 12
        mxy += (x1 * y2 + 2 * x1 * y1 + 2 * x2 * y2 + x2 * y1) * c / 24
    return a, mx, my, mxx, myy, mxy


def rotated_rectangle(cx, cy, w, h, angle):
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in corners]


SHAPES = {
    "triangle": [(0.3, 0.2), (7.9, 1.1), (2.2, 6.7)],
    "thin diagonal strip": rotated_rectangle(4.1, 3.7, 9.0, 0.7, 0.61),
    "rotated square": rotated_rectangle(3.9, 4.2, 5.3, 5.3, 0.33),
}


GRID = PixelGrid(x0_mm=-1.0, y0_mm=-1.0, spacing_mm=1.25, nx=9, ny=9)


@pytest.mark.parametrize("name", list(SHAPES))
def test_coverage_moments_match_exact_clipping(name):
    polygon = SHAPES[name]
    coverage = polygon_coverage([[np.array(polygon)]], GRID, subsamples=64)
    check_against_clipping(coverage, [(1.0, polygon)])


def test_region_moments_are_the_signed_sums_of_its_rois():
    # A rotated square minus a triangle inside it: the triangle's boundary pixels are partly
    # covered, and their moments are the square's minus the triangle's.
    outer = rotated_rectangle(5.1, 4.9, 9.4, 9.0, 0.21)
    inner = [(2.9, 2.6), (7.4, 3.9), (4.3, 7.6)]
    rois = [
        Structure(n, name, "ORGAN", (ContourPlane(0.0, (np.array(poly),), -0.5, 0.5),), ())
        for n, (name, poly) in enumerate((("Outer", outer), ("Inner", inner)), start=1)
    ]
    region = Region("Outer-Inner", (rois[0],), (rois[1],))
    grid = PixelGrid(x0_mm=-1.0, y0_mm=-1.0, spacing_mm=1.25, nx=10, ny=10)
    coverage = region.coverage(grid, region.slabs(), subsamples=64)
    checked = check_against_clipping(coverage, [(1.0, outer), (-1.0, inner)], grid)
    assert checked >= 20


def check_against_clipping(coverage, signed_polygons, grid=GRID) -> int:
    """Compare every covered pixel with the exact signed sum of clipped polygons; returns how
    many pixels had moments worth checking."""
    flat = np.flatnonzero(coverage.fraction > 0)
    pixels = coverage.at(flat)
    s = grid.spacing_mm
    checked = 0
    for n, index in enumerate(flat):
        i, j = divmod(int(index), grid.nx)
        x0, y0 = grid.x0_mm + j * s, grid.y0_mm + i * s
        sums = np.zeros(6)
        for sign, polygon in signed_polygons:
            piece = clip(polygon, x0, x0 + s, y0, y0 + s)
            sums += sign * np.array(moments(piece, x0 + s / 2, y0 + s / 2))
        area, mx, my, mxx, myy, mxy = sums
        assert pixels.fraction[n] == pytest.approx(area / (s * s), abs=2e-3)
        if area < 0.02 * s * s:
            continue  # the moments of a tiny sliver carry no weight
        checked += 1
        ox, oy = mx / area, my / area
        assert pixels.offset_x_mm[n] == pytest.approx(ox, abs=5e-3 * s)
        assert pixels.offset_y_mm[n] == pytest.approx(oy, abs=5e-3 * s)
        assert pixels.var_x_mm2[n] == pytest.approx(mxx / area - ox * ox, abs=5e-3 * s * s)
        assert pixels.var_y_mm2[n] == pytest.approx(myy / area - oy * oy, abs=5e-3 * s * s)
        assert pixels.cov_xy_mm2[n] == pytest.approx(mxy / area - ox * oy, abs=5e-3 * s * s)
    assert checked >= 5
    # A whole pixel spreads by spacing²/12 along each axis and not at all across.
    whole = pixels.fraction == 1.0
    if whole.any():
        assert np.allclose(pixels.var_x_mm2[whole], s * s / 12)
        assert np.allclose(pixels.cov_xy_mm2[whole], 0.0)
    return checked


def test_sampling_grid_is_aligned_with_the_dose_grid():
    plan = load_plan([PHANTOM])
    dose = plan.doses[0].grid
    cell = float(dose.x_mm[1] - dose.x_mm[0])
    spacings = set()
    for structure in plan.structure_set.structures:
        grid = sampling_grid(Region.of(structure), dose)
        steps = cell / grid.spacing_mm
        assert steps == pytest.approx(round(steps))  # the spacing divides the dose spacing
        for origin, axis in ((grid.x0_mm, dose.x_mm), (grid.y0_mm, dose.y_mm)):
            lines = (axis - origin) / grid.spacing_mm
            assert np.allclose(lines, np.round(lines), atol=1e-6)  # edges on the dose lines
        spacings.add(round(grid.spacing_mm, 6))
    # Organs are sampled at the dose spacing, small targets finer.
    assert cell in spacings and min(spacings) < cell / 2


def test_planes_filled_in_a_window_match_exact_clipping_everywhere():
    # Each plane's polygons lie in a different part of the grid, one plane is empty and one
    # polygon reaches past the grid's left and lower edges: the fill is computed in the window
    # the polygons touch, and every pixel of the grid, inside the window or not, must still
    # match exact clipping.
    grid = PixelGrid(x0_mm=-1.0, y0_mm=-1.0, spacing_mm=1.25, nx=23, ny=19)
    planes = [
        [rotated_rectangle(3.1, 2.7, 6.2, 5.1, 0.4)],
        [],
        [rotated_rectangle(21.0, 17.5, 3.3, 4.1, -0.2), [(-4.0, -3.0), (2.5, -2.0), (0.5, 3.5)]],
    ]
    coverage = polygon_coverage([[np.array(p) for p in plane] for plane in planes], grid, 64)
    assert coverage.fraction.shape == (3, grid.ny, grid.nx)
    s = grid.spacing_mm
    for k, plane in enumerate(planes):
        for i in range(grid.ny):
            for j in range(grid.nx):
                x0, y0 = grid.x0_mm + j * s, grid.y0_mm + i * s
                area = sum(moments(clip(p, x0, x0 + s, y0, y0 + s), 0, 0)[0] for p in plane)
                assert coverage.fraction[k, i, j] == pytest.approx(area / (s * s), abs=2e-3)
    # The window holds every covered pixel and no more rows or columns than the polygons span.
    outside = coverage.fraction.copy()
    outside[coverage.window] = 0.0
    assert not outside.any()
    rows, columns = (
        np.nonzero(coverage.fraction.any(axis=0)),
        np.nonzero(coverage.fraction.any(axis=1)),
    )
    assert (coverage.rows.start, coverage.rows.stop) == (rows[0].min(), rows[0].max() + 1)
    assert (coverage.columns.start, coverage.columns.stop) == (
        columns[1].min(),
        columns[1].max() + 1,
    )


def test_a_subtracted_roi_in_some_planes_only_leaves_the_others_alone():
    # Outer on three planes, Inner (a triangle inside Outer, near its corner) on the middle
    # one: the region is Outer on the first and last planes and Outer minus Inner between.
    outer = rotated_rectangle(8.0, 7.0, 12.0, 10.0, 0.1)
    inner = [(3.0, 3.0), (6.5, 2.8), (4.0, 6.0)]

    def roi(number, name, polygons):
        planes = tuple(ContourPlane(z, (np.array(poly),), z - 0.5, z + 0.5) for z, poly in polygons)
        return Structure(number, name, "ORGAN", planes, ())

    region = Region(
        "Outer-Inner",
        (roi(1, "Outer", [(0.0, outer), (1.0, outer), (2.0, outer)]),),
        (roi(2, "Inner", [(1.0, inner)]),),
    )
    grid = PixelGrid(x0_mm=-1.0, y0_mm=-1.0, spacing_mm=1.25, nx=15, ny=14)
    coverage = region.coverage(grid, region.slabs(), subsamples=64)
    s = grid.spacing_mm
    differs = 0
    for k in range(3):
        for i in range(grid.ny):
            for j in range(grid.nx):
                x0, y0 = grid.x0_mm + j * s, grid.y0_mm + i * s
                area = moments(clip(outer, x0, x0 + s, y0, y0 + s), 0, 0)[0]
                if k == 1:
                    area -= moments(clip(inner, x0, x0 + s, y0, y0 + s), 0, 0)[0]
                expected = area / (s * s)
                assert coverage.fraction[k, i, j] == pytest.approx(expected, abs=2e-3)
                differs += k == 1 and coverage.fraction[0, i, j] != coverage.fraction[1, i, j]
    assert differs >= 5
