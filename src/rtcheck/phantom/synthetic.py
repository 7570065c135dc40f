"""Building synthetic DICOM RT objects (RTSTRUCT, RTPLAN, RTDOSE) with pydicom.

Used by the phantom generator and the tests. Shapes are given analytically and written as
polygon stacks; dose arrays are written with the usual RTDOSE attributes. UIDs are derived from a
seed so that the same call writes the same files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from rtcheck.dicom.files import RTDOSE, RTPLAN, RTSTRUCT

Polygon = NDArray[np.float64]
#: Vertex spacing (mm) along contour outlines, as a TPS exports them, and the most vertices a
#: contour gets (large outlines are exported with coarser spacing).
VERTEX_SPACING_MM = 1.5
MAX_VERTICES = 180


def uid(*parts: object) -> str:
    """A UID derived deterministically from ``parts``."""
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


# ---------------------------------------------------------------------------------------------
# Shapes: functions of z (mm) returning the polygons of the cross-section there.


@dataclass(frozen=True)
class Outline:
    """How densely contour outlines are drawn: a vertex every ``spacing_mm`` along them, at
    least 16 and at most ``max_vertices`` per contour."""

    spacing_mm: float = VERTEX_SPACING_MM
    max_vertices: int = MAX_VERTICES

    def vertices(self, perimeter_mm: float) -> int:
        """The number of vertices of an outline of that perimeter (mm)."""
        return min(self.max_vertices, max(16, math.ceil(perimeter_mm / self.spacing_mm)))


TPS_OUTLINE = Outline()


def circle(
    cx: float, cy: float, r: float, n: int | None = None, outline: Outline = TPS_OUTLINE
) -> Polygon:
    """A regular polygon with ``n`` vertices (by default as ``outline`` says) on the circle of
    radius ``r`` (mm)."""
    if n is None:
        n = outline.vertices(2 * math.pi * r)
    angles = 2 * math.pi * np.arange(n) / n
    return np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)])


def ellipse(cx: float, cy: float, a: float, b: float, outline: Outline = TPS_OUTLINE) -> Polygon:
    """A polygon on the ellipse with semi-axes ``a`` (x) and ``b`` (y), mm."""
    n = outline.vertices(math.pi * (a + b))
    angles = 2 * math.pi * np.arange(n) / n
    return np.column_stack([cx + a * np.cos(angles), cy + b * np.sin(angles)])


CrossSection = Callable[[float], list[Polygon]]


def sphere(
    cx: float, cy: float, cz: float, r: float, outline: Outline = TPS_OUTLINE
) -> CrossSection:
    """Cross-sections of a sphere (mm)."""

    def at(z: float) -> list[Polygon]:
        h = r * r - (z - cz) ** 2
        return [circle(cx, cy, math.sqrt(h), outline=outline)] if h > 1e-6 else []

    return at


def ellipsoid(
    cx: float, cy: float, cz: float, a: float, b: float, c: float, outline: Outline = TPS_OUTLINE
) -> CrossSection:
    """Cross-sections of an axis-aligned ellipsoid (mm)."""

    def at(z: float) -> list[Polygon]:
        k = 1 - ((z - cz) / c) ** 2
        if k <= 1e-4:
            return []
        s = math.sqrt(k)
        return [ellipse(cx, cy, a * s, b * s, outline)]

    return at


def cylinder(
    cx: float, cy: float, r: float, z0: float, z1: float, outline: Outline = TPS_OUTLINE
) -> CrossSection:
    """Cross-sections of a cylinder along z from ``z0`` to ``z1`` (mm)."""
    return lambda z: [circle(cx, cy, r, outline=outline)] if z0 <= z <= z1 else []


def elliptic_cylinder(
    cx: float, cy: float, a: float, b: float, z0: float, z1: float, outline: Outline = TPS_OUTLINE
) -> CrossSection:
    """Cross-sections of an elliptic cylinder along z (mm)."""
    return lambda z: [ellipse(cx, cy, a, b, outline)] if z0 <= z <= z1 else []


def ring(cx: float, cy: float, r_in: float, r_out: float, z0: float, z1: float) -> CrossSection:
    """A tube: outer and inner contour on each plane (the inner one is a hole)."""
    return lambda z: [circle(cx, cy, r_out), circle(cx, cy, r_in)] if z0 <= z <= z1 else []


def cone(cx: float, cy: float, r_base: float, z_base: float, z_tip: float) -> CrossSection:
    """A cone with its base at ``z_base`` and tip at ``z_tip`` (mm)."""

    def at(z: float) -> list[Polygon]:
        f = (z - z_base) / (z_tip - z_base)
        return [circle(cx, cy, r_base * (1 - f))] if 0 <= f < 1 and r_base * (1 - f) > 0.3 else []

    return at


@dataclass
class RoiSpec:
    """An ROI to write: its name, interpreted type and the polygons on each plane."""

    name: str
    interpreted_type: str
    planes: list[tuple[float, list[Polygon]]] = field(default_factory=list)
    color: tuple[int, int, int] = (255, 0, 0)

    @classmethod
    def from_shape(
        cls, name: str, interpreted_type: str, shape: CrossSection, zs: Sequence[float]
    ) -> RoiSpec:
        """Sample ``shape`` on the planes ``zs`` (mm)."""
        planes = [(float(z), polys) for z in zs if (polys := shape(float(z)))]
        return cls(name, interpreted_type, planes)


@dataclass(frozen=True)
class Patient:
    """Identifiers shared by the objects of one synthetic plan."""

    patient_id: str = "PHANTOM-001"
    patient_name: str = "PHANTOM^THORAX"
    study_uid: str = field(default_factory=lambda: uid("study"))
    frame_uid: str = field(default_factory=lambda: uid("frame"))


def base_dataset(
    sop_class: str, sop_uid: str, modality: str, patient: Patient, series_uid: str
) -> Dataset:
    """A dataset with its File Meta header (explicit VR little endian) and the patient, study
    and series modules every synthetic object shares."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = patient.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "rtcheck synthetic phantom"
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    return ds


