"""The plan report: one self-contained HTML file whose structure says what the record says."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.html_report import plan_report_html
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol.definition import load_protocol


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.decision: str | None = None
        self.rows: list[str] = []
        self.figures: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-decision" in a:
            self.decision = a["data-decision"]
        if tag == "tr" and "data-result" in a:
            self.rows.append(a["data-result"] or "")
        if tag == "figure":
            self.figures.append(a.get("data-structure") or "")
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith(("#", "data:")):
                self.external.append(str(a[key]))


def report_of(folder: Path) -> tuple[_Reader, object]:
    evaluation = evaluate(load_plan([folder]), load_protocol())
    reader = _Reader()
    reader.feed(plan_report_html(evaluation))
    return reader, evaluation


@pytest.mark.parametrize(
    ("name", "params", "decision"),
    [
        ("passing", {}, "not_excluded"),
        ("excluded", {"cord_dose_fraction": 0.95}, "excluded"),
        ("indeterminate", {"renamed": (("Cord", None),)}, "indeterminate"),
    ],
)
def test_report_structure(tmp_path, name, params, decision):
    write_thorax_phantom(tmp_path / name, ThoraxPhantom(**params))
    reader, evaluation = report_of(tmp_path / name)
    assert reader.decision == decision == evaluation.decision.decision  # type: ignore[attr-defined]
    assert len(reader.rows) == len(evaluation.limits)  # type: ignore[attr-defined]
    # Failures come first.
    order = {"fail": 0, "not_evaluated": 1, "pass": 2, "absent": 3}
    firsts = [order[r] for r in reader.rows[:3]]
    if decision == "excluded":
        assert reader.rows[0] == "fail"
    assert firsts == sorted(firsts) or decision == "not_excluded"
    # One DVH plot per protocol structure present, none for an absent one.
    present = {
        name
        for name, key, _ in evaluation.dvhs  # type: ignore[attr-defined]
        if not key.startswith("plan:")
    }
    assert set(reader.figures) == present
    assert "SpinalCord" in present or decision == "indeterminate"
    assert not reader.external  # self-contained: no external resources
