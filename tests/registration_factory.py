"""Spatial Registration objects written with pydicom for the tests, as PS3.3 C.20.2 and C.20.3
lay them out (an independent writer: rtcheck reads registrations, it does not write them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from rtcheck.dicom.registration import DEFORMABLE_REGISTRATION, RIGID_REGISTRATION
from rtcheck.phantom import synthetic as S


def _base(sop_class: str, uid: str, patient: S.Patient, frame_uid: str) -> Dataset:
    ds = S.base_dataset(sop_class, uid, "REG", patient, S.uid(uid, "series"))
    ds.FrameOfReferenceUID = frame_uid
    ds.Manufacturer = "rtcheck tests"
    ds.ContentCreatorName = "TEST^WRITER"
    ds.ContentDate = "20260101"
    return ds


def matrix_item(
    matrix: NDArray[np.float64] | Sequence[float], kind: str = "RIGID", count: int = 1
) -> Dataset:
    """A MatrixRegistrationSequence item holding ``count`` copies of ``matrix``."""
    matrices = []
    for _ in range(count):
        m = Dataset()
        m.FrameOfReferenceTransformationMatrix = [
            f"{v:.6f}" for v in np.asarray(matrix, dtype=float).ravel()
        ]
        m.FrameOfReferenceTransformationMatrixType = kind
        matrices.append(m)
    item = Dataset()
    item.MatrixSequence = DicomSequence(matrices)
    return item


def rigid_reg(
    path: Path,
    patient: S.Patient,
    registered_frame: str,
    items: Sequence[tuple[str, NDArray[np.float64]]],
    *,
    kind: str = "RIGID",
    matrices_per_item: int = 1,
    seed: str = "reg",
) -> Path:
    """A Spatial Registration whose items map each frame into ``registered_frame``."""
    ds = _base(RIGID_REGISTRATION, S.uid(seed, "reg"), patient, registered_frame)
    sequence = []
    for frame, matrix in items:
        item = Dataset()
        item.FrameOfReferenceUID = frame
        item.MatrixRegistrationSequence = DicomSequence(
            [matrix_item(matrix, kind, matrices_per_item)]
        )
        sequence.append(item)
    ds.RegistrationSequence = DicomSequence(sequence)
    ds.save_as(path, enforce_file_format=True)
    return path


def deformable_reg(
    path: Path,
    patient: S.Patient,
    registered_frame: str,
    source_frame: str,
    origin: Sequence[float],
    spacing: Sequence[float],
    vectors: NDArray[np.float32],
    *,
    pre: NDArray[np.float64] | None = None,
    seed: str = "dreg",
) -> Path:
    """A Deformable Spatial Registration from ``registered_frame`` to ``source_frame``;
    ``vectors`` shaped (slices, rows, columns, 3), axial orientation."""
    ds = _base(DEFORMABLE_REGISTRATION, S.uid(seed, "reg"), patient, registered_frame)
    item = Dataset()
    item.SourceFrameOfReferenceUID = source_frame
    grid = Dataset()
    grid.ImagePositionPatient = [f"{v:g}" for v in origin]
    grid.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    grid.GridDimensions = [vectors.shape[2], vectors.shape[1], vectors.shape[0]]
    grid.GridResolution = [float(v) for v in spacing]
    grid.VectorGridData = np.asarray(vectors, dtype="<f4").tobytes()
    item.DeformableRegistrationGridSequence = DicomSequence([grid])
    if pre is not None:  # the matrix stands in the item itself (PS3.3 C.20.3)
        matrix = Dataset()
        matrix.FrameOfReferenceTransformationMatrix = [f"{v:.6f}" for v in pre.ravel()]
        matrix.FrameOfReferenceTransformationMatrixType = "RIGID"
        item.PreDeformationMatrixRegistrationSequence = DicomSequence([matrix])
    ds.DeformableRegistrationSequence = DicomSequence([item])
    ds.save_as(path, enforce_file_format=True)
    return path


def rotation_z(degrees: float, translation: Sequence[float]) -> NDArray[np.float64]:
    """A 4×4 rigid matrix: a rotation about z, then ``translation`` (mm)."""
    a = np.radians(degrees)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = translation
    return m


def ct_series(folder: Path, patient: S.Patient, frame_uid: str, seed: str) -> Path:
    """A small axial CT series (4 slices of 32 × 32 pixels of 4 mm) in ``frame_uid``: what
    registration tools read a frame of reference from."""
    from pydicom.uid import CTImageStorage

    folder.mkdir(parents=True, exist_ok=True)
    series = S.uid(seed, "ct-series")
    for k in range(4):
        ds = S.base_dataset(CTImageStorage, S.uid(seed, "ct", k), "CT", patient, series)
        ds.StudyInstanceUID = S.uid(seed, "ct-study")
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-64.0, -64.0, -6.0 + 4.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [4.0, 4.0]
        ds.SliceThickness = 4.0
        ds.Rows = ds.Columns = 32
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 1, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.full((32, 32), 1024, dtype=np.int16).tobytes()
        ds.save_as(folder / f"CT{k}.dcm", enforce_file_format=True)
    return folder
