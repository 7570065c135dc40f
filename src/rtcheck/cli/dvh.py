"""``rtcheck dvh``: DVHs and DVH metrics of a plan's structures."""

from __future__ import annotations

import argparse
import json
import sys

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
    end_caps_option,
    refuse_writing_over_inputs,
    write_text,
)
from rtcheck.errors import UsageError
from rtcheck.logs import one_line


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "dvh",
        epilog=(
            "examples:\n"
            "  rtcheck dvh plan/\n"
            '  rtcheck dvh plan/ --structure Cord --metric "D0.03cc[Gy]" --json dvh.json'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="compute DVHs and DVH metrics of a plan's structures",
        description="Compute DVHs of a plan's structures and evaluate TG-263 DVH metrics.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="DICOM files or folders of one plan"
    )
    parser.add_argument(
        "--structure",
        action="append",
        default=[],
        metavar="NAME",
        help="ROI name to compute (repeatable; default: every ROI but the body outline)",
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="METRIC",
        help="TG-263 metric such as D95%%[Gy], V20Gy[%%], D0.03cc[Gy] (repeatable)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    parser.add_argument("--csv", metavar="FILE", help="write one CSV row per structure")
    parser.add_argument(
        "--prescription",
        type=float,
        metavar="GY",
        help="prescription dose (Gy) for metrics relative to it (default: the RTPLAN's)",
    )
    parser.add_argument(
        "--sum", action="store_true", help="sum the doses of several plans into one dose set"
    )
    end_caps_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck dvh``; its exit status."""
    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.slabs import EndCaps
    from rtcheck.dvh.metrics import parse_metric
    from rtcheck.dvh.plandvh import DEFAULT_METRICS, select_structures, structure_dvhs
    from rtcheck.outputs.dvh_files import dvh_csv, dvh_document, dvh_table

    metrics = args.metric or list(DEFAULT_METRICS)
    for metric in metrics:
        parse_metric(metric)  # refuse a malformed metric before reading any file
    if args.prescription is not None and not args.prescription > 0:
        raise UsageError("--prescription must be a positive dose in Gy")
    refuse_writing_over_inputs([args.json, args.csv], args.paths)
    plan = load_plan(args.paths, sum_doses=args.sum)
    structures = select_structures(plan, args.structure)
    end_caps = EndCaps(args.end_caps)
    results = structure_dvhs(plan, structures, metrics, args.prescription, end_caps)

    for warning in [*plan.warnings, *(w for r in results for w in r.warnings)]:
        print(f"rtcheck: warning: {one_line(warning)}", file=sys.stderr)
    if args.json == "-":
        json.dump(dvh_document(plan, results, end_caps), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(dvh_table(results))
        if args.json:
            write_text(
                args.json,
                json.dumps(dvh_document(plan, results, end_caps), indent=2, allow_nan=False),
            )
    if args.csv:
        write_text(args.csv, dvh_csv(results))
    return EXIT_OK
