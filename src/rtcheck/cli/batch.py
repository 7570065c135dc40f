"""``rtcheck batch``: every plan of an archive checked in parallel into a database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtcheck.cli._common import (
    EXIT_OK,
    EXIT_PLAN_ERRORS,
    Commands,
    batch_options,
    db_url,
    print_some,
    refuse_writing_over_inputs,
    shown_url,
    write_text,
)
from rtcheck.errors import NoPlanFoundError, UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "batch",
        epilog=(
            "examples:\n"
            "  rtcheck batch /archive --db results.db --html summary.html\n"
            "  rtcheck batch /archive --db postgresql+psycopg://qa@dbhost/rtcheck --workers 8"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="check every plan of an archive in parallel into a database (resumable)",
        description="Index an archive, check every plan not yet stored, store the outcomes. "
        "Exit status: 0 all plans checked, 4 some plans could not be checked, 2 bad input.",
    )
    parser.add_argument("archive", metavar="ARCHIVE", help="folder to index (searched recursively)")
    batch_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck batch``; its exit status."""
    from tqdm import tqdm

    from rtcheck.archive.batch import results_csv, run_batch, write_records
    from rtcheck.archive.store import open_store
    from rtcheck.dicom.slabs import EndCaps

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    refuse_writing_over_inputs([args.out, args.html], [args.archive], db_url(args.db))
    bar = tqdm(total=0, unit="plan", file=sys.stderr, disable=None, dynamic_ncols=True)

    def progress(summary: object, total: int) -> None:
        from rtcheck.archive.batch import BatchSummary
        from rtcheck.evaluation.results import Eligibility

        assert isinstance(summary, BatchSummary)
        bar.total = total
        bar.set_postfix(
            excluded=summary.decisions[Eligibility.EXCLUDED],
            indeterminate=summary.decisions[Eligibility.INDETERMINATE],
            errors=len(summary.errors),
            refresh=False,
        )
        bar.update(1)

    url = db_url(args.db)
    try:
        report_dir = _reports_beside(args.html) if args.html else None
        summary = run_batch(
            args.archive,
            args.protocol,
            db_url=url,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=progress,
            report_dir=report_dir,
            end_caps=EndCaps(args.end_caps),
            screen=args.screen,
        )
    finally:
        bar.close()
    index = summary.index
    assert index is not None
    print(
        f"{index.files_seen} files indexed: {summary.plans_found} plans, "
        f"{index.images_skipped} images skipped, {len(index.orphans)} orphans, "
        f"{len(index.unreadable)} unreadable"
        + (f", {index.not_regular} not regular files skipped" if index.not_regular else "")
        + (f", {index.copies_skipped} identical copies skipped" if index.copies_skipped else "")
    )
    counts = [f"{n} {d}" for d, n in sorted(summary.decisions.items())]
    counts.append(f"{len(summary.errors)} errors")
    print(
        f"{summary.checked} plans checked, {summary.skipped} already stored: "
        f"{', '.join(counts)}; results in {shown_url(url)}"
    )
    print_some(f"orphan {o.modality}: {o.path}: {o.reason}" for o in index.orphans)
    print_some(f"unreadable: {path}: {reason}" for path, reason in index.unreadable)
    print_some(f"error: plan {key}: {message}" for key, message in summary.errors)
    if summary.plans_found == 0:
        # Almost always a wrong path: say so, and do not pretend all went well.
        raise NoPlanFoundError(
            f"no plan found under {args.archive} (an RTSTRUCT with an RTDOSE of its frame of "
            "reference): is it the right folder?"
        )
    engine = open_store(url)
    if args.out:
        write_text(args.out, results_csv(engine))
    if args.records:
        write_records(engine, args.records)
    if args.html:
        from rtcheck.archive.store import failing_limits, plan_rows
        from rtcheck.outputs.html_summary import archive_summary_html

        page = Path(args.html)
        summary_page = archive_summary_html(
            plan_rows(engine), failing_limits(engine), page, _reports_beside(args.html)
        )
        write_text(args.html, summary_page)
    return EXIT_PLAN_ERRORS if summary.errors else EXIT_OK


def _reports_beside(summary_path: str) -> Path:
    """The folder of plan reports that goes with an archive summary page."""
    page = Path(summary_path)
    if not page.parent.is_dir():
        raise UsageError(f"{summary_path}: folder {page.parent} does not exist")
    return page.with_name(page.stem + "_reports")
