"""Registration objects written by tools nobody here wrote, and the earlier dose resampled by one.

- Debian's plastimatch (``xf-convert --output-dicom``) turns an ITK affine transform into a
  Spatial Registration object; pydicomrt writes rigid and deformable ones from SimpleITK
  transforms. rtcheck's map from the current (fixed) frame to the earlier (moving) one must be
  the transform SimpleITK applies when it resamples the moving image onto the fixed grid.
- SimpleITK's own linear resampling of the earlier dose through that transform is compared with
  rtcheck's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.plan import load_plan
from rtcheck.dicom.prior import load_earlier_course, place
from rtcheck.dicom.registration import read_registration
from rtcheck.dicom.resample import resample
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.phantom import synthetic as S
from rtcheck.protocol.definition import load_protocol
from tests.evaluation.test_reirradiation import (
    CORD,
    cumulative,
    current_plan,
    earlier_at,
    earlier_course,
    protocol_file,
    sum_eqd2,
)
from tests.registration_factory import ct_series

sitk = pytest.importorskip("SimpleITK")
PLASTIMATCH = shutil.which("plastimatch")
ANGLE = np.radians(30.0)
ROTATION = np.array(
    [[np.cos(ANGLE), -np.sin(ANGLE), 0], [np.sin(ANGLE), np.cos(ANGLE), 0], [0, 0, 1]]
)
TRANSLATION = np.array([30.0, -10.0, 8.0])


def fixed_to_moving() -> object:
    """SimpleITK's transform of a fixed (current) point to the moving (earlier) frame: the one
    the closed forms of test_reirradiation use."""
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(ROTATION.ravel().tolist())
    transform.SetTranslation(TRANSLATION.tolist())
    return transform


def series(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("CT*.dcm"))]


@pytest.fixture
def frames(tmp_path):
    patient = S.Patient(study_uid=S.uid("current", "study"), frame_uid=S.uid("current", "frame"))
    current, earlier = S.uid("current", "frame"), S.uid("earlier", "frame")
    fixed = ct_series(tmp_path / "ct-current", patient, current, "ct-current")
    moving = ct_series(tmp_path / "ct-earlier", patient, earlier, "ct-earlier")
    return patient, fixed, moving, current, earlier


def points() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform(-60, 60, size=(200, 3))


def sitk_mapped(transform, pts: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in pts])


@pytest.mark.skipif(PLASTIMATCH is None, reason="plastimatch is not installed")
def test_plastimatch_reg_maps_as_simpleitk_resamples_and_gives_the_closed_form(tmp_path, frames):
    patient, fixed, moving, current, earlier = frames
    xform = tmp_path / "xf.txt"
    parameters = " ".join(f"{v:.10g}" for v in [*ROTATION.ravel(), *TRANSLATION])
    xform.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        f"Parameters: {parameters}\nFixedParameters: 0 0 0\n"
    )
    out = tmp_path / "sro"
    subprocess.run(
        [PLASTIMATCH, "xf-convert", "--input", str(xform), "--output-dicom", str(out),
         "--fixed-rcs", str(fixed), "--moving-rcs", str(moving)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (reg_path,) = out.glob("*.dcm")
    registration = read_registration(reg_path)
    assert registration.kind == "rigid" and registration.manufacturer == "Plastimatch"
    assert registration.frame_of_reference_uid == current
    mapped = registration.point_map(current, earlier)(points())
    # plastimatch writes the matrix at 6 decimals: 1e-6 of 60 mm, and 1e-6 mm.
    np.testing.assert_allclose(mapped, sitk_mapped(fixed_to_moving(), points()), atol=2e-4)

    plan_folder = current_plan(tmp_path)
    course_folder = earlier_course(tmp_path)
    plan = load_plan([plan_folder])
    course = load_earlier_course([course_folder], plan)
    evaluation = evaluate(
        plan,
        load_protocol(protocol_file(tmp_path)),
        earlier=[(course, place(course, plan, [registration]))],
    )
    median = cumulative(evaluation, "D50%[Gy]")
    assert median.value == pytest.approx(sum_eqd2(earlier_at(CORD)[0], 2.0), abs=0.02)


def test_pydicomrt_rigid_reg_maps_as_simpleitk_resamples(tmp_path, frames):
    from pydicomrt.reg import SpatialRegistrationBuilder, affine_to_homogeneous_matrix

    patient, fixed, moving, current, earlier = frames
    # pydicomrt stores moving → fixed, as PS3.3 says: the resampling transform inverted.
    matrix = affine_to_homogeneous_matrix(fixed_to_moving().GetInverse())
    reg = (
        SpatialRegistrationBuilder(series(fixed))
        .add_registration(series(moving), matrix.ravel().tolist(), "RIGID")
        .build()
    )
    reg.save_as(tmp_path / "reg.dcm", enforce_file_format=True)
    registration = read_registration(tmp_path / "reg.dcm")
    mapped = registration.point_map(current, earlier)(points())
    np.testing.assert_allclose(mapped, sitk_mapped(fixed_to_moving(), points()), atol=1e-6)
    # Read the other way round (the earlier frame as the current one), it is the inverse.
    back = registration.point_map(earlier, current)(mapped)
    np.testing.assert_allclose(back, points(), atol=1e-6)


def test_pydicomrt_deformable_reg_maps_as_simpleitk_resamples(tmp_path, frames):
    from pydicomrt.reg import DeformableSpatialRegistrationBuilder

    patient, fixed, moving, current, earlier = frames
    size, spacing, origin = (17, 15, 13), (8.0, 9.0, 10.0), (-70.0, -65.0, -60.0)
    z, y, x = np.meshgrid(
        *(
            o + s * np.arange(n)
            for o, s, n in zip(origin[::-1], spacing[::-1], size[::-1], strict=True)
        ),
        indexing="ij",
    )
    field = np.stack(
        [3.0 + 0.02 * y + 0.01 * z, -4.0 + 0.03 * x, 1.5 + 2.0 * np.sin(x / 40.0)], axis=-1
    )
    image = sitk.GetImageFromArray(field.astype(np.float64), isVector=True)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    transform = sitk.DisplacementFieldTransform(sitk.Image(image))
    reg = (
        DeformableSpatialRegistrationBuilder(series(fixed))
        .add_registration(series(moving), transform)
        .build()
    )
    reg.save_as(tmp_path / "dreg.dcm", enforce_file_format=True)
    registration = read_registration(tmp_path / "dreg.dcm")
    assert registration.kind == "deformable"
    inside = np.random.default_rng(3).uniform(-60, 50, size=(300, 3))
    reference = sitk.DisplacementFieldTransform(sitk.Image(image))
    mapped = registration.point_map(current, earlier)(inside)
    # The vectors are stored as float32: 1e-6 relative of a few mm.
    np.testing.assert_allclose(mapped, sitk_mapped(reference, inside), atol=1e-4)


def test_the_earlier_dose_resampled_as_simpleitk_resamples_it(tmp_path, frames):
    """A dose that is not linear (a Gaussian field), resampled through the rigid transform by
    rtcheck and by SimpleITK's linear interpolator, on the current grid."""
    patient, fixed, moving, current, earlier = frames

    def field(x, y, z):
        return 50.0 * np.exp(-((x - 10) ** 2 + (y + 5) ** 2 + (z - 3) ** 2) / (2 * 25.0**2))

    axes = [
        np.arange(-99.0, 99.01, 3.0),
        np.arange(-84.0, 84.01, 3.5),
        np.arange(-60.0, 60.01, 2.5),
    ]
    zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    source = DoseGrid(
        axes[0], axes[1], axes[2], field(xx, yy, zz).astype(np.float32), earlier, "PLAN"
    )
    target_axes = [
        np.arange(-50.0, 50.01, 2.0),
        np.arange(-40.0, 40.01, 2.0),
        np.arange(-30.0, 30.01, 2.0),
    ]
    target = DoseGrid(
        *target_axes, np.zeros([len(a) for a in target_axes[::-1]], np.float32), current, "PLAN"
    )
    ours = resample(source, target, lambda p: p @ ROTATION.T + TRANSLATION)
    image = sitk.GetImageFromArray(source.dose_gy.astype(np.float64))
    image.SetOrigin([float(a[0]) for a in axes])
    image.SetSpacing([float(a[1] - a[0]) for a in axes])
    reference = sitk.Image([len(a) for a in target_axes], sitk.sitkFloat64)
    reference.SetOrigin([float(a[0]) for a in target_axes])
    reference.SetSpacing([2.0, 2.0, 2.0])
    theirs = sitk.GetArrayFromImage(
        sitk.Resample(image, reference, fixed_to_moving(), sitk.sitkLinear, 0.0)
    )
    assert not ours.outside.any()
    # Both interpolate the same float32 grid linearly: they agree to float32 rounding.
    np.testing.assert_allclose(ours.grid.dose_gy, theirs, atol=1e-4)
    # And both are near the field itself, within trilinear interpolation's error: h²/8 times
    # the largest curvature (50 Gy / 25² mm²) along each axis, summed: 0.275 Gy.
    tz, ty, tx = np.meshgrid(target_axes[2], target_axes[1], target_axes[0], indexing="ij")
    p = np.column_stack([tx.ravel(), ty.ravel(), tz.ravel()]) @ ROTATION.T + TRANSLATION
    exact = field(p[:, 0], p[:, 1], p[:, 2]).reshape(ours.grid.shape)
    assert np.abs(ours.grid.dose_gy - exact).max() < 0.28
