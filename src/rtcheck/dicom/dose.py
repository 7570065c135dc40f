"""RTDOSE grids: reading, validation, summation and trilinear interpolation.

A :class:`DoseGrid` holds the dose in Gy on an axis-aligned grid whose three axes are sorted in
increasing patient coordinates (mm), whatever the orientation and frame order of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from rtcheck.caps import DOSE_VOXELS
from rtcheck.dicom.values import integer, number, numbers
from rtcheck.errors import InvalidDoseError

#: Distance (mm) within which a point still counts as inside the grid's outermost planes; it
#: absorbs the rounding of decimal strings (DS) in the file, nothing more.
GRID_EDGE_TOLERANCE_MM = 1e-3

_DIRECTION_TOLERANCE = 1e-4
#: Coordinates (mm) beyond this are typos, not patients (100 m).
POSITION_LIMIT_MM = 1e5
#: Doses (Gy) beyond this are a wrong DoseGridScaling or corrupt pixel data, not a plan.
MAX_DOSE_GY = 10_000.0
#: The finest in-plane dose grid spacing accepted (mm): calculation grids are 1 to 5 mm, and
#: small-field ones 0.5 mm; finer is a typo, which would make every DVH enormous.
MIN_SPACING_MM = 0.1

FloatArray = NDArray[np.float64]
_Fail = Callable[[str], InvalidDoseError]


@dataclass(frozen=True, eq=False)
class DoseGrid:
    """A dose distribution on a rectilinear, axis-aligned grid.

    Attributes
    ----------
    x_mm, y_mm, z_mm
        Grid point coordinates (mm) along the patient x, y and z axes, strictly increasing.
        x and y are evenly spaced; z may be uneven (GridFrameOffsetVector).
    dose_gy
        Dose (Gy) with shape ``(len(z_mm), len(y_mm), len(x_mm))``.
    frame_of_reference_uid
        The grid's FrameOfReferenceUID.
    summation_type
        DoseSummationType of the source (``PLAN``, ``BEAM``, ``FRACTION``...).
    """

    x_mm: FloatArray
    y_mm: FloatArray
    z_mm: FloatArray
    dose_gy: NDArray[np.float32]
    frame_of_reference_uid: str
    summation_type: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of (frames, rows, columns)."""
        return (len(self.z_mm), len(self.y_mm), len(self.x_mm))

    @property
    def max_gy(self) -> float:
        """Highest dose of the grid (Gy)."""
        return float(self.dose_gy.max()) if self.dose_gy.size else 0.0

    def same_geometry(self, other: DoseGrid) -> bool:
        """True when ``other`` has the same grid points (to 1 µm)."""
        return all(
            a.shape == b.shape and np.allclose(a, b, rtol=0, atol=GRID_EDGE_TOLERANCE_MM)
            for a, b in ((self.x_mm, other.x_mm), (self.y_mm, other.y_mm), (self.z_mm, other.z_mm))
        )

    def with_dose(self, dose_gy: NDArray[np.float32], summation_type: str) -> DoseGrid:
        """A grid with the same geometry and another dose array."""
        return DoseGrid(
            self.x_mm, self.y_mm, self.z_mm, dose_gy, self.frame_of_reference_uid, summation_type
        )


@dataclass(frozen=True, eq=False)
class AxisInterpolation:
    """Linear interpolation along one axis of a grid, at a set of points.

    The value at point ``i`` is ``below[i] * v[index[i]] + above[i] * v[index[i] + 1]`` and
    its slope (per mm) is ``per_mm[i] * (v[index[i] + 1] - v[index[i]])``, taken within the
    grid interval that holds the point. Points outside the grid have zero weights and slope.
    With a single grid point, ``index + 1`` is to be read as ``index``.
    """

    index: NDArray[np.intp]
    below: FloatArray
    above: FloatArray
    per_mm: FloatArray
    inside: NDArray[np.bool_]

    def support(self) -> slice:
        """The grid points that carry weight: ``index`` of the first inside point to
        ``index + 1`` of the last (an empty slice when none is inside)."""
        used = self.index[self.inside]
        if used.size == 0:
            return slice(0, 0)
        return slice(int(used.min()), int(used.max()) + 2)


