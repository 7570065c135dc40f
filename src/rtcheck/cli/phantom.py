"""``rtcheck phantom``: the synthetic thorax plan written as DICOM files."""

from __future__ import annotations

import argparse

from rtcheck.cli._common import EXIT_OK, Commands
from rtcheck.errors import UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "phantom",
        epilog=(
            "examples:\n"
            "  rtcheck phantom phantom/\n"
            "  rtcheck phantom plan2/ --patient-id TEST-2 --seed 2 --lesions 1\n"
            "  rtcheck phantom sbrt/ --no-primary --fractions 5 --prescription 35\n"
            "  rtcheck phantom poor/ --no-primary --fractions 5 --prescription 35 "
            "--lesion-margin 9\n"
            "  rtcheck phantom mixed/ --lesions 2 --lesion-plan 30/3 --lesion-plan 35/5"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write the synthetic thorax phantom plan",
        description="Write a deterministic synthetic thorax plan (RTSTRUCT, RTPLAN, RTDOSE).",
    )
    parser.add_argument("outdir", metavar="OUTDIR")
    parser.add_argument(
        "--clinical",
        action="store_true",
        help="a plan of clinical size instead: 1.5 mm dose grid over the whole thorax, contours "
        "every 1.25 mm with several hundred points (about 30 MB)",
    )
    parser.add_argument(
        "--patient-id", metavar="ID", help="PatientID to write (default: PHANTOM-001)"
    )
    parser.add_argument(
        "--seed", metavar="TEXT", help="text every UID derives from: another seed, another plan"
    )
    parser.add_argument(
        "--lesions", type=int, metavar="N", help="metastatic lesions to include, 0 to 5 (default 3)"
    )
    parser.add_argument(
        "--fractions",
        type=int,
        metavar="N",
        help="fractions of the plan (default 25; 1-8 is stereotactic)",
    )
    parser.add_argument(
        "--prescription",
        type=float,
        metavar="GY",
        help="prescription to every PTV, Gy (default 50)",
    )
    parser.add_argument(
        "--no-primary", action="store_true", help="a lesions-only plan: no primary tumour"
    )
    parser.add_argument(
        "--lesion-plan",
        action="append",
        metavar="GY/FX",
        help="give each lesion, in order, a "
        "plan of its own (RP.M1.dcm...): prescription and fractions, e.g. 30/3; the plans sum",
    )
    parser.add_argument(
        "--lesion-margin",
        type=float,
        metavar="MM",
        help="where each lesion's dose falls to half "
        "beyond its PTV, mm: 4 (default) is conformal, 9 poorly conformal",
    )
    parser.add_argument(
        "--esophagus-overlap",
        type=float,
        metavar="CC",
        help="add a mediastinal node lesion (the last) whose PTV overlaps the oesophagus by "
        "this volume (cc, as contoured): a plan made to fail on geometry",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck phantom``; its exit status."""
    from dataclasses import replace

    from rtcheck.phantom.thorax import (
        CLINICAL,
        DEFAULT_LESIONS,
        MORE_LESIONS,
        ThoraxPhantom,
        esophagus_lesion,
        write_thorax_phantom,
    )

    phantom = CLINICAL if args.clinical else ThoraxPhantom()
    if args.patient_id is not None:
        if not 0 < len(args.patient_id) <= 64 or any(c in args.patient_id for c in "\\\r\n\t"):
            raise UsageError("--patient-id must be 1 to 64 characters, without a backslash")
        phantom = replace(phantom, patient_id=args.patient_id)
    if args.seed is not None:
        phantom = replace(phantom, seed=args.seed)
    if args.lesions is not None:
        every = (*DEFAULT_LESIONS, *MORE_LESIONS)
        if not 0 <= args.lesions <= len(every):
            raise UsageError(f"--lesions must be from 0 to {len(every)}")
        phantom = replace(phantom, lesions=every[: args.lesions])
    if args.fractions is not None:
        if not 1 <= args.fractions <= 100:
            raise UsageError("--fractions must be from 1 to 100")
        phantom = replace(phantom, fractions=args.fractions)
    if args.prescription is not None:
        if not 0 < args.prescription <= 200:
            raise UsageError("--prescription must be above 0 and at most 200 Gy")
        phantom = replace(phantom, prescription_gy=args.prescription)
    if args.lesion_margin is not None:
        if not 0 <= args.lesion_margin <= 30:
            raise UsageError("--lesion-margin must be from 0 to 30 mm")
        phantom = replace(phantom, lesion_margin_mm=args.lesion_margin)
    if args.no_primary:
        phantom = replace(phantom, primary=False)
    if args.esophagus_overlap is not None:
        number = len(phantom.lesions) + 1
        try:
            node = esophagus_lesion(
                number,
                args.esophagus_overlap,
                phantom.z_range_mm[0],
                phantom.contour_spacing_mm,
            )
        except ValueError as exc:
            raise UsageError(f"--esophagus-overlap: {exc}") from None
        phantom = replace(phantom, lesions=(*phantom.lesions, node))
    if args.lesion_plan:
        plans = []
        for text in args.lesion_plan:
            gy, _, fx = text.partition("/")
            try:
                plans.append((float(gy), int(fx)))
            except ValueError:
                raise UsageError(f"--lesion-plan {text!r}: give GY/FX, e.g. 30/3") from None
            if not (0 < plans[-1][0] <= 200 and 1 <= plans[-1][1] <= 100):
                raise UsageError(f"--lesion-plan {text!r}: 0-200 Gy in 1-100 fractions")
        if len(plans) != len(phantom.lesions):
            raise UsageError(f"give one --lesion-plan per lesion ({len(phantom.lesions)})")
        phantom = replace(phantom, lesion_plans=tuple(plans))
    files = write_thorax_phantom(args.outdir, phantom)
    for path in (files.rtstruct, files.rtplan, files.rtdose, *files.more):
        print(path)
    return EXIT_OK
