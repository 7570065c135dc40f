"""The log of the long-running commands (``listen``, ``pull``, ``serve``): one line per event.

Every value in a log line may come from a DICOM file or a peer (a PatientID, an AE title, a
file name), so each line is written with its control characters escaped: a newline in a
PatientID cannot start a line of its own that reads like rtcheck's. A library's warning
(pydicom's, with the path of the file that raised it) becomes one line of its own category
and message; a traceback is logged only when ``RTCHECK_DEBUG`` is set, otherwise the
exception's type and message end the line.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any, TextIO

#: Characters escaped in a log line: C0 and C1 controls, DEL, and the Unicode line breaks.
_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, 0x85]
}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def one_line(text: object) -> str:
    """``text`` with every control character and line break escaped (``\\n``, ``\\x1b``)."""
    return str(text).translate(_ESCAPES)


def printable(text: object) -> str:
    """``text`` as shown to a person on one line: every character that is not printable (a
    line break, an escape) as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def debugging() -> bool:
    """Whether tracebacks are wanted (``RTCHECK_DEBUG`` set and not empty)."""
    return bool(os.environ.get("RTCHECK_DEBUG"))


class OneLineFormatter(logging.Formatter):
    """``time message`` on one line, the message escaped; an exception's traceback only when
    debugging."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not debugging():
            kind, error = record.exc_info[0], record.exc_info[1]
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"{record.getMessage()}: {kind.__name__ if kind else 'error'}: {error}"
            record.args, record.exc_info, record.exc_text = None, None, None
        line = super().format(record)
        if record.exc_info:  # debugging: the traceback on its own lines, as Python prints it
            message = one_line(record.getMessage())
            return line.replace(record.getMessage(), message, 1)
        return one_line(line)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Log to ``stream`` (stderr) in single lines: rtcheck's loggers at ``level``, the network
    library's warnings and errors, and Python warnings as lines of their own."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pynetdicom says at length what rtcheck says in one line; its errors remain.
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    warnings.showwarning = _warning_line


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A Python warning as one log line: its category and message, not the library's path."""
    logging.getLogger("rtcheck.warnings").warning("%s: %s", category.__name__, message)
