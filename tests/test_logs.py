"""The long-running commands' log: one line per event, whatever the values in it."""

from __future__ import annotations

import io
import logging
import warnings

import pytest

from rtcheck import logs


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.delenv("RTCHECK_DEBUG", raising=False)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    logs.configure(out)
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_values_cannot_start_a_line_of_their_own(stream):
    hostile = "X\r\n2026-01-01 00:00:00 plan 1 of patient Y: not_excluded\x1b[2J\u2028"
    logging.getLogger("rtcheck.listen").info("plan %s of patient %s: %s", "1.2", hostile, "x")
    text = stream.getvalue()
    assert text.count("\n") == 1 and "\x1b" not in text and "\u2028" not in text
    assert "X\\r\\n2026-01-01" in text and "\\x1b[2J" in text


def test_an_exception_is_one_line_unless_debugging(stream, monkeypatch):
    log = logging.getLogger("rtcheck.listen")
    try:
        raise OSError("disk\nfull")
    except OSError:
        log.exception("could not store")
    assert stream.getvalue().count("\n") == 1
    assert "could not store: OSError: disk\\nfull" in stream.getvalue()
    assert "Traceback" not in stream.getvalue()
    monkeypatch.setenv("RTCHECK_DEBUG", "1")
    try:
        raise OSError("again")
    except OSError:
        log.exception("could not store")
    assert "Traceback" in stream.getvalue()


def test_a_librarys_warning_is_one_line_without_its_path(stream):
    warnings.warn("Invalid value for VR DS: 'abc'", UserWarning, stacklevel=1)
    text = stream.getvalue()
    assert text.count("\n") == 1 and "UserWarning: Invalid value for VR DS" in text
    assert __file__ not in text and "warnings.warn" not in text
