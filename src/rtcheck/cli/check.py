"""``rtcheck check``: a plan against a protocol, and exclusion criterion 19 decided."""

from __future__ import annotations

import argparse
from datetime import date

from rtcheck.cli._common import (
    EXIT_EXCLUDED,
    EXIT_INDETERMINATE,
    EXIT_OK,
    Commands,
    end_caps_option,
    given_files,
    print_or_write_record,
    protocol_and_map,
    protocol_option,
    refuse_writing_over_inputs,
    write_text,
)
from rtcheck.errors import UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "check",
        epilog=(
            "examples:\n"
            "  rtcheck check plan/\n"
            "  rtcheck check plan/ --map names.yaml --json record.json --html report.html\n"
            "  rtcheck check plan/ --prior course1/ --registration REG.dcm --prior-end 2025-11-30"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="evaluate a protocol's dose limits and decide exclusion criterion 19",
        description="Evaluate every limit of a protocol on a plan and decide criterion 19. "
        "Exit status: 0 not_excluded, 1 excluded, 3 indeterminate, 2 bad input.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="DICOM files or folders of one plan"
    )
    protocol_option(parser)
    parser.add_argument(
        "--fractions", type=int, metavar="N", help="number of fractions where no RTPLAN says"
    )
    parser.add_argument("--map", metavar="FILE", help="YAML map of ROI names to TG-263 names")
    parser.add_argument("--json", metavar="FILE", help="write the eligibility record ('-': stdout)")
    parser.add_argument("--html", metavar="FILE", help="write the plan report (one HTML file)")
    parser.add_argument(
        "--prior",
        action="append",
        nargs="+",
        metavar="PATH",
        default=[],
        help="an earlier course of the patient: its RTDOSE, with its RTPLAN (fractions, "
        "prescription, date) and optionally treatment records and registrations; once per "
        "course. The protocol's cumulative limits are then evaluated on the EQD2 sum",
    )
    parser.add_argument(
        "--registration",
        action="append",
        metavar="REG",
        default=[],
        help="a Spatial Registration or Deformable Spatial Registration object relating an "
        "earlier course's frame of reference to the plan's (repeatable)",
    )
    parser.add_argument(
        "--prior-end",
        metavar="DATE",
        help="the end of the earlier course (YYYY-MM-DD) where no treatment record or "
        "RTPlanDate states it",
    )
    end_caps_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck check``; its exit status."""
    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.slabs import EndCaps
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.evaluation.results import Eligibility
    from rtcheck.outputs.record import eligibility_record
    from rtcheck.outputs.table import check_table

    if args.fractions is not None and args.fractions < 1:
        raise UsageError("--fractions must be a positive number of fractions")
    prior_end = _date(args.prior_end) if args.prior_end else None
    if (args.registration or prior_end) and not args.prior:
        raise UsageError("--registration and --prior-end need --prior (an earlier course)")
    earlier_paths = [path for course in args.prior for path in course]
    inputs = given_files(args, *args.paths, *earlier_paths, *args.registration)
    refuse_writing_over_inputs([args.json, args.html], inputs)
    protocol, mapping, lesion_map = protocol_and_map(args)
    plan = load_plan(args.paths)
    from rtcheck.dicom.prior import placed_courses

    # Every registration given is offered for every earlier course; each finds its own.
    earlier = placed_courses(plan, [(paths, args.registration) for paths in args.prior], prior_end)
    evaluation = evaluate(
        plan,
        protocol,
        mapping,
        lesion_map,
        fractions=args.fractions,
        end_caps=EndCaps(args.end_caps),
        earlier=earlier,
    )
    print_or_write_record(
        eligibility_record(evaluation), lambda: check_table(evaluation), args.json
    )
    if args.html:
        from rtcheck.outputs.html_report import plan_report_html

        write_text(args.html, plan_report_html(evaluation))
    decision = evaluation.decision.decision
    if decision == Eligibility.EXCLUDED:
        return EXIT_EXCLUDED
    if decision == Eligibility.INDETERMINATE:
        return EXIT_INDETERMINATE
    return EXIT_OK


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--prior-end {text!r}: give a date as YYYY-MM-DD") from None
