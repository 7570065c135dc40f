"""``rtcheck listen``: a DICOM Storage SCP that checks each plan once complete."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
    ae_title_option,
    db_option,
    db_url,
    port,
    protocol_option,
)
from rtcheck.errors import UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
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
    parser.add_argument("--storage", metavar="DIR", required=True, help="where objects are kept")
    parser.add_argument("--port", type=port, default=11112, help="TCP port (default 11112)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; another needs --allow)",
    )
    ae_title_option(parser)
    parser.add_argument(
        "--allow",
        action="append",
        metavar="AE[@HOST]",
        default=[],
        help="a calling AE title (and host) allowed to send; repeat for more (default: any, "
        "on loopback only)",
    )
    protocol_option(parser)
    db_option(parser)
    parser.add_argument("--reports", metavar="DIR", help="write each checked plan's report here")
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds without a new object before plans are checked (default 5)",
    )
    parser.add_argument(
        "--store-images", action="store_true", help="keep CT/MR images too (default: not kept)"
    )
    parser.add_argument(
        "--max-associations",
        type=int,
        default=32,
        metavar="N",
        help="associations at once (default 32); a connection that asks for none within 5 s "
        "is dropped",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds an association may stay silent before it is ended (default 30)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck listen``; its exit status."""
    import logging
    import signal
    import threading

    from rtcheck.network.listener import Listener, ListenerSettings, Peer

    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and not args.allow:
        raise UsageError(f"listening on {args.host} needs --allow (who may send)")
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
    url = db_url(args.db)
    from rtcheck import logs

    logs.configure()
    log = logging.getLogger("rtcheck.listen")

    def check(storage: Path) -> None:
        from datetime import UTC, datetime

        from rtcheck.archive.batch import run_batch
        from rtcheck.archive.store import open_store, plan_rows

        started = datetime.now(UTC).isoformat(timespec="seconds")
        summary = run_batch(storage, args.protocol, db_url=url, workers=1, report_dir=args.reports)
        if not summary.checked:
            return
        for row in plan_rows(open_store(url)):
            if str(row["checked_at"]) < started:
                continue
            outcome = row["decision"] or f"error: {row['error']}"
            failed = f"; failed: {row['failed_mandatory']}" if row["failed_mandatory"] else ""
            log.info(
                "plan %s of patient %s: %s%s", row["plan_key"], row["patient_id"], outcome, failed
            )

    listener = Listener(
        ListenerSettings(
            storage=Path(args.storage),
            port=args.port,
            host=args.host,
            ae_title=args.ae_title,
            allow=allow,
            settle_s=args.settle,
            store_images=args.store_images,
            check=check,
            max_associations=args.max_associations,
            idle_timeout_s=args.idle_timeout,
        )
    )
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
