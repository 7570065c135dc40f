"""Matching a clinic's ROI names to TG-263 standard names.

Case, spaces, underscores, hyphens, CamelCase and word order do not matter; laterality words
give the ``_L`` / ``_R`` suffix. The synonyms live in ``data/tg263.yaml``. A clinic's own names
come from a map file (``ROI name: TG-263 name``), which always wins.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from functools import cache
from importlib import resources
from pathlib import Path

from rtcheck.dicom.structures import Structure
from rtcheck.errors import MapFileError, YamlFileError
from rtcheck.protocol.yamlfile import parse_yaml, read_yaml

LEFT = frozenset({"l", "lt", "left"})
RIGHT = frozenset({"r", "rt", "right"})
TARGET_TYPES = frozenset({"PTV", "GTV", "CTV", "ITV"})
_TARGET_WORDS = frozenset({"ptv", "gtv", "ctv", "itv"})


def words(name: str) -> list[str]:
    """The lower-case words of a name: split at non-alphanumerics, CamelCase and letter-digit
    boundaries that start a new word (``"PTV_M1_lungR"`` → ``["ptv", "m1", "lung", "r"]``)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


@cache
def _synonyms() -> dict[str, str]:
    text = resources.files("rtcheck").joinpath("data/tg263.yaml").read_text(encoding="utf-8")
    table: dict[str, list[str]] = parse_yaml(text)
    index: dict[str, str] = {}
    for standard, spellings in table.items():
        for spelling in [*spellings, standard]:
            index[" ".join(sorted(words(spelling)))] = standard
    return index


def standard_name(name: str) -> str | None:
    """The TG-263 name that an ROI name stands for, or None when it is not recognised."""
    tokens = words(name)
    sides = [t for t in tokens if t in LEFT or t in RIGHT]
    rest = [t for t in tokens if t not in LEFT and t not in RIGHT]
    if len(set(sides)) > 1 or not rest:
        return None
    base = _synonyms().get(" ".join(sorted(rest)))
    if base is None:
        return None
    if sides:
        return f"{base}_{'L' if sides[0] in LEFT else 'R'}"
    return base


def is_target(structure: Structure) -> bool:
    """True for a target volume (PTV, GTV, CTV, ITV) by interpreted type or first word."""
    if structure.interpreted_type in TARGET_TYPES:
        return True
    tokens = words(structure.name)
    return bool(tokens) and tokens[0] in _TARGET_WORDS


@dataclass(frozen=True)
class StructureMatch:
    """How a protocol's structure was found among the ROIs.

    Attributes
    ----------
    name
        The protocol's (TG-263) name.
    rois
        The ROI names that match it.
    how
        ``map``, ``name`` (TG-263 name or synonym), ``allowed synonym`` or ``""``.
    """

    name: str
    rois: tuple[str, ...]
    how: str

    @property
    def status(self) -> str:
        """``matched``, ``missing`` or ``ambiguous``."""
        if not self.rois:
            return "missing"
        return "matched" if len(self.rois) == 1 else "ambiguous"


def match_structure(
    wanted: str,
    structures: Sequence[Structure],
    mapping: Mapping[str, str],
    allowed_synonyms: Sequence[str] = (),
) -> StructureMatch:
    """Find the ROI that stands for the TG-263 structure ``wanted``.

    The map file decides first; then the TG-263 name or a synonym of it (targets excluded);
    then a synonym the protocol allows for this structure (e.g. Pericardium for Heart). Two
    candidates are never resolved by guessing, unless exactly one is spelled as ``wanted``.
    """
    mapped = [s.name for s in structures if mapping.get(s.name) == wanted]
    if mapped:
        return StructureMatch(wanted, tuple(mapped), "map")
    candidates = [
        s.name
        for s in structures
        if s.name not in mapping and not is_target(s) and standard_name(s.name) == wanted
    ]
    if len(candidates) > 1 and candidates.count(wanted) == 1:
        candidates = [wanted]
    if candidates:
        return StructureMatch(wanted, tuple(candidates), "name")
    for synonym in allowed_synonyms:
        found = [
            s.name for s in structures if not is_target(s) and standard_name(s.name) == synonym
        ]
        if found:
            return StructureMatch(wanted, tuple(found), "allowed synonym")
    return StructureMatch(wanted, (), "")


