"""Structures grown and shrunk by margins, against analytical volumes.

Truths: a sphere of radius r grown by m is the sphere of radius r + m (shrunk, r − m); a box grown
by a margin that differs in each direction is the box, plus a slab on each face, a quarter
elliptic cylinder along each edge and an ellipsoid octant at each corner:

    V = XYZ + YZ·wx + XZ·wy + XY·wz + π/4·(Z·wx·wy + Y·wx·wz + X·wy·wz) + π/6·wx·wy·wz

with ``wx = right + left``, ``wy = anterior + posterior``, ``wz = inferior + superior``.
Volumes are measured as the contours' even-odd areas times their slabs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import ContourPlane, Structure
from rtcheck.dvh.margin import Margin
from rtcheck.dvh.margins import clip, contract, expand
from rtcheck.errors import InvalidStructureError

HALF = EndCaps.HALF_SLAB


def sphere(radius: float, spacing: float, points: int = 720) -> Structure:
    """A sphere contoured every ``spacing`` mm, planes at the slab centres."""
    planes = []
    for z in np.arange(-radius + spacing / 2, radius, spacing):
        r = math.sqrt(max(radius**2 - z**2, 0.0))
        angle = np.linspace(0, 2 * np.pi, points, endpoint=False)
        ring = np.column_stack((r * np.cos(angle), r * np.sin(angle)))
        planes.append(ContourPlane(float(z), (ring,), z - spacing / 2, z + spacing / 2))
    return Structure(1, "Sphere", "ORGAN", tuple(planes), ())


def box(x: float, y: float, z: float, spacing: float, centre=(0.0, 0.0)) -> Structure:
    cx, cy = centre
    square = np.array([[-x / 2, -y / 2], [x / 2, -y / 2], [x / 2, y / 2], [-x / 2, y / 2]])
    square = square + [cx, cy]
    planes = tuple(
        ContourPlane(float(c), (square,), c - spacing / 2, c + spacing / 2)
        for c in np.arange(-z / 2 + spacing / 2, z / 2, spacing)
    )
    return Structure(2, "Box", "ORGAN", planes, ())


def volume(structure: Structure) -> float:
    """Even-odd area of each plane's contours times its slab (mm³)."""
    bottom, top = structure.slabs(HALF)
    total = 0.0
    for plane, b, t in zip(structure.planes, bottom, top, strict=True):
        shape = shapely.Polygon()
        for ring in plane.polygons:
            shape = shapely.symmetric_difference(shape, shapely.Polygon(ring))
        total += shape.area * (t - b)
    return total


def ball(radius: float) -> float:
    return 4 / 3 * math.pi * radius**3


# Within 1 % where the margin is at least 2.5 contour spacings, or the sphere is organ-sized;
# the README's table gives the rest (a margin close to the spacing is sampled coarsely in z).
@pytest.mark.parametrize(
    ("radius", "spacing", "margin", "tolerance"),
    [
        (10, 1.0, 5, 0.01), (10, 1.0, 10, 0.01), (20, 1.0, 2, 0.01), (20, 1.0, 5, 0.01),
        (20, 2.0, 5, 0.01), (20, 2.0, 10, 0.01), (10, 2.0, 5, 0.02), (10, 2.0, 10, 0.02),
    ],
)  # fmt: skip
def test_a_sphere_grows_and_shrinks_to_the_sphere_of_radius_r_plus_or_minus_m(
    radius, spacing, margin, tolerance
):
    grown = expand(sphere(radius, spacing), Margin.isotropic(margin), "grown", HALF)
    assert volume(grown) == pytest.approx(ball(radius + margin), rel=tolerance)
    shrunk = contract(sphere(radius + margin, spacing), Margin.isotropic(margin), "shrunk", HALF)
    assert volume(shrunk) == pytest.approx(ball(radius), rel=tolerance)


