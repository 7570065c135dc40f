"""The protocol's cumulative_limits section (re-irradiation) and a protocol that extends a
bundled one."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
import yaml

from rtcheck.errors import ProtocolError
from rtcheck.protocol.definition import bundled_protocols, load_protocol

BASE = """\
protocol: test
version: "1"
oar_limits:
  limits:
    - {structure: SpinalCord, metric: "D0.03cc[Gy]", limit: "<= 45", priority: mandatory, source: s}
"""


def write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_example_section_loads_with_each_alpha_beta_and_its_label():
    protocol = load_protocol("eso-oligo-rt-reirradiation-example")
    rules = protocol.reirradiation
    assert "EXAMPLE" in rules.status and "confirmed" in rules.status
    by_metric = {(c.limit.structure, c.limit.label): c for c in rules.limits}
    assert by_metric[("SpinalCord", "D0.1cc[Gy]")].alpha_beta == 2
    assert str(by_metric[("SpinalCord", "D0.1cc[Gy]")].limit.by_fractions[0][2]) == "< 56.25"
    assert by_metric[("SpinalCord", "Max[Gy]")].alpha_beta == 2  # Dmax and D0.1cc: both kept
    assert by_metric[("Heart", "D0.1cc[Gy]")].alpha_beta == 2.5
    assert by_metric[("Esophagus", "D0.1cc[Gy]")].alpha_beta == 3
    assert all(not c.recovery for c in rules.limits)  # no recovery unless a protocol states it
    # It extends the trial's protocol: every limit of it is there, unchanged.
    base = load_protocol("eso-oligo-rt")
    assert protocol.oar_limits == base.oar_limits
    assert protocol.lesion_coverage == base.lesion_coverage
    assert set(base.sources) <= set(protocol.sources)
    # The record's hash covers both files.
    example = next(p for p in bundled_protocols() if p.stem.endswith("-example"))
    assert protocol.sha256 != hashlib.sha256(example.read_bytes()).hexdigest()
    assert load_protocol("eso-oligo-rt").reirradiation.limits == ()


@pytest.mark.parametrize(
    ("interval", "percent"), [(None, 0), (3.0, 0), (6.0, 25), (11.9, 25), (12.0, 50), (40.0, 50)]
)
def test_recovery_percent_by_interval(tmp_path, interval, percent):
    text = BASE + textwrap.dedent("""\
    cumulative_limits:
      limits:
        - {structure: SpinalCord, metric: "Max[Gy]", limit: "<= 60", alpha_beta: 2,
           recovery: {6: 25, 12: 50}, priority: mandatory, source: s}
    """)
    (limit,) = load_protocol(write(tmp_path, text)).reirradiation.limits
    assert limit.recovery_percent(interval) == percent


GOOD = {
    "structure": "SpinalCord",
    "metric": "Max[Gy]",
    "limit": "<= 60",
    "alpha_beta": 2,
    "priority": "mandatory",
    "source": "s",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha_beta": None}, "'alpha_beta' is missing"),
        ({"alpha_beta": 0}, "0 is not a positive number"),
        ({"metric": "D2%[%]"}, "no one prescription"),
        ({"limit": {1: "<= 20", 5: "<= 30"}}, "one threshold, no fractions"),
        ({"recovery": {6: 120}}, "120 is not 0-100 %"),
        ({"structure": "SpinalChord"}, "neither a TG-263 name"),
    ],
)
def test_wrong_cumulative_entries_name_the_entry(tmp_path, change, message):
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    text = BASE + yaml.safe_dump({"cumulative_limits": {"limits": [entry]}})
    with pytest.raises(ProtocolError, match=message) as caught:
        load_protocol(write(tmp_path, text))
    assert "cumulative_limits.limits[0]" in str(caught.value) or "SpinalChord" in str(caught.value)


@pytest.mark.parametrize(
    ("extends", "message"),
    [
        ("no-such-protocol", "is no bundled protocol"),
        ("../../etc/passwd", "is no bundled protocol"),
    ],
)
def test_extends_names_a_bundled_protocol_only(tmp_path, extends, message):
    text = BASE + f"extends: {extends!r}\n"
    with pytest.raises(ProtocolError, match=message):
        load_protocol(write(tmp_path, text))
