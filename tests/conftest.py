"""Shared fixtures: real DICOM files written with pydicom into temporary folders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rtcheck.phantom import synthetic as S

DoseFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def write_case(
    folder: Path,
    rois: list[S.RoiSpec],
    dose: DoseFunction,
    spacing: float,
    lo: tuple[float, float, float] = (-60.0, -60.0, -60.0),
    hi: tuple[float, float, float] = (60.0, 60.0, 60.0),
    bits: int = 32,
    with_plan: bool = True,
    fractions: int = 25,
    prescription: float = 50.0,
    seed: str = "case",
) -> Path:
    """Write an RTSTRUCT, an RTPLAN and a PLAN RTDOSE sampling ``dose(x, y, z)`` (Gy)."""
    folder.mkdir(parents=True, exist_ok=True)
    patient = S.Patient(study_uid=S.uid(seed, "study"), frame_uid=S.uid(seed, "frame"))
    ss_uid, plan_uid, dose_uid = (S.uid(seed, k) for k in ("ss", "plan", "dose"))
    S.save(S.build_rtstruct(rois, patient, ss_uid), str(folder / "rtstruct.dcm"))
    if with_plan:
        plan = S.build_rtplan(
            patient, plan_uid, ss_uid, "PLAN", fractions, [("PTV", 1, prescription)]
        )
        S.save(plan, str(folder / "rtplan.dcm"))
    xs = np.arange(lo[0], hi[0] + 1e-6, spacing)
    ys = np.arange(lo[1], hi[1] + 1e-6, spacing)
    zs = np.arange(lo[2], hi[2] + 1e-6, spacing)
    grid = dose(xs[None, None, :], ys[None, :, None], zs[:, None, None])
    grid = np.broadcast_to(grid, (len(zs), len(ys), len(xs)))
    ds = S.build_rtdose(
        patient,
        dose_uid,
        grid,
        (xs[0], ys[0], zs[0]),
        (spacing, spacing),
        zs - zs[0],
        plan_uid if with_plan else None,
        bits=bits,  # type: ignore[arg-type]
    )
    S.save(ds, str(folder / "rtdose.dcm"))
    return folder


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, to prove inputs are never modified."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def stereotactic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The thorax phantom planned stereotactically: 32 Gy in 4 fractions to every PTV, so that
    TG-101's limits apply, converted from their 5-fraction column (the nearest of the regime)."""
    from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom

    out = tmp_path_factory.mktemp("stereotactic")
    write_thorax_phantom(out, ThoraxPhantom(prescription_gy=32.0, fractions=4, seed="sbrt-4fx"))
    return out


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled thorax phantom, generated afresh."""
    from rtcheck.phantom.thorax import write_thorax_phantom

    out = tmp_path_factory.mktemp("phantom")
    write_thorax_phantom(out)
    return out


def write_primary_and_lesion_plans(folder: Path, seed: str) -> Path:
    """A structure set (cord, a lesion PTV_M1, a primary PTV_60) with two plans, each with a
    uniform dose: the primary 30 Gy in 25 fractions (prescribed 60 Gy), the lesion 15 Gy in 3
    fractions (prescribed 15 Gy). Uniform doses make EQD2 sums exact by hand."""
    import numpy as np

    from rtcheck.phantom import synthetic as S

    zs = list(np.arange(-30, 30.1, 2.5))
    rois = [
        S.RoiSpec.from_shape("Cord", "ORGAN", S.cylinder(0, 20, 5, -25, 25), zs),
        S.RoiSpec.from_shape("PTV_M1", "PTV", S.sphere(-20, -10, 0, 8), zs),
        S.RoiSpec.from_shape("PTV_60", "PTV", S.cylinder(0, -20, 10, -20, 20), zs),
    ]
    patient = S.Patient(study_uid=S.uid(seed, "study"), frame_uid=S.uid(seed, "frame"))
    ss = S.uid(seed, "ss")
    S.save(S.build_rtstruct(rois, patient, ss), str(folder / "rs.dcm"))
    xs = np.arange(-40, 40.1, 4.0)
    for label, fx, rx, roi, dose in (("PRIMARY", 25, 60.0, 3, 30.0), ("SBRT", 3, 15.0, 2, 15.0)):
        plan_uid = S.uid(seed, label)
        plan = S.build_rtplan(patient, plan_uid, ss, label, fx, [(label, roi, rx)])
        S.save(plan, str(folder / f"rp_{label}.dcm"))
        grid = np.full((len(xs),) * 3, dose)
        rd = S.build_rtdose(patient, S.uid(seed, label, "dose"), grid, (-40, -40, -40),
                            (4.0, 4.0), xs + 40, plan_uid, bits=32)  # fmt: skip
        S.save(rd, str(folder / f"rd_{label}.dcm"))
    return folder
