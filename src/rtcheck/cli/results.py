"""``rtcheck results``: what the results database holds, one row per plan."""

from __future__ import annotations

import argparse
import sys

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
    db_option,
    db_url,
    existing_database,
)


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "results",
        epilog="examples:\n  rtcheck results --db results.db\n"
        "  rtcheck results --db results.db --format csv > results.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="what the database holds, one row per plan",
        description="List stored plans.",
    )
    db_option(parser)
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        help="table (by patient; the default on a terminal), csv (the default otherwise) or json",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck results``; its exit status."""
    from rtcheck.archive.batch import results_csv, results_json
    from rtcheck.archive.store import open_store

    url = existing_database(db_url(args.db))
    engine = open_store(url)
    shown = args.format or ("table" if sys.stdout.isatty() else "csv")
    if shown == "table":
        from rtcheck.archive.listing import results_table
        from rtcheck.archive.store import plan_rows

        sys.stdout.write(results_table(plan_rows(engine, with_files=True)))
    else:
        sys.stdout.write(results_csv(engine) if shown == "csv" else results_json(engine) + "\n")
    return EXIT_OK
