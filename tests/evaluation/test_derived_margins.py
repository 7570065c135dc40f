"""Protocol structures built with margins (a PRV, a ring clipped to the body), evaluated on the
phantom plan; margins written wrongly are refused when the protocol is loaded."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.protocol.definition import ProtocolError, load_protocol

BUNDLED = Path(load_protocol().path)


def protocol_with(tmp_path: Path, derived: dict, limits: list[dict]) -> Path:
    document = yaml.safe_load(BUNDLED.read_text())
    document["derived"].update(derived)
    document["oar_limits"]["limits"] += limits
    path = tmp_path / "margins.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def limit(structure: str, metric: str, bound: str) -> dict:
    return {"structure": structure, "metric": metric, "limit": bound, "priority": "mandatory",
            "source": "test"}  # fmt: skip


def test_a_cord_prv_and_a_ring_clipped_to_the_body(phantom_dir, tmp_path):
    path = protocol_with(
        tmp_path,
        {
            "SpinalCord_PRV05": {"union": ["SpinalCord + 5"]},
            "Ring_PTVs": {"union": ["PTVs + 20"], "minus": ["PTVs + 2"], "within": "External"},
        },
        [limit("SpinalCord_PRV05", "D0.03cc[Gy]", "<= 45"), limit("Ring_PTVs", "Max[Gy]", "<= 60")],
    )
    plan = load_plan([phantom_dir])
    evaluation = evaluate(plan, load_protocol(str(path)))
    results = {r.structure: r for r in evaluation.limits if r.lesion is None}
    prv, cord = results["SpinalCord_PRV05"], results["SpinalCord"]
    assert prv.rois == ("Cord + 5 mm",) and prv.result == "pass"
    assert prv.value is not None and cord.value is not None and prv.value >= cord.value
    dvhs = {name: dvh for name, _, dvh in evaluation.dvhs}
    # Steiner's formula for a cylinder of radius r and length L grown by m: V + S·m + M·m² +
    # 4/3·π·m³ with S = 2πrL + 2πr² and M = π(L + πr); r from the contoured area.
    roi = plan.structure_set.by_name("Cord")
    bottom, top = roi.slabs()
    length = float(top[-1] - bottom[0])
    r = math.sqrt(dvhs["SpinalCord"].volume_cc * 1000 / length / math.pi)
    m = 5.0
    steiner = (math.pi * r * r * length + (2 * math.pi * r * length + 2 * math.pi * r * r) * m
               + math.pi * (length + math.pi * r) * m * m + 4 / 3 * math.pi * m**3)  # fmt: skip
    assert dvhs["SpinalCord_PRV05"].volume_cc * 1000 == pytest.approx(steiner, rel=0.01)
    ring = results["Ring_PTVs"]
    assert ring.result == "pass" and all(" in BODY" in roi for roi in ring.rois)
    assert dvhs["Ring_PTVs"].volume_cc < dvhs["SpinalCord_PRV05"].volume_cc * 1000  # sanity
    assert dvhs["Ring_PTVs"].volume_cc > 0


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ({"structure": "SpinalCord", "expand_mm": {"up": 5}}, "give numbers (mm) for some of"),
        ({"structure": "SpinalCord", "expand_mm": -5}, "margin right -5.0 mm"),
        ({"structure": "SpinalCord"}, "one of expand_mm or contract_mm"),
        ("SpinalChord + 5", "'SpinalChord' is neither a TG-263 name"),
    ],
)
def test_margins_written_wrongly_are_refused_naming_the_entry(tmp_path, term, message):
    path = protocol_with(tmp_path, {"SpinalCord_PRV05": {"union": [term]}}, [])
    with pytest.raises(ProtocolError, match=re.escape(message)) as error:
        load_protocol(str(path))
    assert "derived.SpinalCord_PRV05" in str(error.value)