def read_map_file(path: str | Path, derived: Collection[str] = ()) -> dict[str, str]:
    """Read a structure map file: a YAML mapping of ROI names to TG-263 names (or to the
    protocol's ``derived`` structures), optionally with a ``lesions:`` section (see
    :mod:`rtcheck.protocol.lesions`). Returns the ROI-name mapping.

    Raises
    ------
    MapFileError
        If the file is missing, not a mapping of strings, or maps to a name that is neither a
        TG-263 name nor derived in the protocol.
    """
    document = _load_map_document(path)
    names: dict[str, str] = {}
    for key, value in document.items():
        if key in ("lesions", "primary"):
            continue
        if not isinstance(key, str) or not isinstance(value, str):
            raise MapFileError(f"{path}: entry {key!r} must map an ROI name to a TG-263 name")
        if not is_tg263_name(value) and value not in derived:
            raise MapFileError(
                f"{path}: entry {key!r}: {value!r} is not a TG-263 name{suggestion(value, derived)}"
            )
        names[key] = value
    return names


def is_tg263_name(name: str) -> bool:
    """True for a TG-263 name rtcheck knows, spelt as TG-263 spells it (``Lung_L``)."""
    return standard_name(name) == name


def suggestion(name: str, derived: Collection[str] = ()) -> str:
    """`` (did you mean 'SpinalCord'?)`` for the known name closest to ``name``, or ""."""
    known = sorted({*_synonyms().values(), *derived})
    close = get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: A prescription (Gy) above this in a map file is a typo (cGy for Gy, a stray digit).
MAX_PRESCRIPTION_GY = 200.0
#: Fractions above this in a map file are a typo.
MAX_FRACTIONS = 100


def read_lesion_map(
    path: str | Path, known_sites: Collection[str] = ()
) -> dict[str, dict[str, object]]:
    """The ``lesions:`` section of a map file: ROI name → ``{site, prescription_gy, fractions}``,
    validated as a protocol is: a site from ``known_sites`` (when given), a prescription that is
    a positive number of Gy, fractions a positive whole number.

    Raises
    ------
    MapFileError
        On anything else, naming the file and the entry.
    """
    section = _load_map_document(path).get("lesions") or {}
    if not isinstance(section, dict):
        raise MapFileError(f"{path}: 'lesions' must map ROI names to their facts")
    return {
        str(roi): _facts(f"{path}: lesions.{roi}", facts, known_sites)
        for roi, facts in section.items()
    }


def read_primary(path: str | Path) -> dict[str, object]:
    """The ``primary:`` section of a map file: the primary tumour's ``{prescription_gy,
    fractions}``, for a screening before any RTPLAN exists; {} when absent.

    Raises
    ------
    MapFileError
        On anything else, naming the file and the entry.
    """
    section = _load_map_document(path).get("primary")
    if section is None:
        return {}
    if not isinstance(section, dict) or "site" in section:
        raise MapFileError(f"{path}: primary: give prescription_gy and/or fractions")
    return _facts(f"{path}: primary", section, ())


def _facts(where: str, facts: object, known_sites: Collection[str]) -> dict[str, object]:
    """One entry's facts, validated: a known site, a prescription in Gy, a number of
    fractions."""
    if not isinstance(facts, dict) or set(facts) - {"site", "prescription_gy", "fractions"}:
        raise MapFileError(f"{where}: give site, prescription_gy and/or fractions")
    checked: dict[str, object] = {}
    site = facts.get("site")
    if site is not None:
        if not isinstance(site, str) or (known_sites and site.lower() not in known_sites):
            choices = ", ".join(sorted(known_sites)) or "a site name"
            raise MapFileError(f"{where}.site: {site!r} is not a known site ({choices})")
        checked["site"] = site.lower()
    dose = facts.get("prescription_gy")
    if dose is not None:
        if (
            isinstance(dose, bool)
            or not isinstance(dose, int | float)
            or not 0 < dose <= MAX_PRESCRIPTION_GY
        ):
            raise MapFileError(
                f"{where}.prescription_gy: {dose!r} is not a dose in Gy "
                f"(a number above 0, at most {MAX_PRESCRIPTION_GY:g})"
            )
        checked["prescription_gy"] = float(dose)
    fractions = facts.get("fractions")
    if fractions is not None:
        if (
            isinstance(fractions, bool)
            or not isinstance(fractions, int)
            or not 1 <= fractions <= MAX_FRACTIONS
        ):
            raise MapFileError(
                f"{where}.fractions: {fractions!r} is not a whole number of fractions "
                f"from 1 to {MAX_FRACTIONS}"
            )
        checked["fractions"] = fractions
    return checked


def _load_map_document(path: str | Path) -> dict[str, object]:
    try:
        document, _ = read_yaml(path, "the map file")
    except YamlFileError as exc:
        raise MapFileError(f"{path}: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise MapFileError(f"{path}: a map file is a mapping 'ROI name: TG-263 name'")
    return document
