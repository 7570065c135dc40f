"""The plan report: one self-contained HTML file whose structure says what the record says."""

from __future__ import annotations

import re
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
        self.structures: list[str] = []
        self._cell = 0
        self._in_row = False

    def handle_data(self, data: str) -> None:
        if self._in_row and self._cell == 3 and data.strip():  # the Structure column
            self.structures.append(data.strip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-decision" in a:
            self.decision = a["data-decision"]
        if tag == "tr" and "data-result" in a:
            self.rows.append(a["data-result"] or "")
            self._in_row, self._cell = True, 0
        elif tag == "tr":
            self._in_row = False
        if tag == "td" and self._in_row:
            self._cell += 1
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
    assert 0 < len(reader.rows) <= len(evaluation.limits)  # type: ignore[attr-defined]
    # Failures come first.
    order = {"fail": 0, "not_evaluated": 1, "pass": 2, "absent": 3}
    firsts = [order[r] for r in reader.rows[:3]]
    if decision == "excluded":
        assert reader.rows[0] == "fail"
    assert firsts == sorted(firsts) or decision == "not_excluded"
    # Merged rows: one row per limit, or one naming the lesions it holds for.
    shown_lesions = sum(max(1, row.count(", ") + 1) if "[" in row else 1
                        for row in reader.structures)  # fmt: skip
    assert shown_lesions == len(evaluation.limits)  # type: ignore[attr-defined]
    # One DVH plot per structure with a DVH (organs and targets), none for an absent one.
    present = {name for name, _, _ in evaluation.dvhs}  # type: ignore[attr-defined]
    assert set(reader.figures) == present
    assert "SpinalCord" in present or decision == "indeterminate"
    assert not reader.external  # self-contained: no external resources


def test_the_report_shows_the_targets_with_their_coverage_points_and_says_what_a_point_means(
    stereotactic_dir,
):
    evaluation = evaluate(load_plan([stereotactic_dir]), load_protocol())
    page = plan_report_html(evaluation)
    for target in ("PTV_M1_lungR", "ptv m2 liver", "PTV_M3_T8", "PTV_50"):
        figure = page.split(f'data-structure="{target}" data-kind="', 1)[1]
        assert figure.startswith("target")
    # The lesion's coverage limits are drawn: their labels are in the figure's legend.
    lesion = page.split('data-structure="PTV_M1_lungR"', 1)[1].split("</figure>", 1)[0]
    assert "V100%[%] &gt;= 90" in lesion and "D99%[%] &gt;= 90" in lesion
    assert "prescription 32 Gy" in lesion
    # The critical-volume limits are drawn too.
    cv = next(r for r in evaluation.limits if r.structure == "Liver" and r.metric.startswith("CV"))
    liver = page.split('data-structure="Liver"', 1)[1].split("</figure>", 1)[0]
    assert f"{cv.metric} &gt;= 700" in liver
    legend = page.split('id="legend"', 1)[1].split("</p>", 1)[0]
    assert "upper limit (≤" in legend and "lower limit (≥)" in legend


def test_the_report_says_when_by_what_on_which_inputs_and_with_which_protocol(phantom_dir):
    evaluation = evaluate(load_plan([phantom_dir]), load_protocol())
    page = plan_report_html(evaluation)
    section = page.split('id="evaluation"', 1)[1].split("</dl>", 1)[0]
    assert f'data-evaluated="{evaluation.evaluated_at}"' in section
    assert evaluation.evaluated_at.endswith("+00:00")
    from rtcheck import __version__

    assert f"rtcheck {__version__}" in section
    assert f"eso-oligo-rt version {evaluation.protocol.version}" in section
    assert "half-slab" in section
    plan = evaluation.plan
    inputs = {kind: section.split(f'data-inputs="{kind}">', 1)[1].split("</dd>", 1)[0]
              for kind in ("RTPLAN", "RTDOSE", "RTSTRUCT")}  # fmt: skip
    assert all(p.sop_instance_uid in inputs["RTPLAN"] for p in plan.plans)
    assert all(uid in inputs["RTDOSE"] for d in plan.doses for uid in d.source_uids)
    assert plan.structure_set.sop_instance_uid in inputs["RTSTRUCT"]
    # The record carries the same time.
    from rtcheck.outputs.record import eligibility_record

    assert eligibility_record(evaluation)["created"] == evaluation.evaluated_at


def test_notes_are_numbered_footnotes_and_the_rois_are_listed_once(stereotactic_dir):
    evaluation = evaluate(load_plan([stereotactic_dir]), load_protocol())
    page = plan_report_html(evaluation)
    table = page.split('id="limits"', 1)[1].split("</table>", 1)[0]
    assert "<th>ROI</th>" not in table and "LQ" not in table  # long notes are not in the table
    notes = page.split('id="notes"', 1)[1].split("</ol>", 1)[0]
    numbers = [int(n) for n in re.findall(r'id="note-(\d+)"', notes)]
    assert numbers == list(range(1, len(numbers) + 1)) and numbers
    assert all(f'href="#note-{n}"' in table for n in numbers)
    assert "converted to 4 fractions (LQ" in notes
    assert page.count("Lungs = LUNG LT + Lung Rt") == 1


@pytest.mark.parametrize(
    ("limit", "metric", "total", "prescription", "expected"),
    [
        ("<= 25", "V20Gy[%]", 400.0, None, (20.0, 25.0, True)),
        ("<= 100", "V20Gy[cc]", 400.0, None, (20.0, 25.0, True)),
        ("<= 45", "D0.03cc[Gy]", 30.0, None, (45.0, 0.1, True)),
        ("<= 4500", "D0.03cc[cGy]", 30.0, None, (45.0, 0.1, True)),
        (">= 90", "V100%[%]", 10.0, 50.0, (50.0, 90.0, False)),
        (">= 90", "D99%[%]", 10.0, 50.0, (45.0, 99.0, False)),
        ("<= 140", "D0.03cc[%]", 10.0, 50.0, (70.0, 0.3, True)),
        # At least 700 cc below 21 Gy of 1000 cc: at most 30 % at or above it.
        (">= 700", "CV21Gy[cc]", 1000.0, None, (21.0, 30.0, True)),
        # The coldest 100 cc of 1000 cc under 10 Gy: 90 % receives at least 10 Gy.
        ("<= 10", "DC100cc[Gy]", 1000.0, None, (10.0, 90.0, True)),
        (">= 90", "V100%[%]", 10.0, None, None),  # no prescription: no place
        ("<= 20", "Mean[Gy]", 10.0, None, None),
    ],
)
def test_limit_points(limit, metric, total, prescription, expected):
    from types import SimpleNamespace

    from rtcheck.outputs.html_report import limit_point

    result = SimpleNamespace(limit=limit, metric=metric)
    dvh = SimpleNamespace(volume_in_grid_cc=total)
    point = limit_point(result, dvh, prescription)  # type: ignore[arg-type]
    if expected is None:
        assert point is None
    else:
        assert point == pytest.approx(expected)


def test_every_lesion_ptv_is_drawn_also_when_its_prescription_is_unknown(tmp_path):
    # Without the RTPLAN (the fractions given as --fractions would), the lesions' prescriptions
    # are unknown: their coverage is not evaluated, but their PTVs' DVHs are still drawn, in
    # physical dose and without coverage points.
    write_thorax_phantom(tmp_path, ThoraxPhantom(prescription_gy=32.0, fractions=4, seed="norx"))
    for plan_file in tmp_path.glob("RP*"):
        plan_file.unlink()
    evaluation = evaluate(load_plan([tmp_path]), load_protocol(), fractions=4)
    unknown = [lesion for lesion in evaluation.lesions if lesion.prescription_gy is None]
    assert unknown
    page = plan_report_html(evaluation)
    for lesion in unknown:
        figure = page.split(f'data-structure="{lesion.target_roi}" data-kind="', 1)[1]
        figure = figure.split("</figure>", 1)[0]
        assert figure.startswith("target")
        assert "prescription" not in figure.split("<figcaption>", 1)[1]
        assert "V100%[%]" not in figure  # no coverage point without a prescription