def build_rtstruct(
    rois: Sequence[RoiSpec], patient: Patient, sop_uid: str, label: str = "RTSTRUCT"
) -> Dataset:
    """An RTSTRUCT dataset holding ``rois`` as CLOSED_PLANAR contours."""
    ds = base_dataset(RTSTRUCT, sop_uid, "RTSTRUCT", patient, uid(sop_uid, "series"))
    ds.StructureSetLabel = label
    ds.StructureSetDate = "20260101"
    ds.StructureSetTime = "120000"
    frame = Dataset()
    frame.FrameOfReferenceUID = patient.frame_uid
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    roi_items, contour_items, observations = [], [], []
    for number, roi in enumerate(rois, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = patient.frame_uid
        item.ROIName = roi.name
        item.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(item)
        contours = []
        for z, polys in roi.planes:
            for poly in polys:
                contour = Dataset()
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(poly)
                xyz = np.column_stack([poly, np.full(len(poly), z)])
                contour.ContourData = [f"{v:.2f}" for v in xyz.ravel()]
                contours.append(contour)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(roi.color)
        roi_contour.ContourSequence = DicomSequence(contours)
        contour_items.append(roi_contour)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = roi.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    return ds


def build_rtplan(
    patient: Patient,
    sop_uid: str,
    structure_set_uid: str,
    label: str,
    fractions: int,
    prescriptions: Sequence[tuple[str, int, float]],
) -> Dataset:
    """An RTPLAN with one fraction group and a target dose reference per prescription.

    ``prescriptions`` holds (description, referenced ROI number, TargetPrescriptionDose in Gy).
    """
    ds = base_dataset(RTPLAN, sop_uid, "RTPLAN", patient, uid(sop_uid, "series"))
    ds.FrameOfReferenceUID = patient.frame_uid
    ds.RTPlanLabel = label
    ds.RTPlanDate = "20260101"
    ds.RTPlanTime = "120000"
    ds.RTPlanGeometry = "PATIENT"
    ref = Dataset()
    ref.ReferencedSOPClassUID = RTSTRUCT
    ref.ReferencedSOPInstanceUID = structure_set_uid
    ds.ReferencedStructureSetSequence = DicomSequence([ref])
    refs = []
    for number, (description, roi_number, dose) in enumerate(prescriptions, start=1):
        item = Dataset()
        item.DoseReferenceNumber = number
        item.DoseReferenceUID = uid(sop_uid, "doseref", number)
        item.DoseReferenceStructureType = "VOLUME"
        item.ReferencedROINumber = roi_number
        item.DoseReferenceDescription = description
        item.DoseReferenceType = "TARGET"
        item.TargetPrescriptionDose = f"{dose:g}"
        refs.append(item)
    ds.DoseReferenceSequence = DicomSequence(refs)
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = fractions
    group.NumberOfBeams = 0
    group.NumberOfBrachyApplicationSetups = 0
    ds.FractionGroupSequence = DicomSequence([group])
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def build_rtdose(
    patient: Patient,
    sop_uid: str,
    dose_gy: NDArray[np.floating],
    origin_mm: tuple[float, float, float],
    spacing_mm: tuple[float, float],
    z_offsets_mm: Sequence[float],
    plan_uid: str | None,
    summation_type: str = "PLAN",
    bits: Literal[16, 32] = 16,
    absolute_offsets: bool = False,
) -> Dataset:
    """An RTDOSE holding ``dose_gy`` (frames, rows, columns) in the standard axial orientation.

    ``spacing_mm`` is (row spacing, column spacing); ``z_offsets_mm`` are relative frame offsets.
    """
    ds = base_dataset(RTDOSE, sop_uid, "RTDOSE", patient, uid(sop_uid, "series"))
    ds.FrameOfReferenceUID = patient.frame_uid
    frames, rows, cols = dose_gy.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x3004000C
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [f"{spacing_mm[0]:g}", f"{spacing_mm[1]:g}"]
    ds.ImagePositionPatient = [f"{v:g}" for v in origin_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    offsets = np.asarray(z_offsets_mm, dtype=float)
    if absolute_offsets:
        offsets = offsets + origin_mm[2]
    ds.GridFrameOffsetVector = [f"{v:g}" for v in offsets]
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation_type
    if dose_gy.size and float(np.min(dose_gy)) < 0:
        raise ValueError("an RTDOSE cannot hold negative doses")
    peak = float(np.max(dose_gy)) if dose_gy.size else 0.0
    top = 65000 if bits == 16 else 4_000_000_000
    scaling = peak / top if peak > 0 else 1.0
    ds.DoseGridScaling = f"{scaling:.10e}"
    dtype = np.uint16 if bits == 16 else np.uint32
    stored = np.round(np.asarray(dose_gy, dtype=np.float64) / float(ds.DoseGridScaling))
    ds.PixelData = stored.astype(dtype).tobytes()
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RTPLAN
        ref.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = DicomSequence([ref])
    return ds


def save(ds: Dataset, path: str) -> None:
    """Write ``ds`` as a DICOM Part 10 file."""
    ds.save_as(path, enforce_file_format=True)
