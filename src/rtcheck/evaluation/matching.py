"""The plan's structures for a protocol's names: one ROI, a derived region (a union minus other
ROIs), or the group of PTVs, each refused as ``NotEvaluable`` with the reason when it is missing,
ambiguous, empty or of damaged geometry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from difflib import SequenceMatcher

from rtcheck.dicom.structures import Structure
from rtcheck.dvh.regions import Region
from rtcheck.evaluation.results import MISSING, NotEvaluable
from rtcheck.protocol.definition import Protocol
from rtcheck.protocol.names import (
    StructureMatch,
    is_target,
    match_structure,
    standard_name,
    words,
)


class StructureResolver:
    """Finds a protocol's structures among a plan's ROIs, remembering every match it made."""

    def __init__(
        self, structures: tuple[Structure, ...], protocol: Protocol, mapping: Mapping[str, str]
    ) -> None:
        self.structures, self.protocol, self.mapping = structures, protocol, mapping
        self.matches: dict[str, StructureMatch] = {}

    def match(self, name: str) -> StructureMatch:
        """How the protocol's ``name`` matched the ROIs (cached)."""
        if name not in self.matches:
            self.matches[name] = match_structure(
                name, self.structures, self.mapping, self.protocol.allowed_synonyms.get(name, ())
            )
        return self.matches[name]

    def region(self, name: str) -> tuple[Region, tuple[str, ...]]:
        """The region of a protocol structure and the ROI names used."""
        if name in self.protocol.derived:
            direct = self.match(name)
            plus_names, minus_names = self.protocol.derived[name]
            try:
                plus = [self.single(n) for n in plus_names]
            except NotEvaluable:
                if direct.status != "matched":
                    raise
                plus = [self.by_name(direct.rois[0])]  # the plan has the derived ROI itself
            minus = [s for n in minus_names for s in self.group(n)]
            rois = tuple(s.name for s in plus) + tuple(f"-{s.name}" for s in minus)
            return Region(name, tuple(plus), tuple(minus)), rois
        structure = self.single(name)
        return Region(name, (structure,)), (structure.name,)

    def single(self, name: str) -> Structure:
        """The one ROI a protocol name matches, with contours and sound geometry."""
        found = self.match(name)
        if found.status == "missing":
            raise NotEvaluable(f"structure {name} {MISSING}{self.unmatched_hint(name)}")
        if found.status == "ambiguous":
            raise NotEvaluable(
                f"structure {name} is ambiguous: {', '.join(repr(r) for r in found.rois)} match"
            )
        structure = self.by_name(found.rois[0])
        if structure.is_empty:
            raise NotEvaluable(f"ROI {structure.name!r} ({name}) has no contours")
        return trusted(structure, name)

    def group(self, name: str) -> list[Structure]:
        """The ROIs a name stands for: every PTV for ``PTVs``, else the one ROI."""
        if name == "PTVs":
            return [
                trusted(s, name)
                for s in self.structures
                if is_target(s)
                and not s.is_empty
                and (s.interpreted_type == "PTV" or (words(s.name) or [""])[0] == "ptv")
            ]
        return [self.single(name)]

    def unmatched_hint(self, name: str) -> str:
        """For a structure not found: the ROIs that no TG-263 name matches, the closest to
        ``name`` first, and the map-file line that would name the closest one."""
        unmatched = [
            s.name
            for s in self.structures
            if not s.is_empty
            and not s.is_external
            and not is_target(s)
            and s.name not in self.mapping
            and standard_name(s.name) is None
        ]
        if not unmatched:
            return ""
        wanted = name.lower()
        unmatched.sort(key=lambda roi: -SequenceMatcher(None, wanted, roi.lower()).ratio())
        shown = ", ".join(repr(roi) for roi in unmatched[:5])
        more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        return (
            f"; ROIs that match no TG-263 name: {shown}{more}; if {unmatched[0]!r} is it, "
            f"a --map file line says so: {json.dumps(unmatched[0])}: {name}"
        )

    def by_name(self, roi: str) -> Structure:
        """The ROI named exactly ``roi``."""
        return next(s for s in self.structures if s.name == roi)


def trusted(structure: Structure, name: str) -> Structure:
    """The structure, or ``NotEvaluable`` when its geometry has defects."""
    if structure.defects:
        raise NotEvaluable(
            f"ROI {structure.name!r} ({name}) cannot be trusted: {'; '.join(structure.defects)}"
        )
    return structure
