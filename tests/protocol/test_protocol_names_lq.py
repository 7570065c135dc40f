"""Protocol validation, TG-263 name matching and the LQ model."""

from __future__ import annotations

import pytest

from rtcheck.dicom.structures import Structure
from rtcheck.protocol import lq
from rtcheck.protocol.definition import ProtocolError, load_protocol
from rtcheck.protocol.names import match_structure, standard_name


@pytest.mark.parametrize(
    ("name", "standard"),
    [
        ("RT LUNG", "Lung_R"), ("Lung R", "Lung_R"), ("lung_r", "Lung_R"), ("Right Lung", "Lung_R"),
        ("LUNG LT", "Lung_L"), ("Lung_L", "Lung_L"), ("lungs", "Lungs"),
        ("Oesophagus", "Esophagus"),
        ("Cord", "SpinalCord"), ("Spinal Cord", "SpinalCord"), ("spinal_cord", "SpinalCord"),
        ("SpinalCord", "SpinalCord"), ("heart", "Heart"), ("Kidney Lt", "Kidney_L"),
        ("BODY", "External"), ("Pericardium", "Pericardium"), ("PTV_M1", None), ("Spleen", None),
        ("Lung L R", None),
    ],
)  # fmt: skip
def test_standard_names(name, standard):
    assert standard_name(name) == standard


def roi(name: str, kind: str = "ORGAN") -> Structure:
    return Structure(1, name, kind, (), ())


def test_matching_rules():
    rois = [roi("Cord"), roi("Pericardium"), roi("PTV Cord"), roi("Heart_old"), roi("lung l")]
    assert match_structure("SpinalCord", rois, {}).rois == ("Cord",)
    assert match_structure("Heart", rois, {}).status == "missing"
    allowed = match_structure("Heart", rois, {}, ["Pericardium"])
    assert allowed.rois == ("Pericardium",) and allowed.how == "allowed synonym"
    mapped = match_structure("Heart", rois, {"Heart_old": "Heart"})
    assert mapped.rois == ("Heart_old",) and mapped.how == "map"
    two = match_structure("SpinalCord", [*rois, roi("SPINAL CORD")], {})
    assert two.status == "ambiguous" and set(two.rois) == {"Cord", "SPINAL CORD"}
    exact = match_structure("SpinalCord", [roi("SpinalCord"), roi("cord")], {})
    assert exact.rois == ("SpinalCord",)


def test_bundled_protocol_loads_with_sources():
    protocol = load_protocol()
    assert protocol.name == "eso-oligo-rt" and protocol.oar_limits
    cord = next(lim for lim in protocol.oar_limits if lim.structure == "SpinalCord")
    _, metric, comparison = cord.by_fractions[0]
    assert (metric.text, str(comparison), cord.priority) == ("D0.03cc[Gy]", "<= 45", "mandatory")
    assert "Table 1" in cord.source
    assert protocol.alpha_beta("SpinalCord") == 2 and protocol.alpha_beta("Heart") == 3


BASE = """protocol: t
version: '1'
oar_limits:
  fractions: 25
  limits:
    - {structure: SpinalCord, metric: 'D0.03cc[Gy]', limit: '<= 45', priority: mandatory, source: s}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("'<= 45'", "'45'"), "must be a comparator and a number"),
        (("mandatory", "urgent"), "priority 'urgent'"),
        (("'D0.03cc[Gy]'", "'D0.03[Gy]'"), "malformed DVH metric"),
        ((", source: s", ""), "'source' is missing"),
        (("version: '1'\n", ""), "'version' is missing"),
        (("priority:", "prio: x, priority:"), "unknown key(s) prio"),
    ],
)
def test_wrong_protocol_files_name_the_file_and_entry(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace(*change))
    with pytest.raises(ProtocolError) as info:
        load_protocol(str(path))
    text = str(info.value)
    assert str(path) in text and message in text
    if "limits[" in text:
        assert "oar_limits.limits[0] (SpinalCord" in text


def test_unknown_protocol_name():
    with pytest.raises(ProtocolError, match="no bundled protocol named 'nope'"):
        load_protocol("nope")


def test_lq_hand_values():
    assert lq.eqd2(50, 25, 3) == pytest.approx(50.0)
    assert lq.bed(30, 5, 2) == pytest.approx(120.0)
    assert lq.eqd2(15, 3, 2) == pytest.approx(26.25)
    assert lq.convert(30, 5, 25, 2) == pytest.approx(25 * ((1 + 4 * 120 / 50) ** 0.5 - 1))
    assert lq.convert(lq.convert(20, 3, 30, 3), 30, 3, 3) == pytest.approx(20)
    assert lq.eqd2_grid([[10.0]], 5, 10)[0][0] == pytest.approx(10 * 12 / 12)
    with pytest.raises(ValueError):
        lq.bed(10, 0, 3)
