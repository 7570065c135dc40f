"""The dashboard's checks: a plan uploaded by a user (checked in a temporary folder that is
removed afterwards) and a stored plan's report made again from its files."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rtcheck.errors import RtcheckError
from rtcheck.evaluation.results import Evaluation
from rtcheck.web.queries import StoredPlan
from rtcheck.web.uploads import UploadLimits, unpack


class ReportUnavailableError(RtcheckError):
    """A stored plan's report cannot be made again (its files or protocol have changed)."""


def check_upload(
    uploads: Sequence[tuple[str, bytes]], protocol: str | None, limits: UploadLimits
) -> Evaluation:
    """Check the uploaded files of one plan against ``protocol`` (a bundled name; default the
    trial's).

    Raises
    ------
    RtcheckError
        The upload or the plan is refused, with the same message the command line gives.
    """
    from rtcheck.dicom.plan import load_plan
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.protocol.definition import bundled_protocols, load_protocol

    if protocol and protocol not in {p.stem for p in bundled_protocols()}:
        raise RtcheckError(f"no bundled protocol named {protocol!r}")
    rules = load_protocol(protocol)
    with tempfile.TemporaryDirectory(prefix="rtcheck-upload-") as folder:
        unpack(uploads, Path(folder), limits)
        return evaluate(load_plan([folder]), rules)


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
            return plan_report_html(evaluate(load_plan([str(f) for f in files]), rules))
    raise ReportUnavailableError(
        f"protocol {stated.get('name')} {stated.get('version')} is no longer the file the plan "
        "was checked against"
    )
