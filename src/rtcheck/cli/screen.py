"""``rtcheck screen``: criterion 19 before a plan exists, from the contours alone."""

from __future__ import annotations

import argparse

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


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "screen",
        epilog=(
            "examples:\n"
            "  rtcheck screen RS.dcm --map facts.yaml\n"
            "  rtcheck screen contours/ --json screening.json --html screening.html\n"
            "map file: ROI names as for check, lesions: {PTV_M1: {site: lung, "
            "prescription_gy: 54, fractions: 3}}, primary: {prescription_gy: 50, fractions: 25}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="criterion 19 before a plan exists: what the contours alone prove",
        description="Give every OAR limit the lowest value any plan meeting the protocol's "
        "mandatory coverage limits must have, from the overlap of organs and targets. Exit "
        "status: 0 plan_needed (nothing proven), 1 excluded_by_geometry, 3 indeterminate, "
        "2 bad input.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="the RTSTRUCT (and any RTPLAN), files or folders"
    )
    protocol_option(parser)
    parser.add_argument(
        "--map", metavar="FILE", help="YAML map: ROI names, lesions: and primary: facts"
    )
    parser.add_argument("--json", metavar="FILE", help="write the screening record ('-': stdout)")
    parser.add_argument("--html", metavar="FILE", help="write the screening report (HTML)")
    end_caps_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck screen``; its exit status."""
    from rtcheck.dicom.plan import load_contours
    from rtcheck.dicom.slabs import EndCaps
    from rtcheck.outputs.screening import screening_html, screening_record, screening_table
    from rtcheck.protocol.names import read_primary
    from rtcheck.screening.screen import ScreenDecision, screen

    refuse_writing_over_inputs([args.json, args.html], given_files(args, *args.paths))
    protocol, mapping, lesion_map = protocol_and_map(args)
    primary = read_primary(args.map) if args.map else {}
    plan = load_contours(args.paths)
    result = screen(plan, protocol, mapping, lesion_map, primary, end_caps=EndCaps(args.end_caps))
    print_or_write_record(screening_record(result), lambda: screening_table(result), args.json)
    if args.html:
        write_text(args.html, screening_html(result))
    if result.decision == ScreenDecision.EXCLUDED_BY_GEOMETRY:
        return EXIT_EXCLUDED
    if result.decision == ScreenDecision.INDETERMINATE:
        return EXIT_INDETERMINATE
    return EXIT_OK
