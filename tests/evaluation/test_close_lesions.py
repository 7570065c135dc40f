"""Two stereotactic lung lesions a few centimetres apart, checked end to end: each lesion's
conformity indices are evaluated on the dose attributed to it (the nearest PTV surface's), so
the plan is judged, not left indeterminate, however close the lesions are."""

from __future__ import annotations

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.phantom.thorax import PhantomLesion, ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol.definition import load_protocol

INDICES = ("R100%", "R50%", "D2cm[%]")


def two_lung_lesions(apart_mm: float) -> tuple[PhantomLesion, PhantomLesion]:
    """Two lesions of PTV radius 12 mm in the right lung, ``apart_mm`` apart along z."""
    return (
        PhantomLesion("GTV_M1", "PTV_M1 lung", (-85.0, 5.0, 20.0 + apart_mm / 2), 7.0, 12.0),
        PhantomLesion("GTV_M2", "PTV_M2 lung", (-85.0, 5.0, 20.0 - apart_mm / 2), 7.0, 12.0),
    )


@pytest.mark.parametrize("apart_mm", [45.0, 60.0, 70.0, 80.0])
def test_lung_lesions_a_few_centimetres_apart_are_judged(tmp_path, apart_mm):
    # 54 Gy in 3 fractions; the conformal dose falls to half 4 mm beyond each PTV (the 50 %
    # isodose, with the halo, about 7.5 mm beyond it).
    phantom = ThoraxPhantom(
        prescription_gy=54.0, fractions=3, primary=False, lesions=two_lung_lesions(apart_mm),
        dose_spacing_mm=2.0, seed=f"close-{apart_mm:g}",
    )  # fmt: skip
    write_thorax_phantom(tmp_path, phantom)
    result = evaluate(load_plan([tmp_path]), load_protocol("eso-oligo-rt"))
    judged = [r for r in result.limits if r.lesion in ("M1", "M2") and r.metric in INDICES]
    assert {(r.lesion, r.metric) for r in judged} == {(m, i) for m in ("M1", "M2") for i in INDICES}
    for r in judged:
        assert r.result != "not_evaluated", (r.lesion, r.metric, r.reason)
    assert result.decision != "indeterminate", [
        (r.structure, r.metric, r.reason) for r in result.limits if r.result == "not_evaluated"
    ]
