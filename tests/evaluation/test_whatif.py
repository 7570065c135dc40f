"""What-if against the independent computation it stands in for: a full check of the plan's
files with the edited protocol. For each edit (a number, a priority, a metric, a stereotactic
column that is converted to the plan's fractions) and each plan, the what-if's decision is the
full check's, and each limit's grade and threshold are the same; values are the same where the
metric is unchanged and within one stored DVH bin (0.05 Gy; the volume of one bin) where the
edit changed the metric and the value is read from the stored DVH."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.compact import STORED_BIN_GY, decode_dvh, encode_dvh
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.evaluation.whatif import what_if
from rtcheck.outputs.record import eligibility_record
from rtcheck.phantom.thorax import ThoraxPhantom, write_thorax_phantom
from rtcheck.protocol.definition import find_protocol, load_protocol

CORD = '    - {structure: SpinalCord, metric: "D0.03cc[Gy]", limit: "<= 45", priority: mandatory,'
LUNG = '    - {structure: Lungs-PTVs, metric: "V20Gy[%]", limit: "<= 25", priority: mandatory,'
SBRT_CORD = (
    '    - {structure: SpinalCord, metric: "D0.03cc[Gy]", limit: {1: "<= 14", 3: "<= 21.9", '
    '5: "<= 30"}, priority: mandatory, source: tg101, regime: stereotactic}'
)
EDITS = {
    "cord limit 45 -> 15 Gy": [(CORD, CORD.replace('"<= 45"', '"<= 15"'))],
    "cord limit optimal": [(CORD, CORD.replace("mandatory", "optimal"))],
    "lungs V20Gy<=25 -> V15Gy<=10": [(LUNG, LUNG.replace('"V20Gy[%]", limit: "<= 25"',
                                                          '"V15Gy[%]", limit: "<= 10"'))],
    "SBRT cord 5 fx column 30 -> 8 Gy": [(SBRT_CORD, SBRT_CORD.replace('"<= 30"', '"<= 8"'))],
}  # fmt: skip


@pytest.fixture(scope="module")
def plans(tmp_path_factory, phantom_dir, stereotactic_dir):
    high = tmp_path_factory.mktemp("cord-high")
    write_thorax_phantom(high, ThoraxPhantom(seed="whatif-high", cord_dose_fraction=0.95))
    stored = []
    for folder in (phantom_dir, high, stereotactic_dir):
        plan = load_plan([folder])
        evaluation = evaluate(plan, load_protocol())
        dvhs = {(n, k): decode_dvh(n, encode_dvh(d)) for n, k, d in evaluation.dvhs}
        stored.append((plan, eligibility_record(evaluation), dvhs))
    return stored


def edited(tmp_path: Path, name: str) -> Path:
    text = find_protocol(None).read_text()
    for old, new in EDITS[name]:
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    path = tmp_path / "edited.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_what_if_decides_as_a_full_check_of_the_files(plans, tmp_path, edit):
    protocol = load_protocol(str(edited(tmp_path, edit)))
    changed = 0
    for plan, record, dvhs in plans:
        full = evaluate(plan, protocol)
        guess = what_if(record, protocol, dvhs)
        assert guess.needs_check is None
        assert guess.after == full.decision.decision, (edit, record["patient_id"])
        changed += bool(guess.changes)

        def key(r):
            return (r.origin.entry, r.origin.index, r.lesion)

        judged = {key(r): r for r in guess.results}
        assert len(judged) == len(guess.results) == len(full.limits)
        for r in full.limits:
            w = judged[key(r)]
            assert (w.result, w.limit, w.priority) == (r.result, r.limit, r.priority), r
            if r.value is None:
                assert w.value is None
                continue
            before = next(
                x for x in record["limits"]
                if (x["origin"]["entry"], x["origin"]["index"], x["lesion"]) == key(r)
            )  # fmt: skip
            if before["metric"] == r.metric:
                assert w.value == pytest.approx(r.value, abs=1e-3)  # the stored value
            else:  # read from the stored DVH
                tolerance = STORED_BIN_GY if r.metric.endswith("[Gy]") else 0.5
                assert math.isclose(w.value, r.value, abs_tol=tolerance), (r, w.value)
    assert changed >= 1  # every edit changes a limit's result in at least one plan


def test_a_record_without_origins_needs_a_new_check(plans, tmp_path):
    _, record, dvhs = plans[0]
    old = {**record, "limits": [{**x, "origin": None} for x in record["limits"]]}
    result = what_if(old, load_protocol(), dvhs)
    assert result.after is None and "older than 1.3" in (result.needs_check or "")


def test_a_stored_dvh_that_cannot_be_read_needs_a_new_check(plans, tmp_path):
    """A metric changed and the stored DVH it needs is damaged: the plan is not judged."""
    from rtcheck.dvh.compact import StoredDVHError

    class Damaged(dict):
        def get(self, key, default=None):
            raise StoredDVHError(f"stored DVH of {key[0]!r} cannot be read: truncated")

    _, record, _ = plans[0]
    protocol = load_protocol(str(edited(tmp_path, "lungs V20Gy<=25 -> V15Gy<=10")))
    result = what_if(record, protocol, Damaged())
    assert result.after is None and "cannot be read" in (result.needs_check or "")
