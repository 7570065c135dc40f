"""A synthetic plan archive for the batch tests: phantom plans cloned with new UIDs and patient
identifiers, with broken files, orphans, CT slices, nested folders and a symlink loop."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from rtcheck.phantom import synthetic as S
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom

BASES = {
    "pass": ThoraxPhantom(),
    "excluded": ThoraxPhantom(cord_dose_fraction=0.95),
    "indeterminate": ThoraxPhantom(renamed=(("Cord", None),)),
}


def write_bases(folder: Path) -> dict[str, Path]:
    out = {}
    for name, phantom in BASES.items():
        write_thorax_phantom(folder / name, phantom)
        out[name] = folder / name
    return out


def clone_plan(base: Path, target: Path, seed: str, patient_id: str, patient_name: str) -> None:
    """Copy a phantom plan with fresh UIDs, linked as the original."""
    target.mkdir(parents=True, exist_ok=True)
    rs = pydicom.dcmread(base / "RS.thorax.dcm")
    rp = pydicom.dcmread(base / "RP.thorax.dcm")
    rd = pydicom.dcmread(base / "RD.thorax.dcm")
    study, frame = S.uid(seed, "study"), S.uid(seed, "frame")
    for ds, kind in ((rs, "rs"), (rp, "rp"), (rd, "rd")):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = S.uid(seed, kind)
        ds.StudyInstanceUID = study
        ds.PatientID = patient_id
        ds.PatientName = patient_name
    rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = frame
    for item in rs.StructureSetROISequence:
        item.ReferencedFrameOfReferenceUID = frame
    rp.FrameOfReferenceUID = rd.FrameOfReferenceUID = frame
    rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = rs.SOPInstanceUID
    rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = rp.SOPInstanceUID
    rs.save_as(target / "RS.dcm", enforce_file_format=True)
    rp.save_as(target / "RP.dcm", enforce_file_format=True)
    rd.save_as(target / "RD.dcm", enforce_file_format=True)


def write_ct_slice(path: Path, seed: str, z: float) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = S.uid(seed, "ct", z)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientID = "CT-ONLY"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.ImagePositionPatient = [0, 0, z]
    ds.PixelData = np.zeros((16, 16), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def build_archive(root: Path, bases: dict[str, Path], plans: int = 50) -> Counter[str]:
    """Write ``plans`` plans (passing, excluded, indeterminate, broken) plus orphans, CT slices,
    a stray text file and a symlink loop. Returns the expected count of each outcome."""
    expected: Counter[str] = Counter()
    kinds = ["pass"] * 6 + ["excluded"] * 2 + ["indeterminate"] * 1 + ["broken"] * 1
    for i in range(plans):
        kind = kinds[i % len(kinds)]
        base = bases["pass" if kind == "broken" else kind]
        folder = root / f"site{i % 3}" / f"PAT-{i:03d}" / "rt"
        clone_plan(base, folder, f"archive-{i}", f"PAT-{i:03d}", f"Doe^Jane{i}")
        if kind == "broken":
            data = (folder / "RD.dcm").read_bytes()
            (folder / "RD.dcm").write_bytes(data[: len(data) // 2])
            expected["error"] += 1
        else:
            expected[{"pass": "not_excluded"}.get(kind, kind)] += 1
        if i % 10 == 0:
            for z in (0.0, 3.0, 6.0):
                write_ct_slice(folder.parent / f"CT{z:.0f}.dcm", f"archive-{i}", z)
    # Orphans: a dose without its structure set, a structure set without a dose.
    clone_plan(bases["pass"], root / "orphans" / "a", "orphan-a", "ORPH-A", "Orphan^A")
    (root / "orphans" / "a" / "RS.dcm").unlink()
    (root / "orphans" / "a" / "RP.dcm").unlink()
    clone_plan(bases["pass"], root / "orphans" / "b", "orphan-b", "ORPH-B", "Orphan^B")
    (root / "orphans" / "b" / "RD.dcm").unlink()
    (root / "README.txt").write_text("export notes, not DICOM")
    os.symlink(root, root / "site0" / "loop")
    return expected


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
