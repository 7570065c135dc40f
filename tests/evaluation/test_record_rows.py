"""A limit's result is written to the eligibility record and read back by one pair of methods
(``LimitResult.to_row`` / ``from_row``): whatever a record holds comes back as it was."""

from __future__ import annotations

import json
import math
from dataclasses import fields

from rtcheck.dicom.plan import load_plan
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.results import Grade, LimitResult
from rtcheck.protocol.definition import load_protocol


def test_every_result_of_a_check_comes_back_from_its_record_row(stereotactic_dir):
    evaluation = evaluate(load_plan([stereotactic_dir]), load_protocol())
    assert {r.result for r in evaluation.limits} >= {Grade.PASS}
    for result in evaluation.limits:
        row = json.loads(json.dumps(result.to_row()))  # through JSON, as a record is stored
        back = LimitResult.from_row(row)
        for f in fields(LimitResult):
            mine, theirs = getattr(result, f.name), getattr(back, f.name)
            if isinstance(mine, float) and math.isfinite(mine):
                assert theirs is not None and abs(theirs - mine) <= 5e-4 * max(1.0, abs(mine))
            elif isinstance(mine, float):
                assert theirs is None  # NaN is written as null
            elif f.name == "origin" and mine is not None:
                assert theirs.entry == mine.entry and theirs.index == mine.index
                assert theirs.dose == mine.dose
            else:
                assert theirs == mine, f.name
        assert isinstance(back.result, Grade)