def interpolation_along(grid: FloatArray, points: FloatArray) -> AxisInterpolation:
    """Linear interpolation from the (increasing) coordinates ``grid`` to ``points`` (mm)."""
    n = len(grid)
    inside = (points >= grid[0] - GRID_EDGE_TOLERANCE_MM) & (
        points <= grid[-1] + GRID_EDGE_TOLERANCE_MM
    )
    if n == 1:
        zeros = np.zeros(len(points))
        return AxisInterpolation(
            np.zeros(len(points), dtype=np.intp), inside.astype(np.float64), zeros, zeros, inside
        )
    index = np.clip(np.searchsorted(grid, points, side="right") - 1, 0, n - 2)
    step = grid[index + 1] - grid[index]
    above = np.clip((points - grid[index]) / step, 0.0, 1.0) * inside
    below = (1.0 - above) * inside
    return AxisInterpolation(index, below, above, inside / step, inside)


def sum_grids(grids: list[DoseGrid], summation_type: str) -> DoseGrid:
    """Voxel-wise sum of dose grids that share one geometry.

    Raises
    ------
    InvalidDoseError
        If the grids differ in geometry or frame of reference.
    """
    first = grids[0]
    total = first.dose_gy.astype(np.float64)
    for other in grids[1:]:
        if other.frame_of_reference_uid != first.frame_of_reference_uid:
            raise InvalidDoseError("cannot sum dose grids in different frames of reference")
        if not first.same_geometry(other):
            raise InvalidDoseError(
                "cannot sum dose grids of different geometry (size, position or spacing differ)"
            )
        total += other.dose_gy
    return first.with_dose(total.astype(np.float32), summation_type)


