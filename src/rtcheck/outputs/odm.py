"""CDISC ODM 1.3.2: one Snapshot file holding the study's metadata (the instrument's form,
item group, items and code list, from :data:`rtcheck.outputs.trial_fields.FIELDS`) and the
clinical data (one repeat of the form per eligibility record of a subject).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rtcheck import __version__
from rtcheck.outputs.trial_fields import FIELDS, FORM, FORM_LABEL, TrialField, field_values

NAMESPACE = "http://www.cdisc.org/ns/odm/v1.3"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DATA_TYPES = {
    "text": "text",
    "integer": "integer",
    "datetime": "datetime",
    "choice": "text",
    "notes": "text",
}
EVENT_OID = "SE.SCREENING"
FORM_OID = f"F.{FORM.upper()}"
GROUP_OID = f"IG.{FORM.upper()}"
METADATA_OID = "MDV.RTCHECK.1"


def _oid(field: TrialField) -> str:
    return f"IT.{field.name.upper()}"


def _element(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attributes)


def _translated(parent: ET.Element, tag: str, text: str) -> None:
    holder = _element(parent, tag)
    translated = _element(holder, "TranslatedText")
    translated.set(_XML_LANG, "en")
    translated.text = text


def _metadata(study: ET.Element, study_oid: str) -> None:
    variables = _element(study, "GlobalVariables")
    for tag in ("StudyName", "StudyDescription", "ProtocolName"):
        _element(variables, tag).text = study_oid
    version = _element(study, "MetaDataVersion", OID=METADATA_OID, Name=f"rtcheck {FORM_LABEL}")
    protocol = _element(version, "Protocol")
    _element(protocol, "StudyEventRef", StudyEventOID=EVENT_OID, Mandatory="Yes")
    event = _element(
        version, "StudyEventDef", OID=EVENT_OID, Name="Screening", Repeating="No", Type="Scheduled"
    )
    _element(event, "FormRef", FormOID=FORM_OID, Mandatory="Yes")
    form = _element(version, "FormDef", OID=FORM_OID, Name=FORM_LABEL, Repeating="Yes")
    _element(form, "ItemGroupRef", ItemGroupOID=GROUP_OID, Mandatory="Yes")
    group = _element(version, "ItemGroupDef", OID=GROUP_OID, Name=FORM_LABEL, Repeating="No")
    for field in FIELDS:
        mandatory = "Yes" if field.name == "rtdl_decision" else "No"
        _element(group, "ItemRef", ItemOID=_oid(field), Mandatory=mandatory)
    for field in FIELDS:
        item = _element(
            version, "ItemDef", OID=_oid(field), Name=field.name, DataType=_DATA_TYPES[field.kind]
        )
        _translated(item, "Question", field.label)
        if field.choices:
            _element(item, "CodeListRef", CodeListOID=f"CL.{field.name.upper()}")
    for field in FIELDS:
        if not field.choices:
            continue
        codes = _element(
            version, "CodeList", OID=f"CL.{field.name.upper()}", Name=field.label, DataType="text"
        )
        for code, label in field.choices:
            _translated(_element(codes, "CodeListItem", CodedValue=code), "Decode", label)


def odm_xml(keyed: Iterable[tuple[str, Mapping[str, Any]]], study_oid: str = "ST.RTCHECK") -> str:
    """The ODM document for (subject key, record) pairs."""
    pairs = sorted(keyed, key=lambda kr: (kr[0], str(kr[1].get("created"))))
    ET.register_namespace("", NAMESPACE)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    digest = hashlib.sha256("\x00".join(s + str(r.get("created")) for s, r in pairs).encode())
    root = ET.Element(
        f"{{{NAMESPACE}}}ODM",
        {
            "FileType": "Snapshot",
            "FileOID": f"RTCHECK.{digest.hexdigest()[:16]}",
            "CreationDateTime": now,
            "ODMVersion": "1.3.2",
            "Granularity": "All",
            "Originator": "rtcheck",
            "SourceSystem": "rtcheck",
            "SourceSystemVersion": __version__,
        },
    )
    study = _element(root, "Study", OID=study_oid)
    _metadata(study, study_oid)
    clinical = _element(root, "ClinicalData", StudyOID=study_oid, MetaDataVersionOID=METADATA_OID)
    repeats: dict[str, int] = {}
    subjects: dict[str, ET.Element] = {}
    for subject, record in pairs:
        if subject not in subjects:
            subject_data = _element(clinical, "SubjectData", SubjectKey=subject)
            subjects[subject] = _element(subject_data, "StudyEventData", StudyEventOID=EVENT_OID)
        repeats[subject] = repeats.get(subject, 0) + 1
        form = _element(
            subjects[subject], "FormData", FormOID=FORM_OID, FormRepeatKey=str(repeats[subject])
        )
        group = _element(form, "ItemGroupData", ItemGroupOID=GROUP_OID)
        values = field_values(record)
        for field in FIELDS:
            value = values[field.name]
            if value == "":
                continue  # ODM leaves an item with no value out
            if field.kind == "datetime":
                value = value.replace(" ", "T")  # ISO 8601, as ODM's datetime is
            _element(group, "ItemData", ItemOID=_oid(field), Value=value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
