"""A deterministic synthetic thorax plan: RTSTRUCT, RTPLAN and RTDOSE written with pydicom.

Anatomy (patient coordinates, head-first supine: +x patient left, +y posterior, +z head):
body, both lungs, heart, spinal cord, esophagus, liver, the T8 vertebral body; a primary
esophageal target (GTV and PTV) and up to five metastatic lesion targets in up to three organs.
ROI names are in one clinic's own style, not TG-263's.

The dose is analytical: a four-field box around the primary PTV (AP-PA and lateral bands whose
weights add to the prescription inside the target) plus a conformal dose cloud around every
lesion PTV. It is sampled onto the RTDOSE grid; between grid points rtcheck interpolates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfc

from rtcheck.phantom import synthetic as S


@dataclass(frozen=True)
class PhantomLesion:
    """A metastatic lesion: a spherical GTV and its PTV (mm), with its ROI names."""

    gtv_name: str
    ptv_name: str
    centre: tuple[float, float, float]
    gtv_radius: float
    ptv_radius: float


DEFAULT_LESIONS = (
    PhantomLesion("GTV M1 lung", "PTV_M1_lungR", (-80.0, 10.0, 85.0), 8.0, 13.0),
    PhantomLesion("gtv m2 liver", "ptv m2 liver", (-60.0, -5.0, -125.0), 10.0, 15.0),
    PhantomLesion("GTV_M3_T8", "PTV_M3_T8", (0.0, 48.0, 62.0), 7.0, 11.0),
)
#: Two more, for plans of the trial's largest number of lesions (5): a left lung lesion and a
#: node outside every organ ROI (its site from its name).
MORE_LESIONS = (
    PhantomLesion("GTV_M4_lungL", "PTV_M4_lungL", (90.0, 0.0, 70.0), 6.0, 10.0),
    PhantomLesion("GTV_M5_node", "PTV_M5_node", (-45.0, -70.0, 110.0), 6.0, 10.0),
)


@dataclass(frozen=True)
class ThoraxPhantom:
    """Parameters of the synthetic thorax plan.

    Attributes
    ----------
    prescription_gy, fractions
        Prescription to every PTV (Gy, total) and number of fractions.
    lesions
        The metastatic lesions (0-5 in the trial).
    contour_spacing_mm, dose_spacing_mm
        Distance between contour planes and between dose grid points (mm).
    cord_dose_fraction
        Dose to the AP-PA band (and so to the cord) as a fraction of the prescription.
    lesion_dose_scale
        Peak lesion dose relative to the prescription (1.08 covers 95 % of each PTV).
    lesion_margin_mm
        Where each lesion's conformal dose falls to half, beyond its PTV (mm): 4 gives a
        conformal stereotactic plan (R100% about 1.05), 9 a poorly conformal one (about 2).
    primary
        Whether the plan treats the primary tumour too (its GTV, PTV and four-field box);
        without it, a lesions-only plan.
    lesion_plans
        Empty: every lesion is in the one plan. Otherwise one (prescription Gy, fractions) per
        lesion: each lesion gets an RTPLAN and RTDOSE of its own (labelled M1, M2...), so that
        lesions are treated in different fractionations, and the plans are summed.
    dose_z_range_mm
        z extent of the dose grid (mm); by default the structures' range plus one voxel.
    renamed
        ROI name → new name, or None to leave the ROI out (to build test variants).
    seed
        Text from which every UID derives.
    outline
        How densely contours are drawn (vertex spacing, most vertices per contour).
    """

    prescription_gy: float = 50.0
    fractions: int = 25
    lesions: tuple[PhantomLesion, ...] = DEFAULT_LESIONS
    contour_spacing_mm: float = 2.5
    dose_spacing_mm: float = 3.0
    cord_dose_fraction: float = 0.35
    lesion_dose_scale: float = 1.08
    lesion_margin_mm: float = 4.0
    primary: bool = True
    lesion_plans: tuple[tuple[float, int], ...] = ()
    dose_z_range_mm: tuple[float, float] | None = None
    renamed: tuple[tuple[str, str | None], ...] = ()
    seed: str = "rtcheck-thorax-phantom-1"
    patient_id: str = "PHANTOM-001"
    patient_name: str = "PHANTOM^THORAX"
    z_range_mm: tuple[float, float] = (-180.0, 160.0)
    extra_rois: tuple[S.RoiSpec, ...] = field(default=())
    outline: S.Outline = S.TPS_OUTLINE


# Primary target and organs (mm).
ESOPHAGUS_XY = (0.0, 18.0)
ESOPHAGUS_RADIUS = 9.0
PRIMARY_Z = (-30.0, 40.0)
#: The node lesion placed against the oesophagus (``esophagus_lesion``): its PTV's radius and
#: height (mm), above the primary tumour and beside no other organ.
NODE_PTV_RADIUS, NODE_Z = 12.0, 100.0


def esophagus_lesion(
    number: int, overlap_cc: float, first_plane_mm: float, contour_spacing_mm: float
) -> PhantomLesion:
    """A mediastinal node lesion (``PTV_M<number>_node``) whose PTV overlaps the oesophagus by
    ``overlap_cc`` as the contours draw them: the overlap summed over the contour planes
    (``first_plane_mm`` + k × ``contour_spacing_mm``; the circles' lens area times the spacing,
    each plane standing for a slab of it), the node moved sideways until it matches.

    Raises
    ------
    ValueError
        If no position gives that overlap (at most the PTV's volume inside the oesophagus when
        centred on it).
    """
    radius, r = NODE_PTV_RADIUS, ESOPHAGUS_RADIUS
    t = contour_spacing_mm
    k = np.arange(
        math.ceil((NODE_Z - radius - first_plane_mm) / t),
        (NODE_Z + radius - first_plane_mm) // t + 1,
    )
    z = first_plane_mm + k * t  # the contour planes the node's PTV is drawn on
    sections = np.sqrt(np.clip(radius**2 - (z - NODE_Z) ** 2, 0.0, None))

    def overlap(offset: float) -> float:
        return float(sum(_lens_mm2(a, r, offset) for a in sections) * contour_spacing_mm / 1000)

    most = overlap(0.0)
    if not 0 < overlap_cc < most:
        raise ValueError(f"an overlap of {overlap_cc:g} cc: give more than 0 and under {most:.2f}")
    low, high = 0.0, radius + r  # overlap falls from `most` to 0 as the node moves away
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if overlap(middle) > overlap_cc else (low, middle)
    ex, ey = ESOPHAGUS_XY
    centre = (ex + (low + high) / 2, ey, NODE_Z)
    return PhantomLesion(f"GTV_M{number}_node", f"PTV_M{number}_node", centre, 7.0, radius)


def _lens_mm2(a: float, b: float, d: float) -> float:
    """The area (mm²) common to two circles of radii ``a`` and ``b`` whose centres are ``d``
    apart."""
    if a <= 0 or b <= 0 or d >= a + b:
        return 0.0
    if d <= abs(a - b):
        return math.pi * min(a, b) ** 2
    alpha = math.acos((d * d + a * a - b * b) / (2 * d * a))
    beta = math.acos((d * d + b * b - a * a) / (2 * d * b))
    return a * a * (alpha - math.sin(2 * alpha) / 2) + b * b * (beta - math.sin(2 * beta) / 2)


def rois(phantom: ThoraxPhantom) -> list[S.RoiSpec]:
    """The phantom's ROIs with their contours."""
    z0, z1 = phantom.z_range_mm
    t = phantom.contour_spacing_mm
    zs = [float(z) for z in np.arange(z0, z1 + 1e-6, t)]
    o = phantom.outline
    ex, ey = ESOPHAGUS_XY
    pz0, pz1 = PRIMARY_Z
    shapes: list[tuple[str, str, S.CrossSection, tuple[int, int, int]]] = [
        ("BODY", "EXTERNAL", S.elliptic_cylinder(0, 0, 170, 120, z0, z1, outline=o), (0, 128, 0)),
        ("Lung Rt", "ORGAN", S.ellipsoid(-85, 5, 20, 55, 75, 110, outline=o), (0, 128, 255)),
        ("LUNG LT", "ORGAN", S.ellipsoid(85, 5, 20, 55, 75, 110, outline=o), (0, 200, 255)),
        ("heart", "ORGAN", S.ellipsoid(10, -45, -40, 45, 40, 50, outline=o), (255, 0, 128)),
        ("Cord", "ORGAN", S.cylinder(0, 75, 5, z0 + 10, z1 - 10, outline=o), (255, 255, 0)),
        (
            "Oesophagus",
            "ORGAN",
            S.cylinder(ex, ey, ESOPHAGUS_RADIUS, -110, 150, outline=o),
            (128, 64, 0),
        ),
        ("LIVER", "ORGAN", S.ellipsoid(-40, -10, -130, 85, 70, 45, outline=o), (128, 0, 0)),
        ("Vert T8", "ORGAN", S.cylinder(0, 48, 16, 48, 76, outline=o), (200, 200, 200)),
        ("GTV_T", "GTV", S.cylinder(ex, ey, 13, pz0 + 10, pz1 - 10, outline=o), (255, 0, 0)),
        ("PTV_50", "PTV", S.cylinder(ex, ey, 22, pz0, pz1, outline=o), (255, 64, 64)),
    ]
    if not phantom.primary:
        shapes = [s for s in shapes if s[0] not in ("GTV_T", "PTV_50")]
    for lesion in phantom.lesions:
        cx, cy, cz = lesion.centre
        shapes.append(
            (
                lesion.gtv_name,
                "GTV",
                S.sphere(cx, cy, cz, lesion.gtv_radius, outline=o),
                (255, 0, 255),
            )
        )
        shapes.append(
            (
                lesion.ptv_name,
                "PTV",
                S.sphere(cx, cy, cz, lesion.ptv_radius, outline=o),
                (255, 128, 255),
            )
        )
    specs = []
    renamed = dict(phantom.renamed)
    for name, kind, shape, color in shapes:
        if name in renamed and renamed[name] is None:
            continue
        spec = S.RoiSpec.from_shape(renamed.get(name) or name, kind, shape, zs)
        spec.color = color
        specs.append(spec)
    return specs + list(phantom.extra_rois)


