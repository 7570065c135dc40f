"""``rtcheck export``: eligibility records into a trial's data system."""

from __future__ import annotations

import argparse
import sys

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
    db_option,
    db_url,
    existing_database,
    refuse_writing_over_inputs,
    write_text,
)
from rtcheck.errors import UsageError
from rtcheck.outputs.export_formats import FORMATS


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
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
    parser.add_argument("records", nargs="*", metavar="RECORD.json", help="record files")
    db_option(parser)
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument(
        "--map-subjects",
        metavar="FILE",
        help="CSV file, header patient_id,subject_key: the trial's key of each PatientID",
    )
    parser.add_argument("--dictionary", metavar="FILE", help="redcap: write the data dictionary")
    parser.add_argument(
        "--study-oid", default="ST.RTCHECK", metavar="OID", help="odm: the study's OID"
    )
    parser.add_argument(
        "--subject-system",
        metavar="URI",
        help="fhir: the system of the subject identifiers (default urn:rtcheck:trial-subject)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck export``; its exit status."""
    from rtcheck.outputs.subjects import read_subject_map
    from rtcheck.outputs.trial_export import export_text, records_from_files

    if args.records and args.db:
        raise UsageError("give record files or --db, not both")
    if args.dictionary and args.format not in ("redcap", "redcap-json"):
        raise UsageError("--dictionary goes with --format redcap or redcap-json")
    if not args.map_subjects:
        raise UsageError(
            "--map-subjects FILE is needed: a trial's data system takes its subject keys, "
            "never a hospital's PatientID (a CSV file with the header patient_id,subject_key)"
        )
    refuse_writing_over_inputs(
        [args.out, args.dictionary],
        [*args.records, args.map_subjects],
        None if args.records else db_url(args.db),
    )
    subjects = read_subject_map(args.map_subjects)
    if args.records:
        records = records_from_files(args.records)
    else:
        url = existing_database(db_url(args.db))
        from rtcheck.archive.store import open_store, stored_records

        records = list(stored_records(open_store(url)))
    if not records:
        raise UsageError("no eligibility record to export")
    text = export_text(records, args.format, subjects, args.study_oid, args.subject_system)
    if args.out:
        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    if args.dictionary:
        from rtcheck.outputs.redcap import data_dictionary_csv

        write_text(args.dictionary, data_dictionary_csv())
    print(f"{len(records)} records exported as {args.format}", file=sys.stderr)
    return EXIT_OK
