"""The bundled protocols: each loads, names its version and sources, and reaches a decision on
the plans of the regimes it is for."""

from __future__ import annotations

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.protocol.definition import bundled_protocols, load_protocol

NAMES = ("eso-oligo-rt", "tg101-sbrt", "rtog0813-conformity", "esophagus-conventional")


def test_every_bundled_protocol_loads_with_version_and_sources():
    found = {path.stem for path in bundled_protocols()}
    assert found >= set(NAMES)
    for name in NAMES:
        protocol = load_protocol(name)
        assert protocol.version and protocol.sources
        assert all(limit.source for limit in (*protocol.oar_limits, *protocol.lesion_coverage))


@pytest.mark.parametrize(
    ("name", "plan", "decision", "evaluated"),
    [
        ("eso-oligo-rt", "phantom_dir", "not_excluded", 20),
        ("eso-oligo-rt", "stereotactic_dir", "excluded", 40),  # the primary at 32 Gy / 4 fx
        ("tg101-sbrt", "stereotactic_dir", "excluded", 10),
        ("tg101-sbrt", "phantom_dir", "not_excluded", 0),  # a conventional plan: none applies
        ("esophagus-conventional", "phantom_dir", "not_excluded", 8),
        ("rtog0813-conformity", "stereotactic_dir", "not_excluded", 9),
    ],
)
def test_each_reaches_a_decision_on_its_regime(request, name, plan, decision, evaluated):
    folder = request.getfixturevalue(plan)
    evaluation = evaluate(load_plan([folder]), load_protocol(name))
    assert evaluation.decision.decision == decision
    done = [r for r in evaluation.limits if r.result != "not_evaluated"]
    assert len(done) >= evaluated
    # Nothing was stretched across regimes.
    assert not [r for r in evaluation.limits if "across regimes" in (r.reason or "")]
