"""What the commands share: exit statuses, the usage error, the parser class, the options
several commands take, argparse ``type=`` validators, and the guards on output paths."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from rtcheck.errors import UsageError

if TYPE_CHECKING:
    from rtcheck.protocol.definition import Protocol
from rtcheck.logs import one_line

EXIT_OK = 0
EXIT_EXCLUDED = 1
EXIT_USAGE = 2
EXIT_INDETERMINATE = 3
EXIT_PLAN_ERRORS = 4
EXIT_INTERNAL = 70


def ae_title(text: str) -> str:
    """An AE title as argparse's ``type``: 1 to 16 characters of printable ASCII without a
    backslash (PS3.5's AE value representation)."""
    if not 0 < len(text.strip()) <= 16 or not all(" " <= c <= "~" and c != "\\" for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: an AE title is 1 to 16 printable ASCII characters, without a backslash"
        )
    return text.strip()


def port(text: str) -> int:
    """A TCP port as argparse's ``type``: 1 to 65535."""
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is from 1 to 65535")
    return int(text)


def existing_database(url: str) -> str:
    """``url``, when it is not a SQLite file that does not exist: opening one would create an
    empty database and show nothing (a typo, most likely)."""
    database = sqlite_file(url)
    if database is not None and str(database) != ":memory:" and not database.is_file():
        raise UsageError(f"no results database at {database} (rtcheck batch --db makes one)")
    return url


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line through :class:`UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


#: What each command module's ``add_parser`` adds its parser to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def batch_options(parser: argparse.ArgumentParser) -> None:
    """The options of a batch check (``batch`` and ``pull``)."""
    protocol_option(parser)
    db_option(parser)
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
    end_caps_option(parser)
    parser.add_argument(
        "--screen",
        action="store_true",
        help="also screen every structure set that has no dose yet (as rtcheck screen does); "
        "stored as screens, never as plan checks",
    )


def protocol_option(parser: argparse.ArgumentParser) -> None:
    """``--protocol``: a bundled protocol's name or a protocol file."""
    parser.add_argument(
        "--protocol",
        metavar="NAME|FILE",
        help="bundled protocol name or YAML file (default: eso-oligo-rt)",
    )


def given_files(args: argparse.Namespace, *paths: str) -> list[str]:
    """The files a command reads: ``paths``, and the map and protocol where they are files
    (never to be written over)."""
    return [*paths, *(f for f in (args.map, args.protocol) if f and os.path.isfile(f))]


def protocol_and_map(args: argparse.Namespace) -> tuple[Protocol, dict[str, str], dict[str, Any]]:
    """The protocol of ``--protocol``, and the ROI names and lesion facts of ``--map``."""
    from rtcheck.protocol.definition import load_protocol
    from rtcheck.protocol.lesions import KNOWN_SITES
    from rtcheck.protocol.names import read_lesion_map, read_map_file

    protocol = load_protocol(args.protocol)
    if not args.map:
        return protocol, {}, {}
    mapping = read_map_file(args.map, protocol.derived)
    return protocol, mapping, read_lesion_map(args.map, KNOWN_SITES | protocol.lesion_sites)


def db_option(parser: argparse.ArgumentParser) -> None:
    """``--db``, the results database, of every command that reads or writes it."""
    parser.add_argument("--db", metavar="URL", help="database URL or SQLite file (rtcheck.db)")


def ae_title_option(parser: argparse.ArgumentParser) -> None:
    """``--ae-title``, this node's AE title, of the commands that speak DICOM."""
    parser.add_argument(
        "--ae-title", default="RTCHECK", type=ae_title, help="this node's AE title (RTCHECK)"
    )


def end_caps_option(parser: argparse.ArgumentParser) -> None:
    """``--end-caps``, of every command that computes DVHs."""
    parser.add_argument(
        "--end-caps",
        choices=("half-slab", "none"),
        default="half-slab",
        help="how far an ROI's outermost contour planes reach along z: half a slice beyond "
        "them (half-slab, the default; MIM, Pinnacle) or not beyond them (none; as Eclipse)",
    )


def db_url(value: str | None) -> str:
    """``--db`` as a database URL: a plain path is a SQLite file; none is ``rtcheck.db``."""
    if not value:
        from rtcheck.archive.store import DEFAULT_URL

        return DEFAULT_URL
    return value if "://" in value else f"sqlite:///{value}"


def print_some(lines: Iterable[str], limit: int = 20) -> None:
    """Print the first ``limit`` lines and how many more there are (all are in the database or
    can be listed again)."""
    items = list(lines)
    for line in items[:limit]:
        print(one_line(line))  # a value from a DICOM file cannot start a line of its own
    if len(items) > limit:
        print(f"... and {len(items) - limit} more")


def shown_url(url: str) -> str:
    """A database URL as printed: its password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def refuse_writing_over_inputs(
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
    database = sqlite_file(database_url) if database_url else None
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


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL, or None for another database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def write_text(path: str, text: str) -> None:
    """Write an output file (UTF-8, ending in a newline); its folder must exist."""
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"{path}: folder {target.parent} does not exist")
    target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def print_or_write_record(
    record: dict[str, Any], table: Callable[[], str], json_path: str | None
) -> None:
    """A command's record and table: the record on stdout for ``--json -`` (and no table),
    else the table on stdout and the record written to ``json_path`` when given."""
    if json_path == "-":
        json.dump(record, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return
    sys.stdout.write(table())
    if json_path:
        write_text(json_path, json.dumps(record, indent=2, allow_nan=False))
