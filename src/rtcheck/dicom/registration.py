"""DICOM Spatial Registration objects: how a point of the current course's frame of reference is
found in an earlier course's.

PS3.3 C.20.2 (Spatial Registration, rigid and affine, SOP Class 1.2.840.10008.5.1.4.1.1.66.1):
each Registration Sequence item's matrix maps that item's Frame of Reference into the
registered one, the REG's own Frame of Reference. A point ``p_c`` of the current course is thus
``M_c p_c`` in the registered frame and ``M_p⁻¹ M_c p_c`` in the earlier course's: sampling the
earlier dose on the current grid uses the earlier item's matrix inverted.

PS3.3 C.20.3 (Deformable Spatial Registration, 1.2.840.10008.5.1.4.1.1.66.3): for a source
Frame of Reference, the pre-deformation matrix, the deformation vector grid and the
post-deformation matrix map registered coordinates to the source's (how to sample the source),
the other direction. rtcheck needs current → earlier, so the current course must be the
registered frame and the earlier one a source.

Items are found by Frame of Reference UID, never by their position. Coordinates are DICOM
patient coordinates (mm).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from rtcheck.dicom.files import is_regular_file, read_dicom, sop_class_of
from rtcheck.errors import InvalidInputError, RegistrationError
from rtcheck.logs import printable

RIGID_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
REGISTRATION_CLASSES = frozenset({RIGID_REGISTRATION, DEFORMABLE_REGISTRATION})

#: How far a RIGID matrix's rotation part may be from orthonormal (largest entry of RᵀR − I),
#: and its last row from (0, 0, 0, 1). Exporters write matrices at 6 decimals (plastimatch) or
#: as single-precision numbers (pydicomrt's float32): their rounding is about 1e-6.
ORTHONORMAL_TOLERANCE = 1e-4
#: How far a pre- or post-deformation matrix may be from the identity (entries; mm for the
#: translation column) to count as none.
IDENTITY_TOLERANCE = 1e-4
#: The matrix types of PS3.3 C.20.2.1.1.
MATRIX_TYPES = ("RIGID", "RIGID_SCALE", "AFFINE")
#: Largest deformation vector grid read (vectors).
MAX_GRID_VECTORS = 50_000_000

#: Maps points of the current course's frame (N, 3) to the earlier course's (N, 3), in mm.
PointMap = Callable[[NDArray[np.float64]], NDArray[np.float64]]


@dataclass(frozen=True)
class MatrixItem:
    """One Registration Sequence item: the 4×4 matrix that maps ``frame_of_reference_uid``
    into the registered frame, row-major."""

    frame_of_reference_uid: str
    matrix_type: str
    matrix: tuple[tuple[float, ...], ...]

    @property
    def array(self) -> NDArray[np.float64]:
        """The matrix as a 4×4 array."""
        return np.array(self.matrix, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class DeformationGrid:
    """A deformation vector grid of a Deformable Spatial Registration: vectors (mm) that move a
    registered point to the source frame, on a regular grid.

    Attributes
    ----------
    source_frame_uid
        The source's Frame of Reference UID.
    origin_mm
        Position of the first grid point (ImagePositionPatient).
    axes
        Direction cosines of the grid's columns, rows and slices (3 × 3, one per row).
    spacing_mm
        GridResolution: the spacing along the three axes.
    vectors_mm
        Shape ``(slices, rows, columns, 3)``.
    """

    source_frame_uid: str
    origin_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    spacing_mm: NDArray[np.float64]
    vectors_mm: NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Registration:
    """A Spatial Registration (rigid) or Deformable Spatial Registration object, as read.

    Attributes
    ----------
    path
        The file it was read from.
    sop_instance_uid
        Its SOPInstanceUID.
    kind
        ``rigid`` (the Spatial Registration class, RIGID, RIGID_SCALE or AFFINE matrices) or
        ``deformable``.
    frame_of_reference_uid
        The registered frame: the REG's own FrameOfReferenceUID.
    manufacturer, creator
        Manufacturer and ContentCreatorName, as written (may be empty).
    patient_id
        Its PatientID.
    items
        The matrix items (rigid), by frame.
    deformations
        The deformation grids (deformable), by source frame.
    """

    path: str
    sop_instance_uid: str
    kind: str
    frame_of_reference_uid: str
    manufacturer: str
    creator: str
    patient_id: str
    items: tuple[MatrixItem, ...] = ()
    deformations: tuple[DeformationGrid, ...] = ()

    def frames(self) -> frozenset[str]:
        """Every frame the object relates (the registered one included)."""
        sources = {d.source_frame_uid for d in self.deformations}
        return frozenset(
            {self.frame_of_reference_uid, *(i.frame_of_reference_uid for i in self.items), *sources}
        )

    def relates(self, current_frame: str, earlier_frame: str) -> bool:
        """True when the object places both frames."""
        return {current_frame, earlier_frame} <= self.frames()

    def item(self, frame_uid: str) -> MatrixItem | None:
        """The item of ``frame_uid``; None where there is none."""
        return next((i for i in self.items if i.frame_of_reference_uid == frame_uid), None)

    def point_map(self, current_frame: str, earlier_frame: str) -> PointMap:
        """The map from the current course's frame to the earlier course's.

        Raises
        ------
        RegistrationError
            If the object does not relate the two frames, or relates them only the other way
            (a deformation whose registered frame is the earlier course's).
        """
        if self.kind == "deformable":
            return self._deformable_map(current_frame, earlier_frame)
        current = self._matrix_of(current_frame)
        earlier = self._matrix_of(earlier_frame)
        combined = np.linalg.solve(earlier, current)  # M_p⁻¹ M_c

        def mapped(points: NDArray[np.float64]) -> NDArray[np.float64]:
            moved: NDArray[np.float64] = points @ combined[:3, :3].T + combined[:3, 3]
            return moved

        return mapped

    def _matrix_of(self, frame_uid: str) -> NDArray[np.float64]:
        item = self.item(frame_uid)
        if item is not None:
            return item.array
        if frame_uid == self.frame_of_reference_uid:
            return np.eye(4)  # the registered frame itself, when no identity item is written
        raise RegistrationError(
            f"{self.path}: the registration has no item for frame of reference {frame_uid} "
            f"(it relates {', '.join(sorted(self.frames()))})"
        )

    def _deformable_map(self, current_frame: str, earlier_frame: str) -> PointMap:
        grid = next((d for d in self.deformations if d.source_frame_uid == earlier_frame), None)
        if current_frame != self.frame_of_reference_uid or grid is None:
            backwards = any(d.source_frame_uid == current_frame for d in self.deformations)
            if backwards and self.frame_of_reference_uid == earlier_frame:
                raise RegistrationError(
                    f"{self.path}: the deformation maps the earlier course's frame to the "
                    "current one's; rtcheck samples the earlier dose at the current course's "
                    "points and needs the other direction (the current course registered, the "
                    "earlier one the source): export the registration the other way"
                )
            raise RegistrationError(
                f"{self.path}: the deformable registration does not map frame {current_frame} "
                f"(the current course) to {earlier_frame} (the earlier one); it registers "
                f"{', '.join(sorted(d.source_frame_uid for d in self.deformations))} to "
                f"{self.frame_of_reference_uid}"
            )
        return lambda points: deform(grid, points)


def deform(grid: DeformationGrid, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Points (N, 3) moved by the grid's vectors, trilinearly interpolated; beyond the grid the
    nearest edge vector is used (:func:`outside_deformation` counts those points)."""
    index = _grid_index(grid, points_mm)
    shape = np.array(grid.vectors_mm.shape[2::-1], dtype=np.float64)  # columns, rows, slices
    index = np.clip(index, 0.0, shape - 1)
    low = np.minimum(np.floor(index).astype(np.intp), np.maximum(shape.astype(np.intp) - 2, 0))
    frac = index - low
    high = np.minimum(low + 1, shape.astype(np.intp) - 1)
    moved = np.array(points_mm, dtype=np.float64, copy=True)
    v = grid.vectors_mm
    for corner in range(8):
        pick = [(corner >> axis) & 1 for axis in range(3)]
        ix = np.where(pick[0], high[:, 0], low[:, 0])
        iy = np.where(pick[1], high[:, 1], low[:, 1])
        iz = np.where(pick[2], high[:, 2], low[:, 2])
        weight = np.ones(len(points_mm))
        for axis in range(3):
            weight *= frac[:, axis] if pick[axis] else 1.0 - frac[:, axis]
        moved += weight[:, None] * v[iz, iy, ix].astype(np.float64)
    return moved


def outside_deformation(grid: DeformationGrid, points_mm: NDArray[np.float64]) -> int:
    """How many of the points lie beyond the deformation grid (by more than 1 µm)."""
    index = _grid_index(grid, points_mm)
    shape = np.array(grid.vectors_mm.shape[2::-1], dtype=np.float64)
    slack = 1e-3 / grid.spacing_mm
    beyond = (index < -slack) | (index > shape - 1 + slack)
    return int(beyond.any(axis=1).sum())


def _grid_index(grid: DeformationGrid, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fractional (column, row, slice) of each point."""
    local = (np.asarray(points_mm, dtype=np.float64) - grid.origin_mm) @ grid.axes.T
    return np.asarray(local / grid.spacing_mm, dtype=np.float64)


def read_registration(path: str | os.PathLike[str]) -> Registration:
    """Read a Spatial Registration or Deformable Spatial Registration object.

    Raises
    ------
    InvalidInputError
        If the file is not DICOM, or not a registration object.
    RegistrationError
        If the object cannot be used safely (see the module's refusals).
    """
    name = str(path)
    if not is_regular_file(name):
        what = "no such file" if not os.path.exists(name) else "not a regular file"
        raise InvalidInputError(f"{name}: {what} (a registration object is a DICOM file)")
    try:
        ds, _ = read_dicom(name)
    except InvalidInputError:
        raise
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise InvalidInputError(f"{name}: unreadable DICOM file ({exc})") from exc
    return registration_from(ds, name)


def registration_from(ds: Dataset, path: str) -> Registration:
    """A registration object from its dataset (see :func:`read_registration`)."""
    sop_class = sop_class_of(ds)
    if sop_class not in REGISTRATION_CLASSES:
        raise InvalidInputError(
            f"{path}: not a Spatial Registration object (SOP Class {sop_class or 'missing'})"
        )
    has_matrices = "RegistrationSequence" in ds
    has_grids = "DeformableRegistrationSequence" in ds
    if sop_class == RIGID_REGISTRATION and has_grids:
        raise RegistrationError(
            f"{path}: a Spatial Registration (rigid) object holding a "
            "DeformableRegistrationSequence: a deformable registration is not read as rigid"
        )
    if sop_class == DEFORMABLE_REGISTRATION and not has_grids:
        raise RegistrationError(
            f"{path}: a Deformable Spatial Registration without a DeformableRegistrationSequence"
        )
    if sop_class == RIGID_REGISTRATION and not has_matrices:
        raise RegistrationError(f"{path}: a Spatial Registration without a RegistrationSequence")
    frame = str(ds.get("FrameOfReferenceUID", "")).strip()
    if not frame:
        raise RegistrationError(f"{path}: the registration states no FrameOfReferenceUID")
    header = (
        path,
        str(ds.get("SOPInstanceUID", "")),
        "rigid" if sop_class == RIGID_REGISTRATION else "deformable",
        frame,
        _shown(ds.get("Manufacturer")),
        _shown(ds.get("ContentCreatorName")),
        str(ds.get("PatientID", "") or ""),
    )
    if sop_class == RIGID_REGISTRATION:
        items = tuple(
            _matrix_item(item, f"{path}: RegistrationSequence item {i}")
            for i, item in enumerate(ds.RegistrationSequence, start=1)
        )
        seen: set[str] = set()
        for item in items:
            if item.frame_of_reference_uid in seen:
                raise RegistrationError(
                    f"{path}: two RegistrationSequence items for frame "
                    f"{item.frame_of_reference_uid}: cannot tell which applies"
                )
            seen.add(item.frame_of_reference_uid)
        return Registration(*header, items=items)
    grids = tuple(
        _deformation(item, f"{path}: DeformableRegistrationSequence item {i}")
        for i, item in enumerate(ds.DeformableRegistrationSequence, start=1)
    )
    return Registration(*header, deformations=tuple(g for g in grids if g is not None))


def _matrix_item(item: Dataset, where: str) -> MatrixItem:
    frame = str(item.get("FrameOfReferenceUID", "")).strip()
    if not frame:
        raise RegistrationError(f"{where}: no FrameOfReferenceUID")
    registrations = item.get("MatrixRegistrationSequence") or []
    if len(registrations) != 1:
        raise RegistrationError(
            f"{where}: {len(registrations)} MatrixRegistrationSequence items; one is read"
        )
    matrices = registrations[0].get("MatrixSequence") or []
    if len(matrices) != 1:
        raise RegistrationError(
            f"{where}: {len(matrices)} matrices in one item; composing several is not done "
            "(one matrix per item is read)"
        )
    return MatrixItem(frame, *_checked_matrix(matrices[0], where))


def _checked_matrix(ds: Dataset, where: str) -> tuple[str, tuple[tuple[float, ...], ...]]:
    """The matrix type and the 4×4 matrix, checked as PS3.3 C.20.2.1.1 defines the types."""
    values = ds.get("FrameOfReferenceTransformationMatrix")
    try:
        numbers = [float(v) for v in (values or [])]
    except (TypeError, ValueError):
        raise RegistrationError(f"{where}: the matrix holds a value that is not a number") from None
    if len(numbers) != 16 or not all(np.isfinite(numbers)):
        raise RegistrationError(f"{where}: the matrix needs 16 finite numbers, not {len(numbers)}")
    kind = str(ds.get("FrameOfReferenceTransformationMatrixType", "") or "").strip().upper()
    if kind not in MATRIX_TYPES:
        raise RegistrationError(
            f"{where}: FrameOfReferenceTransformationMatrixType {kind or '(missing)'} "
            f"(one of {', '.join(MATRIX_TYPES)})"
        )
    matrix = np.array(numbers).reshape(4, 4)
    last = float(np.abs(matrix[3] - (0.0, 0.0, 0.0, 1.0)).max())
    if last > ORTHONORMAL_TOLERANCE:
        raise RegistrationError(
            f"{where}: the matrix's last row is {_row(matrix[3])}, not (0, 0, 0, 1) (tolerance "
            f"{ORTHONORMAL_TOLERANCE:g})"
        )
    rotation = matrix[:3, :3]
    if kind == "RIGID":
        off = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
        if off > ORTHONORMAL_TOLERANCE or np.linalg.det(rotation) < 0:
            raise RegistrationError(
                f"{where}: a RIGID matrix whose rotation is not orthonormal with determinant +1 "
                f"(RᵀR departs from I by {off:.2g}, tolerance {ORTHONORMAL_TOLERANCE:g}; "
                f"determinant {np.linalg.det(rotation):.4g})"
            )
    elif abs(np.linalg.det(rotation)) < 1e-6:
        raise RegistrationError(f"{where}: the {kind} matrix cannot be inverted")
    return kind, tuple(tuple(float(v) for v in row) for row in matrix)


def _deformation(item: Dataset, where: str) -> DeformationGrid | None:
    source = str(item.get("SourceFrameOfReferenceUID", "")).strip()
    if not source:
        raise RegistrationError(f"{where}: no SourceFrameOfReferenceUID")
    for name in (
        "PreDeformationMatrixRegistrationSequence",
        "PostDeformationMatrixRegistrationSequence",
    ):
        for matrix_item in item.get(name) or []:
            _, matrix = _checked_matrix(matrix_item, f"{where}: {name}")
            off = float(np.abs(np.array(matrix) - np.eye(4)).max())
            if off > IDENTITY_TOLERANCE:
                raise RegistrationError(
                    f"{where}: a {name.removesuffix('RegistrationSequence')} that is not the "
                    f"identity (departs by {off:.3g}); such objects are refused until tested on "
                    "real exports"
                )
    grids = item.get("DeformableRegistrationGridSequence") or []
    if not grids:
        return None  # an item that registers without deformation (the registered frame itself)
    if len(grids) != 1:
        raise RegistrationError(f"{where}: {len(grids)} deformation grids; one is read")
    grid = grids[0]
    try:
        origin = np.array([float(v) for v in grid.ImagePositionPatient], dtype=np.float64)
        cosines = np.array([float(v) for v in grid.ImageOrientationPatient], dtype=np.float64)
        dims = [int(v) for v in grid.GridDimensions]
        spacing = np.array([float(v) for v in grid.GridResolution], dtype=np.float64)
        raw = grid.VectorGridData
    except (AttributeError, TypeError, ValueError) as exc:
        raise RegistrationError(f"{where}: deformation grid incomplete ({exc})") from None
    if origin.shape != (3,) or cosines.shape != (6,) or len(dims) != 3 or spacing.shape != (3,):
        raise RegistrationError(f"{where}: deformation grid geometry malformed")
    if not (np.all(np.isfinite(origin)) and np.all(np.isfinite(cosines))):
        raise RegistrationError(
            f"{where}: the deformation grid's ImagePositionPatient or ImageOrientationPatient "
            "holds a value that is not a finite number"
        )
    if min(dims) < 1 or not np.all(spacing > 0) or not np.all(np.isfinite(spacing)):
        raise RegistrationError(
            f"{where}: deformation grid of {dims} points spaced {spacing.tolist()} mm"
        )
    count = dims[0] * dims[1] * dims[2]
    if count > MAX_GRID_VECTORS:
        raise RegistrationError(
            f"{where}: {count} deformation vectors (at most {MAX_GRID_VECTORS})"
        )
    row, column = cosines[:3], cosines[3:]
    if (
        abs(float(row @ column)) > ORTHONORMAL_TOLERANCE
        or abs(float(row @ row) - 1) > ORTHONORMAL_TOLERANCE
        or abs(float(column @ column) - 1) > ORTHONORMAL_TOLERANCE
    ):
        raise RegistrationError(
            f"{where}: ImageOrientationPatient is not two orthonormal directions"
        )
    vectors = np.frombuffer(bytes(raw), dtype="<f4")
    if vectors.size != 3 * count:
        raise RegistrationError(
            f"{where}: VectorGridData holds {vectors.size} values; {dims[0]}×{dims[1]}×{dims[2]} "
            f"points need {3 * count}"
        )
    if not np.all(np.isfinite(vectors)):
        raise RegistrationError(f"{where}: VectorGridData holds values that are not finite")
    # GridDimensions is (columns, rows, slices); the vectors run x fastest.
    shaped = vectors.reshape(dims[2], dims[1], dims[0], 3)
    axes = np.stack([row, column, np.cross(row, column)])
    return DeformationGrid(source, origin, axes, spacing, shaped)


def _shown(value: object) -> str:
    """A text of the file as rtcheck shows it: one line of printable characters, at most 64."""
    return printable(value or "")[:64]


def _row(values: NDArray[np.float64]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
