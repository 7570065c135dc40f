"""RTSTRUCT regions of interest as stacks of planar polygons.

Each ROI is a sequence of axial planes; the contours on one plane combine by the even-odd rule
(an inner contour is a hole), and each plane stands for the slab of the slice it was drawn on,
found from the planes of the whole structure set (:mod:`rtcheck.slabs`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from rtcheck.decimals import parse_plain_decimals
from rtcheck.errors import InvalidStructureError
from rtcheck.slabs import EndCaps, capped_bounds, slab_bounds

#: Contours whose z coordinates spread more than this (mm) are not axial and are skipped.
PLANARITY_TOLERANCE_MM = 0.05
#: Contour planes closer than this (mm) are the same plane.
PLANE_MERGE_TOLERANCE_MM = 0.01

_CLOSED_TYPES = {"CLOSED_PLANAR", "CLOSEDPLANAR_XOR"}
_CONTOUR_DATA = Tag(0x3006, 0x0050)
_GEOMETRIC_TYPE = Tag(0x3006, 0x0042)


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
    """

    number: int
    name: str
    interpreted_type: str
    planes: tuple[ContourPlane, ...]
    warnings: tuple[str, ...]

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
    names: dict[int, str] = {}
    for item in ds.StructureSetROISequence:
        names[int(item.ROINumber)] = str(item.get("ROIName", f"ROI {item.ROINumber}"))
    types: dict[int, str] = {}
    for obs in ds.get("RTROIObservationsSequence", []):
        if "ReferencedROINumber" in obs:
            types[int(obs.ReferencedROINumber)] = str(obs.get("RTROIInterpretedType", "")).upper()
    contours: dict[int, Dataset] = {}
    for item in ds.get("ROIContourSequence", []):
        contours[int(item.ReferencedROINumber)] = item

    parsed: list[tuple[int, str, str, tuple[ContourPlane, ...], tuple[str, ...]]] = []
    for number, name in names.items():
        item = contours.get(number)
        planes, warnings = _read_planes(item, name) if item is not None else ((), ())
        parsed.append((number, name, types.get(number, ""), planes, warnings))
    with_slabs = _with_slabs([planes for *_, planes, _ in parsed], source)
    structures = tuple(
        Structure(number, name, kind, planes, warnings)
        for (number, name, kind, _, warnings), planes in zip(parsed, with_slabs, strict=True)
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


def _read_planes(item: Dataset, name: str) -> tuple[tuple[ContourPlane, ...], tuple[str, ...]]:
    """Group an ROI's closed planar contours by plane, skipping degenerate ones with a warning."""
    skipped: dict[str, int] = defaultdict(int)
    closed = []
    for contour in item.get("ContourSequence", []):
        kind = _geometric_type(contour)
        if kind not in _CLOSED_TYPES:
            skipped[f"{kind or 'untyped'} contour (only CLOSED_PLANAR is used)"] += 1
        else:
            closed.append(contour)
    arrays = []
    for values in _contour_data(closed):
        if values is None or values.size % 3 != 0:
            skipped["contour whose ContourData is missing or not in (x, y, z) triplets"] += 1
        else:
            arrays.append(values)
    contours = _polygons(arrays, skipped)
    warnings = tuple(
        f"ROI {name!r}: skipped {count} {what}" for what, count in sorted(skipped.items())
    )
    # Contours of one plane differ in z only by the rounding of their decimal strings.
    contours.sort(key=lambda item: item[0])
    groups: list[list[tuple[float, NDArray[np.float64]]]] = []
    for z, polygon in contours:
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
    return planes, warnings


def _polygons(
    arrays: list[NDArray[np.float64]], skipped: dict[str, int]
) -> list[tuple[float, NDArray[np.float64]]]:
    """Each contour's z (mm) and its (N, 2) polygon, from flat (x, y, z) values, all contours
    at once; degenerate and non-axial contours are counted in ``skipped``."""
    counts = np.array([a.size // 3 for a in arrays], dtype=np.intp)
    used = counts > 0
    if not used.all():
        skipped["contour with fewer than 3 points"] += int(np.count_nonzero(~used))
        arrays = [a for a, u in zip(arrays, used, strict=True) if u]
        counts = counts[used]
    if not arrays:
        return []
    points = np.concatenate(arrays).reshape(-1, 3)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lasts = starts + counts - 1
    keep = np.ones(len(points), dtype=bool)
    # An explicitly repeated first point adds nothing.
    repeated = (counts > 1) & np.all(points[starts] == points[lasts], axis=1)
    keep[lasts[repeated]] = False
    kept = counts - repeated
    z = points[:, 2]
    spread = np.maximum.reduceat(z, starts) - np.minimum.reduceat(z, starts)
    mean_z = np.add.reduceat(np.where(keep, z, 0.0), starts) / kept
    few = kept < 3
    tilted = ~few & (spread > PLANARITY_TOLERANCE_MM)
    if few.any():
        skipped["contour with fewer than 3 points"] += int(np.count_nonzero(few))
    if tilted.any():
        skipped["contour that is not on an axial plane"] += int(np.count_nonzero(tilted))
    xy = np.ascontiguousarray(points[keep][:, :2])
    polygons = np.split(xy, np.cumsum(kept)[:-1])
    good = ~(few | tilted)
    return [(float(mean_z[i]), polygons[i]) for i in np.flatnonzero(good)]


def _geometric_type(contour: Dataset) -> str:
    """ContourGeometricType, upper case ("" when absent), read from the raw bytes when it has
    not been converted yet (converting it costs more than its ContourData)."""
    element = contour.get_item(_GEOMETRIC_TYPE)
    if element is None:
        return ""
    if isinstance(element, RawDataElement):
        return bytes(element.value or b"").strip(b" \x00").decode("ascii", "replace").upper()
    return str(element.value or "").strip().upper()


def _contour_data(contours: list[Dataset]) -> list[NDArray[np.float64] | None]:
    """The ContourData of each contour as floats (mm), or None when absent or not numbers.

    The decimal strings are read from the raw bytes, those of all the contours in one pass
    (:func:`~rtcheck.decimals.parse_plain_decimals`); converting each value to a pydicom
    DSfloat costs ten times more on a large structure set.
    """
    raws: list[bytes | None] = []
    for contour in contours:
        element = contour.get_item(_CONTOUR_DATA)
        if isinstance(element, RawDataElement):
            raws.append(bytes(element.value or b"").strip(b" \x00") or None)
        else:
            raws.append(None)
    plain = [r for r in raws if r is not None]
    values = parse_plain_decimals(b"\\".join(plain)) if plain else None
    if values is not None:
        sizes = [r.count(b"\\") + 1 for r in plain]
        parts = iter(np.split(values, np.cumsum(sizes)[:-1]))
        return [
            next(parts) if r is not None else _one_contour_data(c)
            for r, c in zip(raws, contours, strict=True)
        ]
    return [_one_contour_data(c) for c in contours]


def _one_contour_data(contour: Dataset) -> NDArray[np.float64] | None:
    """ContourData as floats (mm) by the general path, or None when absent or not numbers."""
    element = contour.get_item(_CONTOUR_DATA)
    if element is None:
        return None
    try:
        if isinstance(element, RawDataElement):
            raw = bytes(element.value or b"").strip(b" \x00")
            if not raw:
                return None
            return np.array(raw.split(b"\\"), dtype=np.bytes_).astype(np.float64)
        return np.array([float(v) for v in np.atleast_1d(element.value)], dtype=np.float64)
    except (ValueError, TypeError):
        return None


def _with_slabs(
    rois: list[tuple[ContourPlane, ...]], source: str
) -> list[tuple[ContourPlane, ...]]:
    """Each ROI's planes with the slab of the structure set's plane they lie on.

    Raises
    ------
    InvalidStructureError
        If the set's contours all lie on one plane (no slice spacing to be seen).
    """
    positions = sorted(p.z_mm for planes in rois for p in planes)
    if not positions:
        return rois
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
    result = []
    for planes in rois:
        index = np.searchsorted(starts, [p.z_mm for p in planes], side="right") - 1
        result.append(
            tuple(
                replace(p, bottom_mm=float(bottom[k]), top_mm=float(top[k]))
                for p, k in zip(planes, index, strict=True)
            )
        )
    return result