def test_a_box_grown_by_a_different_margin_in_each_direction():
    margin = Margin(right=3, left=5, anterior=2, posterior=4, inferior=6, superior=8)
    x, y, z = 20.0, 30.0, 40.0
    wx, wy, wz = 8.0, 6.0, 14.0
    truth = (
        x * y * z + y * z * wx + x * z * wy + x * y * wz
        + math.pi / 4 * (z * wx * wy + y * wx * wz + x * wy * wz) + math.pi / 6 * wx * wy * wz
    )  # fmt: skip
    for spacing, tolerance in ((1.0, 0.001), (2.0, 0.002)):
        grown = expand(box(x, y, z, spacing), margin, "grown", HALF)
        assert volume(grown) == pytest.approx(truth, rel=tolerance)
        # Each side moves by its own margin, exactly: +x is the patient's left, +y posterior.
        points = np.concatenate([ring for plane in grown.planes for ring in plane.polygons])
        assert points.min(axis=0) == pytest.approx([-10 - 3, -15 - 2], abs=1e-9)
        assert points.max(axis=0) == pytest.approx([10 + 5, 15 + 4], abs=1e-9)
        assert grown.planes[0].bottom_mm == pytest.approx(-20 - 6)
        assert grown.planes[-1].top_mm == pytest.approx(20 + 8)
        # Shrinking it back by the same margin returns the box.
        back = contract(grown, margin, "back", HALF)
        assert volume(back) == pytest.approx(x * y * z, rel=tolerance)


def test_an_elliptic_margin_and_a_superior_only_margin():
    # Left = right and anterior = posterior: the exact elliptic offset.
    grown = expand(box(20, 20, 20, 1.0), Margin(4, 4, 2, 2, 0, 0), "grown", HALF)
    truth_area = 20 * 20 + 2 * 20 * 4 + 2 * 20 * 2 + math.pi * 4 * 2
    assert volume(grown) == pytest.approx(truth_area * 20, rel=1e-3)
    up = expand(box(20, 20, 20, 1.0), Margin(superior=7), "up", HALF)
    assert volume(up) == pytest.approx(20 * 20 * 27, rel=1e-9)
    assert up.planes[0].bottom_mm == pytest.approx(-10) and up.planes[-1].top_mm == 17


def test_a_zero_margin_keeps_the_structure_and_shrinking_past_its_size_empties_it():
    s = sphere(10, 2.0)
    assert volume(expand(s, Margin(), "same", HALF)) == pytest.approx(volume(s), rel=1e-12)
    assert volume(contract(s, Margin(), "same", HALF)) == pytest.approx(volume(s), rel=1e-12)
    assert contract(s, Margin.isotropic(11), "gone", HALF).is_empty


def test_a_ring_around_a_target_has_the_volume_between_two_spheres():
    from rtcheck.dvh.regions import Region

    target = sphere(10, 1.0)
    outer = expand(target, Margin.isotropic(20), "outer", HALF)
    inner = expand(target, Margin.isotropic(2), "inner", HALF)
    ring = Region("Ring", (outer,), (inner,))
    assert ring.slabs(HALF).depth_mm.sum() > 0
    truth = ball(30) - ball(12)
    assert volume(outer) - volume(inner) == pytest.approx(truth, rel=0.01)


def test_a_margin_never_reaches_outside_the_body_when_clipped_to_it():
    body = box(60, 60, 60, 2.0)
    near_skin = box(10, 10, 10, 2.0, centre=(20.0, 0.0))  # 5 mm under the left skin
    grown = expand(near_skin, Margin.isotropic(10), "grown", HALF)
    inside = clip(grown, body, "inside", HALF)
    points = np.concatenate([ring for plane in inside.planes for ring in plane.polygons])
    assert points[:, 0].max() == pytest.approx(30.0)  # the skin, not 25 + 10
    assert volume(inside) < volume(grown)


def test_two_separate_parts_grow_into_each_other_where_the_margin_bridges_the_gap():
    # Two boxes 6 mm apart along z; grown by 4 mm they meet.
    low = box(10, 10, 10, 1.0)
    high = box(10, 10, 10, 1.0)
    shifted = tuple(
        ContourPlane(p.z_mm + 16, p.polygons, p.bottom_mm + 16, p.top_mm + 16) for p in high.planes
    )
    both = Structure(3, "Both", "ORGAN", (*low.planes, *shifted), ())
    grown = expand(both, Margin.isotropic(4), "grown", HALF)
    tops = [p.top_mm for p in grown.planes]
    bottoms = [p.bottom_mm for p in grown.planes]
    assert all(abs(t - b) < 1e-9 for t, b in zip(tops[:-1], bottoms[1:], strict=True))


def test_margins_are_checked():
    with pytest.raises(InvalidStructureError, match="margin left -1"):
        Margin(left=-1)
    with pytest.raises(InvalidStructureError, match="0 to 100 mm"):
        Margin.isotropic(float("nan"))
