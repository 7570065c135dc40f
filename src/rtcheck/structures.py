"""RTSTRUCT regions of interest as stacks of planar polygons.

Each ROI is a sequence of axial planes; the contours on one plane combine by the even-odd rule
(an inner contour is a hole), and a plane at ``z`` stands for the slab ``z ± t/2``, where ``t``
is the ROI's contour plane spacing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from rtcheck.decimals import parse_plain_decimals
from rtcheck.errors import InvalidStructureError

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
    """

    z_mm: float
    polygons: tuple[NDArray[np.float64], ...]


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
        Contour planes sorted by z.
    slab_thickness_mm
        Contour plane spacing ``t`` (mm): each plane stands for ``z ± t/2``.
    warnings
        What was skipped while reading the ROI (degenerate or non-axial contours...).
    """

    number: int
    name: str
    interpreted_type: str
    planes: tuple[ContourPlane, ...]
    slab_thickness_mm: float
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

    def z_extent_mm(self) -> tuple[float, float]:
        """Lowest and highest z (mm) of the slabs the ROI covers."""
        half = self.slab_thickness_mm / 2
        return (self.planes[0].z_mm - half, self.planes[-1].z_mm + half)


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

    parsed: list[tuple[int, str, str, tuple[ContourPlane, ...], float | None, tuple[str, ...]]] = []
    for number, name in names.items():
        item = contours.get(number)
        planes, warnings = _read_planes(item, name) if item is not None else ((), ())
        parsed.append(
            (number, name, types.get(number, ""), planes, _plane_spacing(planes), warnings)
        )

    # A ROI on a single plane takes the spacing that the other ROIs of the set use.
    spacings = [t for *_, t, _ in parsed if t is not None]
    default_spacing = float(np.median(spacings)) if spacings else None
    structures = []
    for number, name, kind, planes, spacing, warnings in parsed:
        thickness = spacing if spacing is not None else default_spacing
        if thickness is None:
            if planes:
                raise InvalidStructureError(
                    f"{source}: cannot tell the contour plane spacing of ROI {name!r}: "
                    "every ROI of the structure set has a single plane"
                )
            thickness = 0.0
        structures.append(Structure(number, name, kind, planes, thickness, warnings))

    frame_uid = ""
    if "ReferencedFrameOfReferenceSequence" in ds and ds.ReferencedFrameOfReferenceSequence:
        frame_uid = str(ds.ReferencedFrameOfReferenceSequence[0].get("FrameOfReferenceUID", ""))
    return StructureSet(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        frame_of_reference_uid=frame_uid,
        label=str(ds.get("StructureSetLabel", "")),
        structures=tuple(structures),
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
    planes = tuple(
        ContourPlane(
            g[0][0] if len(g) == 1 else float(np.mean([z for z, _ in g])),
            tuple(p for _, p in g),
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


def _plane_spacing(planes: tuple[ContourPlane, ...]) -> float | None:
    """The typical distance (mm) between consecutive contour planes, or None for < 2 planes."""
    if len(planes) < 2:
        return None
    steps = np.diff([p.z_mm for p in planes])
    return float(np.median(steps))
