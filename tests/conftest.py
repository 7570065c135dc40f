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