def read_dose_grid(ds: Dataset, source: str) -> DoseGrid:
    """Build a :class:`DoseGrid` from an RTDOSE dataset, refusing what cannot be trusted.

    Parameters
    ----------
    ds
        The RTDOSE dataset, with its pixel data.
    source
        How to name the file in error messages (its path).

    Raises
    ------
    InvalidDoseError
        On relative dose units, an oblique grid, inconsistent grid attributes, or pixel data whose
        size does not match the declared grid.
    """

    def fail(message: str) -> InvalidDoseError:
        return InvalidDoseError(f"{source}: {message}")

    units = str(ds.get("DoseUnits", "")).upper()
    if units != "GY":
        raise fail(f"DoseUnits is {units or 'missing'}; only absolute dose in GY is supported")
    if str(ds.get("DoseType", "")).upper() == "ERROR":
        raise fail("DoseType ERROR (a dose difference) is not a dose distribution")
    for keyword in (
        "Rows",
        "Columns",
        "PixelSpacing",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "DoseGridScaling",
        "BitsAllocated",
        "PixelData",
    ):
        if keyword not in ds or ds[keyword].value is None:
            raise fail(f"{keyword} is missing")

    rows = integer(ds, "Rows", fail, smallest=1, largest=65535)
    cols = integer(ds, "Columns", fail, smallest=1, largest=65535)
    frames = integer(ds, "NumberOfFrames", fail, smallest=1, largest=65535, default=1)
    DOSE_VOXELS.check(frames * rows * cols, f"{source}: the RTDOSE grid of {frames}x{rows}x{cols}")
    spacing = numbers(ds, "PixelSpacing", 2, fail, positive=True, largest=1000.0)
    if min(spacing) < MIN_SPACING_MM:
        shown = ", ".join(f"{v:g}" for v in spacing)
        raise fail(
            f"PixelSpacing [{shown}] mm is finer than {MIN_SPACING_MM:g} mm, which no dose "
            "calculation uses (a typo?); every DVH would need millions of samples per plane"
        )
    position = numbers(ds, "ImagePositionPatient", 3, fail, largest=POSITION_LIMIT_MM)
    orientation = np.array(numbers(ds, "ImageOrientationPatient", 6, fail, largest=1.5))
    # Rows and columns along the patient's x and y axes, in any order and sense (supine,
    # prone, feet-first, decubitus): a permutation and flips of the axes, handled exactly below.
    # Anything else is oblique, or not axial, and refused.
    along_row = _patient_axis(orientation[:3])
    along_column = _patient_axis(orientation[3:])
    if along_row is None or along_column is None or along_row[0] == along_column[0]:
        shown = ", ".join(f"{v:g}" for v in orientation)
        raise fail(
            f"ImageOrientationPatient [{shown}] is oblique or not axial: only dose grids whose "
            "rows and columns run along the patient's x and y axes are supported"
        )
    (row_axis, row_sign), (_, column_sign) = along_row, along_column
    normal = row_sign * column_sign * (1.0 if row_axis == 0 else -1.0)  # (row x column) . z

    offsets = _frame_offsets(ds, frames, position[2], fail)
    z = position[2] + normal * offsets if offsets[0] == 0.0 or frames == 1 else offsets
    # Along a row, columns are PixelSpacing[1] apart; down a column, rows are PixelSpacing[0].
    across_columns = position[row_axis] + row_sign * spacing[1] * np.arange(cols)
    down_rows = position[1 - row_axis] + column_sign * spacing[0] * np.arange(rows)

    scaling = number(ds, "DoseGridScaling", fail, positive=True, largest=MAX_DOSE_GY)
    raw = _pixel_values(ds, frames, rows, cols, fail)
    # Scaled in float64 and stored compactly: numpy multiplies in float64 buffers of a few
    # thousand values and rounds each into the float32 grid, with no whole-grid float64 copy.
    dose = np.empty(raw.shape, dtype=np.float32)
    np.multiply(raw, scaling, out=dose, casting="unsafe")
    if dose.size and float(dose.min()) < 0:
        raise fail("the dose grid holds negative doses")
    if dose.size and float(dose.max()) > MAX_DOSE_GY:
        raise fail(
            f"the dose grid reaches {float(dose.max()):.4g} Gy, more than {MAX_DOSE_GY:g} Gy: "
            "DoseGridScaling or the pixel data is wrong"
        )

    if row_axis == 0:
        x, y = across_columns, down_rows
    else:  # rows run along y: columns hold y, rows hold x
        y, x, dose = across_columns, down_rows, dose.transpose(0, 2, 1)
    # Sort every axis increasingly so that interpolation can use searchsorted.
    if x[-1] < x[0]:
        x, dose = x[::-1], dose[:, :, ::-1]
    if y[-1] < y[0]:
        y, dose = y[::-1], dose[:, ::-1, :]
    if np.any(np.diff(z) < 0):  # (reordering copies the whole grid: only where needed)
        order = np.argsort(z, kind="stable")
        z, dose = z[order], dose[order]
    if frames > 1 and np.any(np.diff(z) <= 0):
        raise fail("GridFrameOffsetVector has repeated frame positions")
    return DoseGrid(
        x_mm=np.ascontiguousarray(x, dtype=np.float64),
        y_mm=np.ascontiguousarray(y, dtype=np.float64),
        z_mm=np.ascontiguousarray(z, dtype=np.float64),
        dose_gy=np.ascontiguousarray(dose),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        summation_type=str(ds.get("DoseSummationType", "")).upper(),
    )


def _patient_axis(direction: FloatArray) -> tuple[int, float] | None:
    """The patient axis (0 for x, 1 for y) a unit direction runs along, and its sense (±1);
    None when it runs along neither."""
    for axis in (0, 1):
        others = [v for i, v in enumerate(direction) if i != axis]
        if abs(abs(direction[axis]) - 1) < _DIRECTION_TOLERANCE and all(
            abs(v) < _DIRECTION_TOLERANCE for v in others
        ):
            return axis, float(np.sign(direction[axis]))
    return None


def _frame_offsets(ds: Dataset, frames: int, z0: float, fail: _Fail) -> FloatArray:
    """GridFrameOffsetVector as an array (mm), checked against NumberOfFrames."""
    if "GridFrameOffsetVector" not in ds or ds.GridFrameOffsetVector is None:
        if frames == 1:
            return np.zeros(1)
        raise fail("GridFrameOffsetVector is missing for a multi-frame grid")
    offsets = np.array(numbers(ds, "GridFrameOffsetVector", None, fail, largest=POSITION_LIMIT_MM))
    if len(offsets) != frames:
        raise fail(f"GridFrameOffsetVector has {len(offsets)} values for NumberOfFrames {frames}")
    # DICOM allows relative offsets (first value 0) or absolute z positions (first value equal to
    # ImagePositionPatient z); anything else is ambiguous.
    if frames > 1 and offsets[0] != 0.0 and abs(offsets[0] - z0) > GRID_EDGE_TOLERANCE_MM:
        raise fail(
            f"GridFrameOffsetVector starts at {offsets[0]}, neither 0 (relative) nor the "
            f"ImagePositionPatient z {z0} (absolute)"
        )
    steps = np.diff(offsets)
    if frames > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
        raise fail("GridFrameOffsetVector is not strictly monotonic")
    return offsets


