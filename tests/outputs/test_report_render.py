"""The plan report rendered by headless Chromium to PNG and PDF (runs where Chromium is
installed; `.ci/run` installs Debian's chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.outputs.html_report import plan_report_html
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol.definition import load_protocol

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


#: Run in the laid-out page: how far each table, list and figure reaches past the body.
_MEASURE = """<script>
var body = document.body.getBoundingClientRect();
var over = Array.from(document.querySelectorAll('table, ol, dl, figure, p')).map(function (e) {
  var r = e.getBoundingClientRect();
  return [e.id || e.tagName, Math.round(r.right - body.right), e.scrollWidth - e.clientWidth];
}).filter(function (x) { return x[1] > 0 || x[2] > 0; });
document.body.setAttribute('data-overflow', JSON.stringify(over));
</script></body>"""


@pytest.mark.parametrize("window", ["794,1123", "640,900"], ids=["A4 width", "narrow window"])
def test_the_limits_table_stays_within_the_page(tmp_path, window):
    # An indeterminate plan has the longest notes (why each limit could not be evaluated).
    write_thorax_phantom(tmp_path / "plan", ThoraxPhantom(renamed=(("Cord", None),)))
    evaluation = evaluate(load_plan([tmp_path / "plan"]), load_protocol())
    page = tmp_path / "report.html"
    page.write_text(plan_report_html(evaluation).replace("</body>", _MEASURE), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", f"--window-size={window}", page.as_uri())
    found = re.search(r'data-overflow="([^"]*)"', dom)
    assert found is not None, dom[-500:]
    assert json.loads(html.unescape(found.group(1))) == []


@pytest.mark.parametrize(
    "params", [{}, {"cord_dose_fraction": 0.95}, {"renamed": (("Cord", None),)}],
    ids=["passing", "excluded", "indeterminate"],
)  # fmt: skip
def test_report_renders_to_png_and_a4_pdf(tmp_path, params):
    write_thorax_phantom(tmp_path / "plan", ThoraxPhantom(**params))
    evaluation = evaluate(load_plan([tmp_path / "plan"]), load_protocol())
    page = tmp_path / "report.html"
    page.write_text(plan_report_html(evaluation), encoding="utf-8")
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1000,1400", page.as_uri())
    chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 2 <= pages <= 8, pages
