"""The ``rtcheck`` command line: a thin shell over the library.

One module per command, each pairing ``add_parser(commands)`` (its options, and
``set_defaults(run=run)``) with ``run(args)`` (which imports the stages it needs, so that
start-up stays fast); :data:`COMMANDS` names them in the order ``--help`` shows. A command
line that names its command imports that command's module alone. What several commands share
is in :mod:`rtcheck.cli._common`.

Exit status: 0 success (``check``: not excluded), 1 ``check``: excluded, 3 ``check``:
indeterminate, 4 some plans could not be checked (``batch``, ``pull``), 2 bad input or usage
(one line on stderr, no traceback), 70 an internal error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from importlib import import_module
from typing import NoReturn

from rtcheck import __version__
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
    "console",
    "main",
    "shown_url",
]

#: The commands (each a module of this package), in the order ``rtcheck --help`` lists them.
COMMANDS = (
    "dvh",
    "check",
    "screen",
    "batch",
    "results",
    "protocols",
    "phantom",
    "listen",
    "pull",
    "export",
    "serve",
)
#: Commands that draw no progress bar (see :func:`_without_progress_bars`).
_QUIET = ("dvh", "check", "screen", "phantom")
#: Commands whose process ends without the interpreter's teardown (see :func:`console`): they
#: start no threads or processes and have written and closed every file when they return.
ONE_SHOT = ("dvh", "check", "screen")


def parser(command: str | None = None) -> Parser:
    """The command line's parser: of every command, or of ``command`` alone (one of
    :data:`COMMANDS`), which leaves the other commands' modules unimported."""
    top = Parser(
        prog="rtcheck",
        description="Check a radiotherapy plan's DICOM RT objects against dose limits.",
    )
    top.add_argument("--version", action="version", version=f"rtcheck {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name in COMMANDS if command is None else (command,):
        import_module(f"rtcheck.cli.{name}").add_parser(commands)
    return top


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names first, if it is one; None for ``--help``, ``--version``, a
    misspelt command and no arguments, which need every command's parser."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def _without_progress_bars() -> None:
    """Keep pydicom from importing tqdm in a command that shows no progress bar: pydicom imports
    it, whenever it is installed, for the progress of downloads rtcheck never makes, and works
    without it (a sixth of rtcheck's own import time). Not for batch, which draws one."""
    if "tqdm" not in sys.modules:
        sys.modules["tqdm"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return _run(argv)[0]


def console() -> NoReturn:
    """The ``rtcheck`` program (and ``python -m rtcheck``): :func:`main`, then the exit.

    After a one-shot command (:data:`ONE_SHOT`) the process ends at once, its output flushed,
    without the interpreter's teardown: finalising some 600 modules and collecting and
    freeing every object of the plan took about 60 ms of a clinical-size ``check`` (a
    tenth of it), for nothing the user sees. The long-running commands, and their thread and
    process pools, exit as usual.
    """
    status, command = _run(None)
    if command in ONE_SHOT:
        with contextlib.suppress(OSError):  # a reader that has gone (BrokenPipeError)
            sys.stdout.flush()
        with contextlib.suppress(OSError):
            sys.stderr.flush()
        logging.shutdown()
        os._exit(status)
    sys.exit(status)


def _run(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """Run the command line; returns the exit status and the command run (None where the
    arguments could not be parsed)."""
    keep_freed_memory()
    one_blas_thread()
    command = None
    try:
        words = sys.argv[1:] if argv is None else argv
        args = parser(_named_command(words)).parse_args(words)
        command = args.command
        if args.command in _QUIET:
            _without_progress_bars()
        status: int = args.run(args)
        return status, command
    except RtcheckError as exc:
        print(f"rtcheck: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE, command
    except BrokenPipeError:  # the reader (e.g. head) has gone; nothing left to say
        return EXIT_OK, command
    except OSError as exc:
        print(f"rtcheck: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE, command
    except KeyboardInterrupt:
        print("rtcheck: interrupted", file=sys.stderr)
        return 130, command
    except Exception as exc:  # a bug: say so in one line, with the traceback on request
        if os.environ.get("RTCHECK_DEBUG"):
            traceback.print_exc()
        print(
            f"rtcheck: internal error: {type(exc).__name__}: {one_line(exc)} "
            "(set RTCHECK_DEBUG=1 for details and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL, command
