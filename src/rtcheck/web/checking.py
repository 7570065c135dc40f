"""The dashboard's checks: a plan uploaded by a user (checked in a temporary folder that is
removed afterwards) and a stored plan's report made again from its files. Each returns the
text to send (a record as JSON, a report as HTML), so that it can run in a worker process.

What a user sees of an upload names the user's own files: the server's temporary folder, the
names the files were stored under in it, and where rtcheck is installed are replaced, in the
answer and in an error's message.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

from rtcheck.errors import ReportUnavailableError, RtcheckError, UploadCheckError
from rtcheck.web.queries import StoredPlan

#: What an uploaded plan's check answers with.
Answer = Literal["record", "report"]


def check_unpacked(
    folder: str, names: Mapping[str, str], protocol: str | None, answer: Answer
) -> str:
    """Check the files of one uploaded plan, unpacked into ``folder``, against ``protocol`` (a
    bundled name; default the trial's): its eligibility record as JSON, or its report as HTML.
    ``names`` maps each stored file's name to the name the user gave it.

    Raises
    ------
    RtcheckError
        The plan is refused, with the message the command line gives (the user's file names
        in it).
    """
    from rtcheck.dicom.plan import load_plan
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.protocol.definition import bundled_protocols, load_protocol

    if protocol and protocol not in {p.stem for p in bundled_protocols()}:
        raise RtcheckError(f"no bundled protocol named {protocol!r}")
    rules = load_protocol(protocol)
    # A bundled protocol is named by its file, not by where rtcheck is installed.
    rules = replace(rules, path=Path(rules.path).name)
    try:
        evaluation = evaluate(load_plan([folder]), rules)
    except RtcheckError as exc:
        raise UploadCheckError(_users_names(str(exc), folder, names, str)) from None
    if answer == "record":
        from rtcheck.outputs.record import eligibility_record

        text = json.dumps(eligibility_record(evaluation))
        return _users_names(text, folder, names, lambda s: json.dumps(s)[1:-1])
    from rtcheck.outputs.html_report import plan_report_html

    return _users_names(plan_report_html(evaluation), folder, names, html.escape)


def _users_names(
    text: str, folder: str, names: Mapping[str, str], escape: Callable[[str], str]
) -> str:
    """``text`` with each stored file's path replaced by the user's name for it (escaped for
    the text's format), and any other mention of the temporary folder by ``upload``."""
    for stored, given in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(f"{folder}/{stored}", escape(given))
    return text.replace(folder, "upload")


def report_again(plan: StoredPlan) -> str:
    """The plan report of a stored plan, from its files and the protocol it was checked
    against, both unchanged since the check.

    Raises
    ------
    ReportUnavailableError
        A file is gone or changed, or the protocol is not the one of the check.
    """
    from rtcheck.archive.index import file_sha256
    from rtcheck.dicom.plan import load_plan
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.outputs.html_report import plan_report_html
    from rtcheck.protocol.definition import load_protocol

    if plan.record is None:
        raise ReportUnavailableError("the plan's check failed: there is no report to make")
    files = [Path(f) for f in json.loads(plan.row["files"])]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ReportUnavailableError(
            f"{len(missing)} of the plan's {len(files)} files are no longer where they were "
            f"checked (first: {missing[0]}); its record is still shown"
        )
    hashes = {i["path"]: i.get("sha256") for i in plan.record.get("inputs", [])}
    changed = [f for f in files if hashes.get(str(f)) not in (None, file_sha256(str(f)))]
    if changed:
        raise ReportUnavailableError(f"{changed[0]} has changed since the plan was checked")
    stated = plan.record.get("protocol") or {}
    candidates = [p for p in (stated.get("path"), stated.get("name")) if p]
    for candidate in candidates:
        try:
            rules = load_protocol(str(candidate))
        except RtcheckError:
            continue
        if rules.sha256 == stated.get("sha256"):
            paths = [str(f) for f in files]
            if plan.record.get("record_type") == "screening":
                from rtcheck.dicom.plan import load_contours
                from rtcheck.outputs.screening import screening_html
                from rtcheck.screening.screen import screen

                return screening_html(screen(load_contours(paths), rules))
            return plan_report_html(evaluate(load_plan(paths), rules))
    raise ReportUnavailableError(
        f"protocol {stated.get('name')} {stated.get('version')} is no longer the file the plan "
        "was checked against"
    )
