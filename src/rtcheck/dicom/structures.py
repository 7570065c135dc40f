"""RTSTRUCT regions of interest as stacks of planar polygons.

Each ROI is a sequence of axial planes; the contours on one plane combine by the even-odd rule
(an inner contour is a hole), and each plane stands for the slab of the slice it was drawn on,
found from the planes of the whole structure set (:mod:`rtcheck.dicom.slabs`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from rtcheck.caps import CONTOUR_POINTS, POINTS_PER_CONTOUR
from rtcheck.dicom.contour_items import raw_contours
from rtcheck.dicom.decimals import parse_plain_decimals
from rtcheck.dicom.slabs import CONTIGUOUS_TOLERANCE_MM, EndCaps, capped_bounds, slab_bounds
from rtcheck.dicom.values import roi_number
from rtcheck.errors import InvalidStructureError

#: Contours whose z coordinates spread more than this (mm) are not axial and are skipped.
PLANARITY_TOLERANCE_MM = 0.05
#: Contour planes closer than this (mm) are the same plane.
PLANE_MERGE_TOLERANCE_MM = 0.01

#: Coordinates (mm) beyond this are typos, not patients (100 m).
COORDINATE_LIMIT_MM = 1e5
#: Polygons of less area (mm²) have no inside: skipped, with a warning.
MIN_AREA_MM2 = 1e-6

_CLOSED_TYPES = {"CLOSED_PLANAR", "CLOSEDPLANAR_XOR"}
_NOT_TRIPLETS = "contour whose ContourData is missing or not in (x, y, z) triplets"
_NOT_AXIAL = "contour that is not on an axial plane"
_NOT_FINITE = "contour whose coordinates are not finite numbers within ±100 m"
_TOO_LARGE = f"contour of more points than {POINTS_PER_CONTOUR.variable} allows"
#: Skipped contours that leave part of the ROI out: its DVH cannot be trusted.
_DEFECTS = (_NOT_TRIPLETS, _NOT_AXIAL, _NOT_FINITE, _TOO_LARGE)
_CONTOUR_DATA = Tag(0x3006, 0x0050)
_GEOMETRIC_TYPE = Tag(0x3006, 0x0042)
_CONTOUR_SEQUENCE = Tag(0x3006, 0x0040)


@dataclass(frozen=True, eq=False)
class ContourPlane:
    """The closed contours of one ROI on one axial plane.

    Attributes
    ----------
    z_mm
        Plane position (mm).
    polygons
        One ``(N, 2)`` array of (x, y) vertices (mm) per contour.
    bottom_mm, top_mm
        The slab the plane stands for (mm): the slice it was drawn on.
    """

    z_mm: float
    polygons: tuple[NDArray[np.float64], ...]
    bottom_mm: float
    top_mm: float


@dataclass(frozen=True, eq=False)
class Structure:
    """One ROI of an RTSTRUCT.

    Attributes
    ----------
    number
        ROINumber.
    name
        ROIName as written in the file.
    interpreted_type
        RTROIInterpretedType (``EXTERNAL``, ``PTV``, ``ORGAN``...), or ``""`` when absent.
    planes
        Contour planes sorted by z, each with its slab.
    warnings
        What was skipped while reading the ROI (degenerate or non-axial contours...).
    defects
        Why the ROI's geometry cannot be trusted (part of it skipped, contours repeated, planes
        closer than the slices they stand for); empty for a sound ROI. Limits on an ROI with
        defects are not evaluated.
    """

    number: int
    name: str
    interpreted_type: str
    planes: tuple[ContourPlane, ...]
    warnings: tuple[str, ...]
    defects: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the ROI has no usable closed contour."""
        return not self.planes

    @property
    def is_external(self) -> bool:
        """True for the body outline (interpreted type EXTERNAL, or named BODY/EXTERNAL)."""
        return self.interpreted_type == "EXTERNAL" or self.name.strip().upper() in {
            "BODY",
            "EXTERNAL",
            "OUTER CONTOUR",
            "SKIN",
        }

    def slabs(
        self, end_caps: EndCaps = EndCaps.HALF_SLAB
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The bottom and top (mm) of the slab of each plane, under an end-cap convention."""
        bottom = np.array([p.bottom_mm for p in self.planes], dtype=np.float64)
        top = np.array([p.top_mm for p in self.planes], dtype=np.float64)
        z = np.array([p.z_mm for p in self.planes], dtype=np.float64)
        return capped_bounds(bottom, top, z, end_caps)

    @cached_property
    def plane_extents(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The lowest and highest (x, y) (mm) of each plane's contours, each shaped
        ``(planes, 2)`` (computed once: the DVH windows each batch of planes by them)."""
        low, high = self._contour_extents
        if not self.planes:
            return low, high
        starts = np.cumsum([0, *(len(p.polygons) for p in self.planes[:-1])])
        return np.minimum.reduceat(low, starts, axis=0), np.maximum.reduceat(high, starts, axis=0)

    @cached_property
    def extent(self) -> Extent:
        """The in-plane extent of the ROI's contours (computed once: every DVH of the ROI
        lays its sampling grid from it)."""
        low, high = self._contour_extents
        if not len(low):
            nothing = np.full(2, np.nan)
            return Extent(nothing, nothing, 0.0)
        return Extent(low.min(axis=0), high.max(axis=0), float(np.max(np.min(high - low, axis=1))))

    @cached_property
    def _contour_extents(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The lowest and highest (x, y) (mm) of each contour, plane by plane, each shaped
        ``(contours, 2)``: what :attr:`extent` and :attr:`plane_extents` are made of."""
        polygons = [poly for p in self.planes for poly in p.polygons]
        if not polygons:
            return np.zeros((0, 2)), np.zeros((0, 2))
        points = np.concatenate(polygons)
        starts = np.cumsum([0, *(len(poly) for poly in polygons[:-1])])
        return np.minimum.reduceat(points, starts, axis=0), np.maximum.reduceat(
            points, starts, axis=0
        )


@dataclass(frozen=True, eq=False)
class Extent:
    """Where an ROI's contours lie in-plane.

    Attributes
    ----------
    low_mm, high_mm
        Lowest and highest (x, y) of any contour point (mm); NaN for an ROI without contours.
    part_width_mm
        The largest, over the contours, of a contour's smaller extent along x or y (mm).
    """

    low_mm: NDArray[np.float64]
    high_mm: NDArray[np.float64]
    part_width_mm: float


@dataclass(frozen=True, eq=False)
class StructureSet:
    """The ROIs of one RTSTRUCT and the UIDs that link it to a plan."""

    sop_instance_uid: str
    frame_of_reference_uid: str
    label: str
    structures: tuple[Structure, ...]

    def by_name(self, name: str) -> Structure:
        """The ROI named exactly ``name``.

        Raises
        ------
        InvalidStructureError
            If no ROI or more than one ROI has that name.
        """
        found = [s for s in self.structures if s.name == name]
        if not found:
            names = ", ".join(s.name for s in self.structures)
            raise InvalidStructureError(f"no ROI named {name!r} in the structure set ({names})")
        if len(found) > 1:
            raise InvalidStructureError(f"{len(found)} ROIs are named {name!r}")
        return found[0]


def read_structure_set(ds: Dataset, source: str) -> StructureSet:
    """Read every ROI of an RTSTRUCT dataset.

    Parameters
    ----------
    ds
        The RTSTRUCT dataset.
    source
        How to name the file in messages (its path).

    Raises
    ------
    InvalidStructureError
        If the dataset has no StructureSetROISequence.
    """
    if "StructureSetROISequence" not in ds:
        raise InvalidStructureError(f"{source}: RTSTRUCT has no StructureSetROISequence")

    def refuse(where: str) -> Callable[[str], InvalidStructureError]:
        return lambda message: InvalidStructureError(f"{source}: {where}: {message}")

    names: dict[int, str] = {}
    for i, item in enumerate(ds.StructureSetROISequence, start=1):
        number = roi_number(item, "ROINumber", refuse(f"StructureSetROISequence item {i}"))
        names[number] = str(item.get("ROIName", "") or f"ROI {number}")
    types: dict[int, str] = {}
    for i, obs in enumerate(ds.get("RTROIObservationsSequence", []), start=1):
        if obs.get("ReferencedROINumber") not in (None, ""):
            number = roi_number(
                obs, "ReferencedROINumber", refuse(f"RTROIObservationsSequence item {i}")
            )
            types[number] = str(obs.get("RTROIInterpretedType", "")).upper()
    items = list(ds.get("ROIContourSequence", []))
    of_item = [_contours_of(item) for item in items]
    values = sum(c.value_count for contours_of_roi in of_item for c in contours_of_roi)
    CONTOUR_POINTS.check(values // 3, f"{source}: the structure set holds")
    contours: dict[int, list[_Contour]] = {}
    for i, (item, contours_of_roi) in enumerate(zip(items, of_item, strict=True), start=1):
        number = roi_number(item, "ReferencedROINumber", refuse(f"ROIContourSequence item {i}"))
        contours[number] = contours_of_roi

    parsed = []
    for number, name in names.items():
        found = contours.get(number)
        planes, warnings, defects = _read_planes(found, name) if found is not None else ((), (), ())
        parsed.append((number, name, types.get(number, ""), planes, warnings, defects))
    with_slabs, overlaps = _with_slabs([p[3] for p in parsed], source)
    structures = tuple(
        Structure(number, name, kind, planes, warnings, (*defects, *overlap))
        for (number, name, kind, _, warnings, defects), planes, overlap in zip(
            parsed, with_slabs, overlaps, strict=True
        )
    )

    frame_uid = ""
    if "ReferencedFrameOfReferenceSequence" in ds and ds.ReferencedFrameOfReferenceSequence:
        frame_uid = str(ds.ReferencedFrameOfReferenceSequence[0].get("FrameOfReferenceUID", ""))
    return StructureSet(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        frame_of_reference_uid=frame_uid,
        label=str(ds.get("StructureSetLabel", "")),
        structures=structures,
    )


def _read_planes(
    contours: list[_Contour], name: str
) -> tuple[tuple[ContourPlane, ...], tuple[str, ...], tuple[str, ...]]:
    """Group an ROI's closed planar contours by plane, skipping degenerate ones with a warning;
    also returns the ROI's defects (see :class:`Structure`)."""
    skipped: dict[str, int] = defaultdict(int)
    closed = []
    most_values = 3 * POINTS_PER_CONTOUR.value
    for contour in contours:
        kind = contour.geometric_type
        if kind not in _CLOSED_TYPES:
            skipped[f"{kind or 'untyped'} contour (only CLOSED_PLANAR is used)"] += 1
        elif contour.value_count > most_values:
            skipped[_TOO_LARGE] += 1
        else:
            closed.append(contour)
    values, sizes = _contour_data(closed)
    triplets = (sizes >= 0) & (sizes % 3 == 0)
    if not triplets.all():
        skipped[_NOT_TRIPLETS] += int(np.count_nonzero(~triplets))
        values = values[np.repeat(triplets, np.maximum(sizes, 0))]
        sizes = sizes[triplets]
    polygons = _polygons(values, sizes // 3, skipped)
    warnings = tuple(
        f"ROI {name!r}: skipped {count} {what}" for what, count in sorted(skipped.items())
    )
    defects = [f"skipped {skipped[what]} {what}" for what in _DEFECTS if skipped.get(what, 0) > 0]
    # Contours of one plane differ in z only by the rounding of their decimal strings.
    polygons.sort(key=lambda item: item[0])
    groups: list[list[tuple[float, NDArray[np.float64]]]] = []
    for z, polygon in polygons:
        if groups and z - groups[-1][0][0] <= PLANE_MERGE_TOLERANCE_MM:
            groups[-1].append((z, polygon))
        else:
            groups.append([(z, polygon)])
    # The slabs come from the whole structure set, once every ROI is read (_with_slabs).
    planes = tuple(
        ContourPlane(
            g[0][0] if len(g) == 1 else float(np.mean([z for z, _ in g])),
            tuple(p for _, p in g),
            math.nan,
            math.nan,
        )
        for g in groups
    )
    for plane in planes:
        seen = set()
        for polygon in plane.polygons:
            key = polygon.tobytes()
            if key in seen:
                # Even-odd would make the repeated contour cancel out: the ROI vanishes there.
                defects.append(f"a contour is repeated on the plane z = {plane.z_mm:g} mm")
                break
            seen.add(key)
    return planes, warnings, tuple(defects)


def _polygons(
    values: NDArray[np.float64], counts: NDArray[np.intp], skipped: dict[str, int]
) -> list[tuple[float, NDArray[np.float64]]]:
    """Each contour's z (mm) and its (N, 2) polygon, all contours at once, from their (x, y,
    z) values one after another (``counts`` points of each); degenerate and non-axial
    contours are counted in ``skipped``."""
    used = counts > 0
    if not used.all():  # (a contour without points holds none of the values)
        skipped["contour with fewer than 3 points"] += int(np.count_nonzero(~used))
        counts = counts[used]
    if not counts.size:
        return []
    points = values.reshape(-1, 3)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lasts = starts + counts - 1
    keep = np.ones(len(points), dtype=bool)
    # An explicitly repeated first point adds nothing.
    repeated = (counts > 1) & np.all(points[starts] == points[lasts], axis=1)
    keep[lasts[repeated]] = False
    kept = counts - repeated
    # NaN, inf or a coordinate of 100 m is a damaged contour; it is set aside before any
    # arithmetic, which it would poison. The lowest and highest value show at once that there
    # is none (NaN would make them NaN); only otherwise is each point looked at.
    lowest, highest = float(points.min(initial=0.0)), float(points.max(initial=0.0))
    if lowest >= -COORDINATE_LIMIT_MM and highest <= COORDINATE_LIMIT_MM:
        unusable = np.zeros(len(counts), dtype=bool)
    else:
        # (Column by column: a reduction along an axis of three is many times slower.)
        sane = np.abs(points) <= COORDINATE_LIMIT_MM
        wild = ~(sane[:, 0] & sane[:, 1] & sane[:, 2])
        unusable = np.maximum.reduceat(wild, starts).astype(bool)
        points = np.where(wild[:, None], 0.0, points)
    z = points[:, 2]
    spread = np.maximum.reduceat(z, starts) - np.minimum.reduceat(z, starts)
    mean_z = np.add.reduceat(np.where(keep, z, 0.0), starts) / kept
    few = ~unusable & (kept < 3)
    tilted = ~unusable & ~few & (spread > PLANARITY_TOLERANCE_MM)
    # Contiguous, in one gather (a boolean mask over the strided columns is three times slower).
    xy = points[:, :2].take(np.flatnonzero(keep), axis=0)
    flat = ~unusable & ~few & ~tilted & (np.abs(_areas(xy, kept)) < MIN_AREA_MM2)
    for mask, what in (
        (unusable, _NOT_FINITE),
        (few, "contour with fewer than 3 points"),
        (tilted, _NOT_AXIAL),
        (flat, "contour of zero area"),
    ):
        if mask.any():
            skipped[what] += int(np.count_nonzero(mask))
    good = np.flatnonzero(~(unusable | few | tilted | flat))
    ends = np.cumsum(kept)
    # Views of xy, sliced directly (np.split costs several times more per contour).
    return [
        (z, xy[begin:end])
        for z, begin, end in zip(
            mean_z[good].tolist(), (ends - kept)[good].tolist(), ends[good].tolist(), strict=True
        )
    ]


def _areas(xy: NDArray[np.float64], counts: NDArray[np.intp]) -> NDArray[np.float64]:
    """Signed area (mm²) of each polygon of ``xy``, the polygons' vertices one after another
    (``counts`` of each); 0 for a polygon of fewer than 3 vertices."""
    if len(xy) == 0:
        return np.zeros(len(counts))
    ends = np.cumsum(counts)
    starts = ends - counts
    following = np.arange(1, len(xy) + 1)
    following[ends[counts > 0] - 1] = starts[counts > 0]
    x, y = xy[:, 0], xy[:, 1]
    cross = x * y[following] - x[following] * y
    sums = np.add.reduceat(cross, np.minimum(starts, len(xy) - 1)) / 2
    return np.where(counts >= 3, sums, 0.0)


@dataclass(frozen=True, eq=False)
class _Contour:
    """One contour as read for its geometry.

    Attributes
    ----------
    geometric_type
        ContourGeometricType, upper case ("" when absent).
    raw
        ContourData's decimal strings as written (padding stripped), where they have not been
        converted; None where the element is absent, empty or already converted.
    converted
        ContourData's value as pydicom converted it, where it did (else None).
    """

    geometric_type: str
    raw: bytes | None
    converted: Any = None

    @cached_property
    def value_count(self) -> int:
        """How many values ContourData holds, counted without converting them (once: the
        limits, the checks and the reading all ask)."""
        if self.raw is not None:
            return self.raw.count(b"\\") + 1
        value = self.converted
        if value is None or isinstance(value, str | bytes) and not value:
            return 0
        return len(value) if isinstance(value, MultiValue | list | tuple) else 1


def _contours_of(item: Dataset) -> list[_Contour]:
    """The contours of one ROIContourSequence item: read from the ContourSequence's bytes where
    they are still raw (:mod:`~rtcheck.dicom.contour_items`), else from pydicom's Datasets."""
    raw = raw_contours(item.get_item(_CONTOUR_SEQUENCE))
    if raw is not None:
        return [
            _Contour(_text(c.geometric_type), _stripped(c.contour_data) if c.contour_data else None)
            for c in raw
        ]
    return [_contour(contour) for contour in item.get("ContourSequence", [])]


def _contour(contour: Dataset) -> _Contour:
    """A contour read from its Dataset. ContourGeometricType is read from the raw bytes when it
    has not been converted yet (converting it costs more than its ContourData)."""
    kind = contour.get_item(_GEOMETRIC_TYPE)
    if kind is None:
        geometric_type = ""
    elif isinstance(kind, RawDataElement):
        geometric_type = _text(kind.value)
    else:
        geometric_type = str(kind.value or "").strip().upper()
    data = contour.get_item(_CONTOUR_DATA)
    if data is None:
        return _Contour(geometric_type, None)
    if isinstance(data, RawDataElement):
        return _Contour(geometric_type, _stripped(data.value))
    return _Contour(geometric_type, None, data.value)


def _text(value: bytes | None) -> str:
    return bytes(value or b"").strip(b" \x00").decode("ascii", "replace").upper()


def _stripped(value: bytes | None) -> bytes | None:
    return bytes(value or b"").strip(b" \x00") or None


def _contour_data(contours: list[_Contour]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """The ContourData values of the contours as floats (mm), one contour after another, and
    how many values each contour has: -1 for one whose ContourData is absent or not numbers
    (it has none among the values).

    The decimal strings are read from the raw bytes, those of all the contours in one pass
    (:func:`~rtcheck.dicom.decimals.parse_plain_decimals`), into one array that the polygons
    are then cut from; converting each value to a pydicom DSfloat costs ten times more on a
    large structure set.
    """
    plain = [c.raw for c in contours if c.raw is not None]
    values = parse_plain_decimals(b"\\".join(plain)) if plain else None
    sizes = [c.value_count for c in contours if c.raw is not None]
    if values is not None and len(plain) == len(contours):
        return values, np.array(sizes, dtype=np.intp)
    if values is not None:
        parts = iter(np.split(values, np.cumsum(sizes)[:-1]))
        arrays = [next(parts) if c.raw is not None else _one_contour_data(c) for c in contours]
    else:
        arrays = [_one_contour_data(c) for c in contours]
    found = [a for a in arrays if a is not None]
    return (
        np.concatenate(found) if found else np.zeros(0),
        np.array([-1 if a is None else a.size for a in arrays], dtype=np.intp),
    )


def _one_contour_data(contour: _Contour) -> NDArray[np.float64] | None:
    """ContourData as floats (mm) by the general path, or None when absent or not numbers."""
    try:
        if contour.raw is not None:
            return np.array(contour.raw.split(b"\\"), dtype=np.bytes_).astype(np.float64)
        converted = contour.converted
        if converted is None or isinstance(converted, str | bytes) and not converted:
            return None
        values = np.atleast_1d(converted)
        return np.array([float(v) for v in values], dtype=np.float64)
    except (ValueError, TypeError):
        return None


def _with_slabs(
    rois: list[tuple[ContourPlane, ...]], source: str
) -> tuple[list[tuple[ContourPlane, ...]], list[tuple[str, ...]]]:
    """Each ROI's planes with the slab of the structure set's plane they lie on, and each ROI's
    planes that lie closer together than the slices they stand for (their slabs overlap).

    Raises
    ------
    InvalidStructureError
        If the set's contours all lie on one plane (no slice spacing to be seen).
    """
    positions = sorted(p.z_mm for planes in rois for p in planes)
    if not positions:
        return rois, [() for _ in rois]
    set_planes = [positions[0]]
    for z in positions[1:]:
        if z - set_planes[-1] > PLANE_MERGE_TOLERANCE_MM:
            set_planes.append(z)
    if len(set_planes) < 2:
        raise InvalidStructureError(
            f"{source}: cannot tell the slice spacing: every contour of the structure set lies "
            f"on the plane z = {set_planes[0]:g} mm"
        )
    bottom, top = slab_bounds(set_planes)
    # The set's planes are the chains of positions closer than the merge tolerance; an ROI's
    # plane lies on the last set plane that starts at or below it.
    starts = np.array(set_planes)
    result, overlaps = [], []
    for planes in rois:
        index = np.searchsorted(starts, [p.z_mm for p in planes], side="right") - 1
        result.append(
            tuple(
                ContourPlane(p.z_mm, p.polygons, float(bottom[k]), float(top[k]))
                for p, k in zip(planes, index, strict=True)
            )
        )
        overlaps.append(_overlapping(result[-1]))
    return result, overlaps


def _overlapping(planes: tuple[ContourPlane, ...]) -> tuple[str, ...]:
    """The defect of an ROI whose consecutive planes stand for overlapping slabs: planes much
    closer than the slices around them (duplicated or misplaced contours), which would count
    the same volume twice."""
    for below, above in zip(planes, planes[1:], strict=False):
        if below.top_mm > above.bottom_mm + CONTIGUOUS_TOLERANCE_MM:
            return (
                f"contour planes z = {below.z_mm:g} and {above.z_mm:g} mm are "
                f"{above.z_mm - below.z_mm:.3g} mm apart, much closer than the "
                f"{below.top_mm - below.bottom_mm:.3g} mm slices they stand for "
                "(duplicated or misplaced contours)",
            )
    return ()
