"""The ``rtcheck`` command line: a thin shell over the library.

Exit status: 0 success (``check``: not excluded), 1 ``check``: excluded, 3 ``check``:
indeterminate, 2 bad input or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from rtcheck import __version__
from rtcheck.errors import RtcheckError
from rtcheck.logs import one_line
from rtcheck.runtime import keep_freed_memory

EXIT_OK = 0
EXIT_EXCLUDED = 1
EXIT_USAGE = 2
EXIT_INDETERMINATE = 3
EXIT_PLAN_ERRORS = 4
EXIT_INTERNAL = 70


class UsageError(RtcheckError):
    """The command line itself is wrong."""


def _ae_title(text: str) -> str:
    """An AE title as argparse's ``type``: 1 to 16 characters of printable ASCII without a
    backslash (PS3.5's AE value representation)."""
    if not 0 < len(text.strip()) <= 16 or not all(" " <= c <= "~" and c != "\\" for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: an AE title is 1 to 16 printable ASCII characters, without a backslash"
        )
    return text.strip()


class NoPlanFoundError(UsageError):
    """A folder to check holds no plan (almost always the wrong folder)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rtcheck",
        description="Check a radiotherapy plan's DICOM RT objects against dose limits.",
    )
    parser.add_argument("--version", action="version", version=f"rtcheck {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    dvh = commands.add_parser(
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
    dvh.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders of one plan")
    dvh.add_argument(
        "--structure",
        action="append",
        default=[],
        metavar="NAME",
        help="ROI name to compute (repeatable; default: every ROI but the body outline)",
    )
    dvh.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="METRIC",
        help="TG-263 metric such as D95%%[Gy], V20Gy[%%], D0.03cc[Gy] (repeatable)",
    )
    dvh.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    dvh.add_argument("--csv", metavar="FILE", help="write one CSV row per structure")
    dvh.add_argument(
        "--prescription",
        type=float,
        metavar="GY",
        help="prescription dose (Gy) for metrics relative to it (default: the RTPLAN's)",
    )
    dvh.add_argument(
        "--sum", action="store_true", help="sum the doses of several plans into one dose set"
    )
    _end_caps_option(dvh)

    check = commands.add_parser(
        "check",
        epilog=(
            "examples:\n"
            "  rtcheck check plan/\n"
            "  rtcheck check plan/ --map names.yaml --json record.json --html report.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="evaluate a protocol's dose limits and decide exclusion criterion 19",
        description="Evaluate every limit of a protocol on a plan and decide criterion 19. "
        "Exit status: 0 not_excluded, 1 excluded, 3 indeterminate, 2 bad input.",
    )
    check.add_argument(
        "paths", nargs="+", metavar="PATH", help="DICOM files or folders of one plan"
    )
    check.add_argument(
        "--protocol",
        metavar="NAME|FILE",
        help="bundled protocol name or YAML file (default: eso-oligo-rt)",
    )
    check.add_argument(
        "--fractions", type=int, metavar="N", help="number of fractions where no RTPLAN says"
    )
    check.add_argument("--map", metavar="FILE", help="YAML map of ROI names to TG-263 names")
    check.add_argument("--json", metavar="FILE", help="write the eligibility record ('-': stdout)")
    check.add_argument("--html", metavar="FILE", help="write the plan report (one HTML file)")
    _end_caps_option(check)

    batch = commands.add_parser(
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
    batch.add_argument("archive", metavar="ARCHIVE", help="folder to index (searched recursively)")
    _batch_options(batch)

    results = commands.add_parser(
        "results",
        epilog="examples:\n  rtcheck results --db results.db\n"
        "  rtcheck results --db results.db --format csv > results.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="what the database holds, one row per plan",
        description="List stored plans.",
    )
    results.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")
    results.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        help="table (by patient; the default on a terminal), csv (the default otherwise) or json",
    )

    protocols = commands.add_parser(
        "protocols",
        epilog="examples:\n  rtcheck protocols\n  rtcheck protocols eso-oligo-rt --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="list the bundled protocols, or show one protocol's limits",
        description="Without NAME, list the bundled protocols with their version and sources. "
        "With NAME (a bundled protocol) or FILE, print its limits as a table, or as JSON with "
        "--json. Example: rtcheck protocols eso-oligo-rt",
    )
    protocols.add_argument("name", nargs="?", metavar="NAME|FILE", help="the protocol to show")
    protocols.add_argument("--json", action="store_true", help="print the limits as JSON")

    phantom = commands.add_parser(
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
    phantom.add_argument("outdir", metavar="OUTDIR")
    phantom.add_argument(
        "--clinical",
        action="store_true",
        help="a plan of clinical size instead: 1.5 mm dose grid over the whole thorax, contours "
        "every 1.25 mm with several hundred points (about 30 MB)",
    )
    phantom.add_argument(
        "--patient-id", metavar="ID", help="PatientID to write (default: PHANTOM-001)"
    )
    phantom.add_argument(
        "--seed", metavar="TEXT", help="text every UID derives from: another seed, another plan"
    )
    phantom.add_argument(
        "--lesions", type=int, metavar="N", help="metastatic lesions to include, 0 to 5 (default 3)"
    )
    phantom.add_argument(
        "--fractions", type=int, metavar="N", help="fractions of the plan (default 25; 1-8 is "
        "stereotactic)"
    )  # fmt: skip
    phantom.add_argument(
        "--prescription",
        type=float,
        metavar="GY",
        help="prescription to every PTV, Gy (default 50)",
    )
    phantom.add_argument(
        "--no-primary", action="store_true", help="a lesions-only plan: no primary tumour"
    )
    phantom.add_argument(
        "--lesion-plan", action="append", metavar="GY/FX", help="give each lesion, in order, a "
        "plan of its own (RP.M1.dcm...): prescription and fractions, e.g. 30/3; the plans sum"
    )  # fmt: skip
    phantom.add_argument(
        "--lesion-margin", type=float, metavar="MM", help="where each lesion's dose falls to half "
        "beyond its PTV, mm: 4 (default) is conformal, 9 poorly conformal"
    )  # fmt: skip
    listen = commands.add_parser(
        "listen",
        epilog=(
            "examples:\n"
            "  rtcheck listen --storage received/ --allow TPS\n"
            "  rtcheck listen --storage received/ --port 11112 --db results.db --reports reports/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="receive plans over DICOM (a Storage SCP) and check each when it is complete",
        description="A DICOM Storage SCP: accepts C-ECHO and C-STORE of RT structure sets, doses "
        "and plans (CT/MR accepted, kept only with --store-images), writes each object once in "
        "--storage, and checks every complete plan when nothing has arrived for --settle "
        "seconds, storing the outcome in the database (and its report in --reports). Stops on "
        "SIGTERM or Ctrl-C without losing a received object; checks what --storage holds at "
        "start.",
    )
    listen.add_argument("--storage", metavar="DIR", required=True, help="where objects are kept")
    listen.add_argument("--port", type=int, default=11112, help="TCP port (default 11112)")
    listen.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; another needs --allow)",
    )  # fmt: skip
    listen.add_argument(
        "--ae-title", default="RTCHECK", type=_ae_title, help="this node's AE title (RTCHECK)"
    )
    listen.add_argument(
        "--allow", action="append", metavar="AE[@HOST]", default=[],
        help="a calling AE title (and host) allowed to send; repeat for more (default: any, "
        "on loopback only)",
    )  # fmt: skip
    listen.add_argument("--protocol", metavar="NAME|FILE", help="protocol (eso-oligo-rt)")
    listen.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")
    listen.add_argument("--reports", metavar="DIR", help="write each checked plan's report here")
    listen.add_argument(
        "--settle", type=float, default=5.0, metavar="S",
        help="seconds without a new object before plans are checked (default 5)",
    )  # fmt: skip
    listen.add_argument(
        "--store-images", action="store_true", help="keep CT/MR images too (default: not kept)"
    )
    listen.add_argument(
        "--max-associations", type=int, default=32, metavar="N",
        help="associations at once (default 32); a connection that asks for none within 5 s "
        "is dropped",
    )  # fmt: skip
    listen.add_argument(
        "--idle-timeout", type=float, default=30.0, metavar="S",
        help="seconds an association may stay silent before it is ended (default 30)",
    )  # fmt: skip

    pull = commands.add_parser(
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
    pull.add_argument("--pacs", metavar="AE@HOST:PORT", required=True, help="the PACS to query")
    pull.add_argument(
        "--ae-title", default="RTCHECK", type=_ae_title, help="this node's AE title (RTCHECK)"
    )
    pull.add_argument("--patient", metavar="ID", help="only this PatientID (wildcards * and ?)")
    pull.add_argument("--study", metavar="UID", help="only this StudyInstanceUID")
    pull.add_argument("--since", metavar="DATE", help="only studies of this date or later")
    pull.add_argument(
        "--storage", metavar="DIR", default="rtcheck-pulled",
        help="where retrieved objects are kept, as 'rtcheck listen' keeps them; a later pull "
        "only retrieves what is missing (default: rtcheck-pulled)",
    )  # fmt: skip
    pull.add_argument(
        "--move-port", type=int, metavar="PORT",
        help="retrieve by C-MOVE to this node, received on PORT while the pull runs (for a "
        "PACS without C-GET; it must know this AE title at that address and port)",
    )  # fmt: skip
    pull.add_argument(
        "--move-host", default="127.0.0.1", metavar="ADDRESS",
        help="address to receive C-MOVE on (default 127.0.0.1; only the PACS's AE title may "
        "send)",
    )  # fmt: skip
    _batch_options(pull)

    export = commands.add_parser(
        "export",
        epilog=(
            "examples:\n"
            "  rtcheck export --db results.db --format redcap --map-subjects subjects.csv "
            "--out import.csv --dictionary dictionary.csv\n"
            "  rtcheck export record.json --format fhir --map-subjects subjects.csv\n"
            "  rtcheck export --db results.db --format odm --study-oid ESO-OLIGO --map-subjects "
            "subjects.csv --out odm.xml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="eligibility records into a trial's data system (FHIR, REDCap, CDISC ODM)",
        description="Export eligibility records, from the results database (--db) or record "
        "files, as FHIR R4 (one Bundle per record, one per line: NDJSON), a REDCap import file "
        "(CSV, or JSON with redcap-json; --dictionary writes the instrument's data dictionary) "
        "or CDISC ODM 1.3.2 XML. Records are keyed by the trial's subject keys from "
        "--map-subjects (a CSV file with the header patient_id,subject_key); without it, or "
        "for a patient not in it, nothing is exported.",
    )
    export.add_argument("records", nargs="*", metavar="RECORD.json", help="record files")
    export.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")
    export.add_argument("--format", required=True, choices=("fhir", "redcap", "redcap-json",
                                                            "odm"))  # fmt: skip
    export.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    export.add_argument(
        "--map-subjects", metavar="FILE",
        help="CSV file, header patient_id,subject_key: the trial's key of each PatientID",
    )  # fmt: skip
    export.add_argument("--dictionary", metavar="FILE", help="redcap: write the data dictionary")
    export.add_argument(
        "--study-oid", default="ST.RTCHECK", metavar="OID", help="odm: the study's OID"
    )
    export.add_argument(
        "--subject-system", metavar="URI",
        help="fhir: the system of the subject identifiers (default urn:rtcheck:trial-subject)",
    )  # fmt: skip

    serve = commands.add_parser(
        "serve",
        epilog=(
            "examples:\n"
            "  rtcheck serve --db results.db      (then open http://127.0.0.1:8080)\n"
            "  rtcheck serve --db postgresql+psycopg://qa@dbhost/rtcheck --host 0.0.0.0 "
            "--token-file token.txt"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="the QA dashboard and REST API over the results database",
        description="Serve the dashboard (plans, a plan with its report and history, limits "
        "across the archive, protocol what-if, checking an uploaded plan) and its REST API "
        "(OpenAPI description at /openapi.json). Listens on 127.0.0.1 unless told otherwise; "
        "on another address it needs --token-file, and every request then carries the token.",
    )
    serve.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    serve.add_argument(
        "--token-file", metavar="FILE",
        help="file holding the token every request must carry (needed beyond loopback)",
    )  # fmt: skip
    serve.add_argument(
        "--max-upload-mb", type=int, default=512, metavar="MB",
        help="largest plan upload, uncompressed (default 512)",
    )  # fmt: skip
    serve.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="another host name the server is reached by (a DNS name or proxy's); requests "
        "naming any other host are refused",
    )  # fmt: skip
    serve.add_argument(
        "--check-workers", type=int, default=1, metavar="N",
        help="processes checking uploaded plans at once (default 1); 4 more wait, beyond "
        "that a check is refused with 503",
    )  # fmt: skip
    return parser


def _batch_options(parser: argparse.ArgumentParser) -> None:
    """The options of a batch check (``batch`` and ``pull``)."""
    parser.add_argument("--protocol", metavar="NAME|FILE", help="protocol (default: eso-oligo-rt)")
    parser.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: one per core)"
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler to run on (tcp://host:8786)"
    )
    parser.add_argument("--out", metavar="CSV", help="write one CSV row per stored plan")
    parser.add_argument("--records", metavar="DIR", help="write each plan's eligibility record")
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="write an archive summary page, with each checked plan's report beside it",
    )
    _end_caps_option(parser)


def _end_caps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--end-caps",
        choices=("half-slab", "none"),
        default="half-slab",
        help="how far an ROI's outermost contour planes reach along z: half a slice beyond "
        "them (half-slab, the default; MIM, Pinnacle) or not beyond them (none; as Eclipse)",
    )


def _run_dvh(args: argparse.Namespace) -> int:
    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.slabs import EndCaps
    from rtcheck.dvh.metrics import parse_metric
    from rtcheck.dvh.plandvh import DEFAULT_METRICS, select_structures, structure_dvhs
    from rtcheck.outputs.export import dvh_csv, dvh_document, dvh_table

    metrics = args.metric or list(DEFAULT_METRICS)
    for metric in metrics:
        parse_metric(metric)  # refuse a malformed metric before reading any file
    if args.prescription is not None and not args.prescription > 0:
        raise UsageError("--prescription must be a positive dose in Gy")
    _refuse_writing_over_inputs([args.json, args.csv], args.paths)
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
            _write_text(
                args.json,
                json.dumps(dvh_document(plan, results, end_caps), indent=2, allow_nan=False),
            )
    if args.csv:
        _write_text(args.csv, dvh_csv(results))
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.slabs import EndCaps
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.evaluation.results import EXCLUDED, INDETERMINATE
    from rtcheck.outputs.record import eligibility_record
    from rtcheck.outputs.table import check_table
    from rtcheck.protocol.definition import load_protocol
    from rtcheck.protocol.lesions import KNOWN_SITES
    from rtcheck.protocol.names import read_lesion_map, read_map_file

    if args.fractions is not None and args.fractions < 1:
        raise UsageError("--fractions must be a positive number of fractions")
    inputs = [*args.paths, *(f for f in (args.map, args.protocol) if f and os.path.isfile(f))]
    _refuse_writing_over_inputs([args.json, args.html], inputs)
    protocol = load_protocol(args.protocol)
    mapping = read_map_file(args.map, protocol.derived) if args.map else {}
    known_sites = KNOWN_SITES | protocol.lesion_sites
    lesion_map = read_lesion_map(args.map, known_sites) if args.map else {}
    plan = load_plan(args.paths)
    evaluation = evaluate(
        plan, protocol, mapping, lesion_map, args.fractions, EndCaps(args.end_caps)
    )
    record = eligibility_record(evaluation)
    if args.json == "-":
        json.dump(record, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(check_table(evaluation))
        if args.json:
            _write_text(args.json, json.dumps(record, indent=2, allow_nan=False))
    if args.html:
        from rtcheck.outputs.html_report import plan_report_html

        _write_text(args.html, plan_report_html(evaluation))
    decision = evaluation.decision.decision
    if decision == EXCLUDED:
        return EXIT_EXCLUDED
    if decision == INDETERMINATE:
        return EXIT_INDETERMINATE
    return EXIT_OK


def _db_url(value: str | None) -> str:
    if not value:
        from rtcheck.archive.store import DEFAULT_URL

        return DEFAULT_URL
    return value if "://" in value else f"sqlite:///{value}"


def _run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rtcheck.archive.batch import results_csv, run_batch, write_records
    from rtcheck.archive.store import open_store
    from rtcheck.dicom.slabs import EndCaps

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    _refuse_writing_over_inputs([args.out, args.html], [args.archive], _db_url(args.db))
    bar = tqdm(total=0, unit="plan", file=sys.stderr, disable=None, dynamic_ncols=True)

    def progress(summary: object, total: int) -> None:
        from rtcheck.archive.batch import BatchSummary

        assert isinstance(summary, BatchSummary)
        bar.total = total
        bar.set_postfix(
            excluded=summary.decisions["excluded"],
            indeterminate=summary.decisions["indeterminate"],
            errors=len(summary.errors),
            refresh=False,
        )
        bar.update(1)

    url = _db_url(args.db)
    try:
        report_dir = _reports_beside(args.html) if args.html else None
        summary = run_batch(
            args.archive, args.protocol, url, args.workers, args.scheduler, progress, report_dir,
            EndCaps(args.end_caps),
        )  # fmt: skip
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
        f"{', '.join(counts)}; results in {_shown_url(url)}"
    )
    _print_some(f"orphan {o.modality}: {o.path}: {o.reason}" for o in index.orphans)
    _print_some(f"unreadable: {path}: {reason}" for path, reason in index.unreadable)
    _print_some(f"error: plan {key}: {message}" for key, message in summary.errors)
    if summary.plans_found == 0:
        # Almost always a wrong path: say so, and do not pretend all went well.
        raise NoPlanFoundError(
            f"no plan found under {args.archive} (an RTSTRUCT with an RTDOSE of its frame of "
            "reference): is it the right folder?"
        )
    engine = open_store(url)
    if args.out:
        _write_text(args.out, results_csv(engine))
    if args.records:
        write_records(engine, args.records)
    if args.html:
        from rtcheck.outputs.html_summary import archive_summary_html

        page = Path(args.html)
        _write_text(args.html, archive_summary_html(engine, page, _reports_beside(args.html)))
    return EXIT_PLAN_ERRORS if summary.errors else EXIT_OK


def _reports_beside(summary_path: str) -> Path:
    """The folder of plan reports that goes with an archive summary page."""
    page = Path(summary_path)
    if not page.parent.is_dir():
        raise UsageError(f"{summary_path}: folder {page.parent} does not exist")
    return page.with_name(page.stem + "_reports")


def _print_some(lines: Iterable[str], limit: int = 20) -> None:
    """Print the first ``limit`` lines and how many more there are (all are in the database or
    can be listed again)."""
    items = list(lines)
    for line in items[:limit]:
        print(one_line(line))  # a value from a DICOM file cannot start a line of its own
    if len(items) > limit:
        print(f"... and {len(items) - limit} more")


def _run_results(args: argparse.Namespace) -> int:
    from rtcheck.archive.batch import results_csv, results_json
    from rtcheck.archive.store import open_store

    url = _db_url(args.db)
    database = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if database is not None and database != ":memory:" and not Path(database).is_file():
        # Opening it would create an empty database and list nothing: a typo, most likely.
        raise UsageError(f"no results database {database} (rtcheck batch --db creates one)")
    engine = open_store(url)
    shown = args.format or ("table" if sys.stdout.isatty() else "csv")
    if shown == "table":
        from rtcheck.archive.listing import results_table
        from rtcheck.archive.store import plan_rows

        sys.stdout.write(results_table(plan_rows(engine, with_files=True)))
    else:
        sys.stdout.write(results_csv(engine) if shown == "csv" else results_json(engine) + "\n")
    return EXIT_OK


def _run_protocols(args: argparse.Namespace) -> int:
    from rtcheck.protocol.definition import bundled_protocols, load_protocol

    if args.name:
        from rtcheck.outputs.protocol_table import protocol_document, protocol_table

        protocol = load_protocol(args.name)
        if args.json:
            json.dump(protocol_document(protocol), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(protocol_table(protocol))
        return EXIT_OK

    for path in bundled_protocols():
        protocol = load_protocol(str(path))
        print(f"{protocol.name}  version {protocol.version}  ({path})")
        if protocol.title:
            print(f"  {protocol.title}")
        limits = len(protocol.oar_limits) + len(protocol.lesion_coverage)
        limits += len(protocol.lesion_oar_limits)
        print(f"  {limits} limits; sources:")
        for key, text in protocol.sources.items():
            print(f"    {key}: {text}")
    return EXIT_OK


def _run_listen(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from rtcheck.network.listener import Listener, ListenerSettings, Peer

    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and not args.allow:
        raise UsageError(f"listening on {args.host} needs --allow (who may send)")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be from 1 to 65535")
    if not 0 <= args.settle <= 3600:
        raise UsageError("--settle must be from 0 to 3600 seconds")
    for option, value in (("--storage", args.storage), ("--reports", args.reports)):
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            raise UsageError(f"{option} {value}: not a folder")
    try:
        allow = tuple(Peer.parse(text) for text in args.allow)
    except ValueError as exc:
        raise UsageError(f"--allow {exc}") from None
    if not 1 <= args.max_associations <= 1000:
        raise UsageError("--max-associations must be from 1 to 1000")
    if not 1 <= args.idle_timeout <= 3600:
        raise UsageError("--idle-timeout must be from 1 to 3600 seconds")
    url = _db_url(args.db)
    from rtcheck import logs

    logs.configure()
    log = logging.getLogger("rtcheck.listen")

    def check(storage: Path) -> None:
        from datetime import UTC, datetime

        from rtcheck.archive.batch import run_batch
        from rtcheck.archive.store import open_store, plan_rows

        started = datetime.now(UTC).isoformat(timespec="seconds")
        summary = run_batch(storage, args.protocol, url, workers=1, report_dir=args.reports)
        if not summary.checked:
            return
        for row in plan_rows(open_store(url)):
            if str(row["checked_at"]) < started:
                continue
            outcome = row["decision"] or f"error: {row['error']}"
            failed = f"; failed: {row['failed_mandatory']}" if row["failed_mandatory"] else ""
            log.info("plan %s of patient %s: %s%s", row["plan_key"], row["patient_id"],
                     outcome, failed)  # fmt: skip

    listener = Listener(
        ListenerSettings(
            storage=Path(args.storage), port=args.port, host=args.host, ae_title=args.ae_title,
            allow=allow, settle_s=args.settle, store_images=args.store_images, check=check,
            max_associations=args.max_associations, idle_timeout_s=args.idle_timeout,
        )
    )  # fmt: skip
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    try:
        listener.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    stop.wait()
    listener.stop()
    return EXIT_OK


def _run_pull(args: argparse.Namespace) -> int:
    import logging

    from rtcheck.network.pull import MoveReceiver, Pacs, PullQuery, parse_since, pull
    from rtcheck.network.storage import ObjectStore

    _refuse_writing_over_inputs([args.out, args.html], [], _db_url(args.db))
    try:
        pacs = Pacs.parse(args.pacs)
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    move = None
    if args.move_port is not None:
        if not 0 < args.move_port < 65536:
            raise UsageError("--move-port must be from 1 to 65535")
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
    _print_some(f"series {uid} not retrieved: {reason}" for uid, reason in summary.failed)
    if not summary.series:
        raise UsageError(f"no RTSTRUCT, RTDOSE or RTPLAN series on {pacs} matches the query")
    args.archive = str(storage)
    try:
        status = _run_batch(args)
    except NoPlanFoundError:
        if not summary.failed:
            raise
        # The series that failed are the reason: they are listed above.
        print("rtcheck: no complete plan was retrieved", file=sys.stderr)
        return EXIT_PLAN_ERRORS
    return EXIT_PLAN_ERRORS if summary.failed else status


def _run_export(args: argparse.Namespace) -> int:
    from rtcheck.outputs.subjects import read_subject_map
    from rtcheck.outputs.trial_export import export_text, records_from_database, records_from_files

    if args.records and args.db:
        raise UsageError("give record files or --db, not both")
    if args.dictionary and args.format not in ("redcap", "redcap-json"):
        raise UsageError("--dictionary goes with --format redcap or redcap-json")
    if not args.map_subjects:
        raise UsageError(
            "--map-subjects FILE is needed: a trial's data system takes its subject keys, "
            "never a hospital's PatientID (a CSV file with the header patient_id,subject_key)"
        )
    _refuse_writing_over_inputs(
        [args.out, args.dictionary], [*args.records, args.map_subjects],
        None if args.records else _db_url(args.db),
    )  # fmt: skip
    subjects = read_subject_map(args.map_subjects)
    if args.records:
        records = records_from_files(args.records)
    else:
        url = _db_url(args.db)
        database = Path(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite:///") and not database.is_file():
            raise UsageError(f"no results database at {database}")  # not a new, empty one
        records = list(records_from_database(url))
    if not records:
        raise UsageError("no eligibility record to export")
    text = export_text(records, args.format, subjects, args.study_oid, args.subject_system)
    if args.out:
        _write_text(args.out, text)
    else:
        sys.stdout.write(text)
    if args.dictionary:
        from rtcheck.outputs.redcap import data_dictionary_csv

        _write_text(args.dictionary, data_dictionary_csv())
    print(f"{len(records)} records exported as {args.format}", file=sys.stderr)
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:

    try:
        import uvicorn

        from rtcheck.web.app import ServeSettings, create_app
        from rtcheck.web.uploads import UploadLimits
    except ImportError as exc:
        raise UsageError(f"serve needs the serve extra ({exc.name} is missing): "
                         "pip install 'rtcheck[serve]'") from None  # fmt: skip
    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    token = None
    if args.token_file:
        token = _read_token(args.token_file)
    elif not loopback:
        raise UsageError(f"serving on {args.host} needs --token-file (who may see the results)")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be from 1 to 65535")
    if args.max_upload_mb < 1:
        raise UsageError("--max-upload-mb must be at least 1")
    url = _db_url(args.db)
    database = Path(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:///") and not database.is_file():
        raise UsageError(f"no results database at {database} (rtcheck batch makes one)")
    if not 1 <= args.check_workers <= 64:
        raise UsageError("--check-workers must be from 1 to 64")
    for name in args.allowed_host:
        if not name or any(c in name for c in "/@ \t\r\n"):
            raise UsageError(f"--allowed-host {name!r}: give a host name, without port or path")
    from rtcheck.web.guard import GuardSettings

    settings = ServeSettings(
        url, token, UploadLimits(max_bytes=args.max_upload_mb * 2**20),
        allowed_hosts=GuardSettings.hosts_for(args.host, args.allowed_host),
        check_workers=args.check_workers,
    )  # fmt: skip
    app = create_app(settings)
    from rtcheck import logs

    logs.configure()
    print(f"rtcheck serve: http://{args.host}:{args.port}/ over {_shown_url(url)}",
          file=sys.stderr)  # fmt: skip
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except SystemExit:  # uvicorn exits when the address is taken; it has said why
        raise UsageError(f"cannot serve on {args.host}:{args.port}") from None
    return EXIT_OK


def _read_token(token_file: str) -> str:
    """The token in ``token_file``: a file only its owner may read (as ssh requires of a
    private key), of UTF-8 text, 16 characters or more."""
    path = Path(token_file)
    mode = path.stat().st_mode
    if path.is_file() and mode & 0o077:
        raise UsageError(
            f"--token-file {token_file}: readable by other users (mode {mode & 0o777:o}); "
            f"run: chmod 600 {token_file}"
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {token_file}: not UTF-8 text") from None
    if len(token) < 16:
        raise UsageError(f"--token-file {token_file}: a token of 16 characters or more")
    return token


def _shown_url(url: str) -> str:
    """A database URL as printed: its password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _run_phantom(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rtcheck.phantom.thorax import (
        CLINICAL,
        DEFAULT_LESIONS,
        MORE_LESIONS,
        ThoraxPhantom,
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


def _refuse_writing_over_inputs(
    outputs: Iterable[str | None], inputs: Iterable[str], database_url: str | None = None
) -> None:
    """Refuse, before any work, an output path that is one of the input files (or the same
    file by another name), the results database, or another output: rtcheck only ever reads
    its inputs, and one typo must not cost the QA history."""
    named = [out for out in outputs if out and out != "-"]
    seen: dict[str, str] = {}
    for out in named:
        real = os.path.realpath(out)
        if real in seen:
            raise UsageError(f"{seen[real]} and {out} are the same file: give each output its own")
        seen[real] = out
    database = _sqlite_file(database_url) if database_url else None
    if database is not None:
        for out in named:
            if os.path.realpath(out) == os.path.realpath(database):
                raise UsageError(f"{out} is the results database: rtcheck never writes over it")
    existing = {}
    for out in named:
        if os.path.exists(out):
            info = os.stat(out)
            existing[(info.st_dev, info.st_ino)] = out
    if not existing:
        return
    if database is not None and database.exists():
        info = database.stat()
        same = existing.get((info.st_dev, info.st_ino))
        if same is not None:
            raise UsageError(f"{same} is the results database: rtcheck never writes over it")
    for name in inputs:
        path = Path(name)
        files = (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                info = file.stat()
            except OSError:
                continue
            clash = existing.get((info.st_dev, info.st_ino))
            if clash is not None:
                raise UsageError(
                    f"{clash} is an input ({file}): rtcheck never writes over its inputs"
                )


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL, or None for another database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _write_text(path: str, text: str) -> None:
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"{path}: folder {target.parent} does not exist")
    target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def _without_progress_bars() -> None:
    """Keep pydicom from importing tqdm in a command that shows no progress bar: pydicom imports
    it, whenever it is installed, for the progress of downloads rtcheck never makes, and works
    without it (a sixth of rtcheck's own import time). Not for batch, which draws one."""
    if "tqdm" not in sys.modules:
        sys.modules["tqdm"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    keep_freed_memory()
    try:
        args = _parser().parse_args(argv)
        if args.command in ("dvh", "check", "phantom"):
            _without_progress_bars()
        if args.command == "dvh":
            return _run_dvh(args)
        if args.command == "check":
            return _run_check(args)
        if args.command == "batch":
            return _run_batch(args)
        if args.command == "results":
            return _run_results(args)
        if args.command == "protocols":
            return _run_protocols(args)
        if args.command == "phantom":
            return _run_phantom(args)
        if args.command == "listen":
            return _run_listen(args)
        if args.command == "pull":
            return _run_pull(args)
        if args.command == "export":
            return _run_export(args)
        if args.command == "serve":
            return _run_serve(args)
        raise UsageError(f"unknown command {args.command}")
    except RtcheckError as exc:
        print(f"rtcheck: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader (e.g. head) has gone; nothing left to say
        return EXIT_OK
    except OSError as exc:
        print(f"rtcheck: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rtcheck: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, with the traceback on request
        if os.environ.get("RTCHECK_DEBUG"):
            traceback.print_exc()
        print(
            f"rtcheck: internal error: {type(exc).__name__}: {one_line(exc)} "
            "(set RTCHECK_DEBUG=1 for details and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