def dose_gy(
    phantom: ThoraxPhantom, x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The phantom's analytical dose (Gy) at broadcastable coordinates (mm)."""
    rx = phantom.prescription_gy
    ex, ey = ESOPHAGUS_XY
    pz0, pz1 = PRIMARY_Z
    ptv_r = 22.0
    sigma = 4.0
    margin = 7.0  # field edge beyond the PTV, mm

    def edge(distance_outside: NDArray[np.float64]) -> NDArray[np.float64]:
        # Penumbra: 1 well inside the field, 0.5 at the field edge, error-function fall-off.
        return np.asarray(0.5 * erfc((distance_outside - margin) / (sigma * math.sqrt(2))))

    along_z = edge(np.maximum(pz0 - z, z - pz1))
    ap = edge(np.abs(x - ex) - ptv_r) * along_z
    lateral = edge(np.abs(y - ey) - ptv_r) * along_z
    cord = phantom.cord_dose_fraction
    # Inside the PTV all three terms are ~1 and the weights add to 1.
    box = rx * (cord * ap + 0.4 * lateral + (0.6 - cord) * ap * lateral)
    if not phantom.primary:
        box = box * 0.0
    total = np.broadcast_to(box, np.broadcast_shapes(x.shape, y.shape, z.shape)).copy()
    if not phantom.lesion_plans:
        for lesion in phantom.lesions:
            total += lesion_dose_gy(phantom, lesion, rx, x, y, z)
    return np.asarray(total, dtype=np.float64)


def lesion_dose_gy(
    phantom: ThoraxPhantom,
    lesion: PhantomLesion,
    prescription_gy: float,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    z: NDArray[np.float64],
) -> NDArray[np.float64]:
    """One lesion's conformal dose (Gy) for its prescription, with a low-dose halo."""
    cx, cy, cz = lesion.centre
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    outside = r - lesion.ptv_radius
    conformal = 0.5 * erfc((outside - phantom.lesion_margin_mm) / (2.5 * math.sqrt(2)))
    halo = np.exp(-np.maximum(outside, 0.0) / 15.0)
    return np.asarray(
        prescription_gy * phantom.lesion_dose_scale * (0.75 * conformal + 0.25 * halo)
    )


#: A plan of clinical size: a 1.5 mm dose grid over the whole thorax (about 8.7 million voxels),
#: contours every 1.25 mm drawn with a vertex every 0.75 mm (several hundred per contour, up to
#: 1,200 on the body outline).
CLINICAL = ThoraxPhantom(
    contour_spacing_mm=1.25,
    dose_spacing_mm=1.5,
    outline=S.Outline(spacing_mm=0.75, max_vertices=1200),
    seed="rtcheck-thorax-clinical-1",
    patient_id="PHANTOM-002",
)


@dataclass(frozen=True)
class PhantomFiles:
    """Paths of the files written."""

    rtstruct: Path
    rtplan: Path
    rtdose: Path
    #: The lesions' own plans and doses, when they have them.
    more: tuple[Path, ...] = ()


def write_thorax_phantom(out_dir: str | Path, phantom: ThoraxPhantom | None = None) -> PhantomFiles:
    """Write the phantom's RTSTRUCT, RTPLAN and RTDOSE into ``out_dir`` (created if needed)."""
    p = phantom or ThoraxPhantom()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patient = S.Patient(
        patient_id=p.patient_id,
        patient_name=p.patient_name,
        study_uid=S.uid(p.seed, "study"),
        frame_uid=S.uid(p.seed, "frame"),
    )
    ss_uid, plan_uid, dose_uid = (S.uid(p.seed, k) for k in ("rtstruct", "rtplan", "rtdose"))
    specs = rois(p)
    structure_set = S.build_rtstruct(specs, patient, ss_uid, label="THORAX")
    numbers = {spec.name: n for n, spec in enumerate(specs, start=1)}
    if p.lesion_plans and len(p.lesion_plans) != len(p.lesions):
        raise ValueError("give one (prescription, fractions) per lesion")
    in_main = () if p.lesion_plans else tuple(ls.ptv_name for ls in p.lesions)
    prescriptions = [
        (name, numbers[name], p.prescription_gy) for name in ("PTV_50", *in_main) if name in numbers
    ]
    plan = S.build_rtplan(patient, plan_uid, ss_uid, "THORAX", p.fractions, prescriptions)

    step = p.dose_spacing_mm
    z0, z1 = p.z_range_mm
    xs = np.arange(-174.0, 174.0 + 1e-6, step)
    ys = np.arange(-123.0, 123.0 + 1e-6, step)
    dz0, dz1 = p.dose_z_range_mm or (z0 - step, z1 + step)
    zs = np.arange(dz0, dz1 + 1e-6, step)
    grid = dose_gy(p, xs[None, None, :], ys[None, :, None], zs[:, None, None])
    dose = S.build_rtdose(
        patient, dose_uid, grid, (xs[0], ys[0], zs[0]), (step, step), zs - zs[0], plan_uid
    )
    files = PhantomFiles(out / "RS.thorax.dcm", out / "RP.thorax.dcm", out / "RD.thorax.dcm")
    S.save(structure_set, str(files.rtstruct))
    if p.primary or not p.lesion_plans:
        S.save(plan, str(files.rtplan))
        S.save(dose, str(files.rtdose))
    extra: list[Path] = []
    for number, (lesion, (rx, fractions)) in enumerate(
        zip(p.lesions if p.lesion_plans else (), p.lesion_plans, strict=True), start=1
    ):
        label = f"M{number}"
        own_plan, own_dose = S.uid(p.seed, "rtplan", label), S.uid(p.seed, "rtdose", label)
        rp = S.build_rtplan(
            patient,
            own_plan,
            ss_uid,
            label,
            fractions,
            [(lesion.ptv_name, numbers[lesion.ptv_name], rx)],
        )
        grid = lesion_dose_gy(
            p, lesion, rx, xs[None, None, :], ys[None, :, None], zs[:, None, None]
        )
        rd = S.build_rtdose(
            patient, own_dose, grid, (xs[0], ys[0], zs[0]), (step, step), zs - zs[0], own_plan
        )
        paths = out / f"RP.{label}.dcm", out / f"RD.{label}.dcm"
        S.save(rp, str(paths[0]))
        S.save(rd, str(paths[1]))
        extra += paths
    if not (p.primary or not p.lesion_plans):
        files = PhantomFiles(files.rtstruct, extra[0], extra[1], tuple(extra[2:]))
    else:
        files = PhantomFiles(files.rtstruct, files.rtplan, files.rtdose, tuple(extra))
    return files
