"""The ``rtcheck`` command line: a thin shell over the library.

One module per command, each pairing ``add_parser(commands)`` (its options, and
``set_defaults(run=run)``) with ``run(args)`` (which imports the stages it needs, so that
start-up stays fast); :data:`COMMANDS` lists them in the order ``--help`` shows. What several
commands share is in :mod:`rtcheck.cli._common`.

Exit status: 0 success (``check``: not excluded), 1 ``check``: excluded, 3 ``check``:
indeterminate, 4 some plans could not be checked (``batch``, ``pull``), 2 bad input or usage
(one line on stderr, no traceback), 70 an internal error.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from rtcheck import __version__
from rtcheck.cli import (
    batch,
    check,
    dvh,
    export,
    listen,
    phantom,
    protocols,
    pull,
    results,
    screen,
    serve,
)
from rtcheck.cli._common import (
    EXIT_EXCLUDED,
    EXIT_INDETERMINATE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PLAN_ERRORS,
    EXIT_USAGE,
    Parser,
    shown_url,
)
from rtcheck.errors import RtcheckError, UsageError
from rtcheck.logs import one_line
from rtcheck.runtime import keep_freed_memory, one_blas_thread

__all__ = [
    "COMMANDS",
    "EXIT_EXCLUDED",
    "EXIT_INDETERMINATE",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PLAN_ERRORS",
    "EXIT_USAGE",
    "UsageError",
    "main",
    "shown_url",
]

#: The commands, in the order ``rtcheck --help`` lists them.
COMMANDS = (dvh, check, screen, batch, results, protocols, phantom, listen, pull, export, serve)
#: Commands that draw no progress bar (see :func:`_without_progress_bars`).
_QUIET = ("dvh", "check", "screen", "phantom")


def parser() -> Parser:
    """The whole command line's parser."""
    top = Parser(
        prog="rtcheck",
        description="Check a radiotherapy plan's DICOM RT objects against dose limits.",
    )
    top.add_argument("--version", action="version", version=f"rtcheck {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return top


def _without_progress_bars() -> None:
    """Keep pydicom from importing tqdm in a command that shows no progress bar: pydicom imports
    it, whenever it is installed, for the progress of downloads rtcheck never makes, and works
    without it (a sixth of rtcheck's own import time). Not for batch, which draws one."""
    if "tqdm" not in sys.modules:
        sys.modules["tqdm"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    keep_freed_memory()
    one_blas_thread()
    try:
        args = parser().parse_args(argv)
        if args.command in _QUIET:
            _without_progress_bars()
        status: int = args.run(args)
        return status
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
