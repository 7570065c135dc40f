"""``rtcheck pull``: RT plans found on a PACS, retrieved and checked as ``batch`` does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtcheck.cli._common import (
    EXIT_PLAN_ERRORS,
    Commands,
    ae_title_option,
    batch_options,
    db_url,
    port,
    print_some,
    refuse_writing_over_inputs,
)
from rtcheck.errors import NoPlanFoundError, UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "pull",
        epilog=(
            "examples:\n"
            "  rtcheck pull --pacs PACS@pacs.hospital:104 --since 2026-01-01 --db results.db\n"
            "  rtcheck pull --pacs ORTHANC@127.0.0.1:4242 --patient 1234567 --html summary.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="find RT plans on a PACS (C-FIND), retrieve them (C-GET) and check them as batch",
        description="Query a PACS for studies (by patient, study UID, study date), retrieve "
        "their RTSTRUCT, RTDOSE and RTPLAN series that --storage does not hold yet, then check "
        "--storage as 'rtcheck batch' does (plans already stored with the same inputs are "
        "skipped). The PACS must know this node's AE title and allow it C-FIND and C-GET. "
        "Exit status: 0 all plans checked, 4 a series could not be retrieved or a plan "
        "checked, 2 bad input or the PACS unreachable.",
    )
    parser.add_argument("--pacs", metavar="AE@HOST:PORT", required=True, help="the PACS to query")
    ae_title_option(parser)
    parser.add_argument("--patient", metavar="ID", help="only this PatientID (wildcards * and ?)")
    parser.add_argument("--study", metavar="UID", help="only this StudyInstanceUID")
    parser.add_argument("--since", metavar="DATE", help="only studies of this date or later")
    parser.add_argument(
        "--storage",
        metavar="DIR",
        default="rtcheck-pulled",
        help="where retrieved objects are kept, as 'rtcheck listen' keeps them; a later pull "
        "only retrieves what is missing (default: rtcheck-pulled)",
    )
    parser.add_argument(
        "--move-port",
        type=port,
        metavar="PORT",
        help="retrieve by C-MOVE to this node, received on PORT while the pull runs (for a "
        "PACS without C-GET; it must know this AE title at that address and port)",
    )
    parser.add_argument(
        "--move-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to receive C-MOVE on (default 127.0.0.1; only the PACS's AE title may send)",
    )
    batch_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck pull``; its exit status."""
    import logging

    from rtcheck.network.pull import MoveReceiver, Pacs, PullQuery, parse_since, pull
    from rtcheck.network.storage import ObjectStore

    refuse_writing_over_inputs([args.out, args.html], [], db_url(args.db))
    try:
        pacs = Pacs.parse(args.pacs)
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    move = None
    if args.move_port is not None:
        move = MoveReceiver(args.move_port, args.move_host)
    storage = Path(args.storage)
    if storage.exists() and not storage.is_dir():
        raise UsageError(f"--storage {args.storage}: not a folder")
    from rtcheck import logs

    logs.configure(level=logging.WARNING)
    # pynetdicom logs a failed association at length; rtcheck says it in one line.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    query = PullQuery(patient_id=args.patient, study_uid=args.study, since=since)
    summary = pull(pacs, query, ObjectStore(storage), args.ae_title, move=move)
    print(
        f"{pacs}: {summary.studies} studies, {len(summary.series)} RT series; "
        f"{summary.received} objects retrieved, {summary.already_stored} already in {storage}"
        + (f", {len(summary.failed)} series failed" if summary.failed else "")
    )
    print_some(f"series {uid} not retrieved: {reason}" for uid, reason in summary.failed)
    if not summary.series:
        raise UsageError(f"no RTSTRUCT, RTDOSE or RTPLAN series on {pacs} matches the query")
    args.archive = str(storage)
    try:
        from rtcheck.cli import batch

        status = batch.run(args)
    except NoPlanFoundError:
        if not summary.failed:
            raise
        # The series that failed are the reason: they are listed above.
        print("rtcheck: no complete plan was retrieved", file=sys.stderr)
        return EXIT_PLAN_ERRORS
    return EXIT_PLAN_ERRORS if summary.failed else status