_NATIVE = {
    "1.2.840.10008.1.2": "<",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1": "<",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99": "<",  # Deflated Explicit VR Little Endian (inflated on reading)
    "1.2.840.10008.1.2.2": ">",  # Explicit VR Big Endian
}
#: Lossless compressed transfer syntaxes, decoded by pydicom: RLE natively, the JPEG family with
#: the optional ``jpeg`` extra (pylibjpeg and its libjpeg and openjpeg plugins).
LOSSLESS_COMPRESSED = frozenset(
    {
        "1.2.840.10008.1.2.5",  # RLE Lossless
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    }
)


#: Every transfer syntax an RTDOSE can be read in (the lossless JPEG family with the extra).
READABLE_SYNTAXES = frozenset(_NATIVE) | LOSSLESS_COMPRESSED


def _pixel_values(
    ds: Dataset, frames: int, rows: int, cols: int, fail: _Fail
) -> NDArray[np.integer[Any]]:
    """The stored pixel values, after checking that the data is exactly the declared size.

    Native and losslessly compressed pixel data are read; lossy compression is refused, because
    it changes the dose values themselves.
    """
    bits = integer(ds, "BitsAllocated", fail)
    if bits not in (16, 32):
        raise fail(f"BitsAllocated {bits} is not supported (16 or 32)")
    if integer(ds, "SamplesPerPixel", fail, default=1) != 1:
        raise fail("SamplesPerPixel must be 1")
    signed = integer(ds, "PixelRepresentation", fail, smallest=0, default=0) == 1
    expected = frames * rows * cols * bits // 8
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta else ""
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        raise fail("the dose was compressed lossily (LossyImageCompression 01): its values changed")
    if transfer_syntax and transfer_syntax not in _NATIVE:
        return _decoded_values(ds, transfer_syntax, frames, rows, cols, fail)
    data = ds.PixelData
    # The value is padded to an even length, so one extra byte is allowed.
    if len(data) not in (expected, expected + 1):
        raise fail(
            f"pixel data is {len(data)} bytes but the grid declares {frames}x{rows}x{cols} "
            f"values of {bits} bits ({expected} bytes): truncated or inconsistent file"
        )
    byteorder = _NATIVE.get(transfer_syntax, "<")
    dtype = np.dtype(f"{byteorder}{'i' if signed else 'u'}{bits // 8}")
    values = np.frombuffer(data, dtype=dtype, count=frames * rows * cols)
    return values.reshape(frames, rows, cols)


def _decoded_values(
    ds: Dataset, transfer_syntax: str, frames: int, rows: int, cols: int, fail: _Fail
) -> NDArray[np.integer[Any]]:
    """Pixel values of compressed pixel data, decoded by pydicom; lossy or undecodable
    compression is refused, naming the transfer syntax."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    name = f"{uid.name} ({uid})" if uid.is_transfer_syntax else transfer_syntax
    if transfer_syntax not in LOSSLESS_COMPRESSED:
        kind = "lossy or unsupported" if uid.is_transfer_syntax else "unknown"
        raise fail(
            f"transfer syntax {name} is {kind} for a dose; export the RTDOSE uncompressed "
            "or losslessly compressed"
        )
    if not get_decoder(uid).is_available:
        raise fail(
            f"no decoder for transfer syntax {name} is installed: "
            "pip install 'rtcheck[jpeg]' (pylibjpeg with its libjpeg and openjpeg plugins)"
        )
    try:
        values = np.asarray(ds.pixel_array)
    except Exception as exc:  # the decoders raise many kinds on damaged data
        raise fail(f"cannot decode the {name} pixel data ({exc})") from exc
    if values.size != frames * rows * cols:
        raise fail(
            f"pixel data holds {values.size} values, the grid declares {frames}x{rows}x{cols}"
        )
    return values.reshape(frames, rows, cols)
