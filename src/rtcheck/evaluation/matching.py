"""The plan's structures for a protocol's names: one ROI, a derived region (a union minus other
ROIs), or the group of PTVs, each refused as ``NotEvaluable`` with the reason when it is missing,
ambiguous, empty or of damaged geometry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from difflib import SequenceMatcher

from rtcheck.dicom.slabs import EndCaps
from rtcheck.dicom.structures import Structure
from rtcheck.dvh.regions import Region
from rtcheck.evaluation.results import MISSING, NotEvaluable
from rtcheck.protocol.definition import DerivedStructure, Protocol, Term
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
        self,
        structures: tuple[Structure, ...],
        protocol: Protocol,
        mapping: Mapping[str, str],
        end_caps: EndCaps = EndCaps.HALF_SLAB,
    ) -> None:
        self.structures, self.protocol, self.mapping = structures, protocol, mapping
        self.end_caps = end_caps
        self.matches: dict[str, StructureMatch] = {}
        self._shaped: dict[tuple[str, Term, bool], Structure] = {}

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
            spec = self.protocol.derived_terms.get(name) or DerivedStructure(
                tuple(map(Term, plus_names)), tuple(map(Term, minus_names))
            )
            try:
                plus = [
                    self.shaped(s, t, spec.within_body) for t in spec.plus for s in self.members(t)
                ]
            except NotEvaluable:
                if direct.status != "matched":
                    raise
                plus = [self.by_name(direct.rois[0])]  # the plan has the derived ROI itself
            minus = [
                self.shaped(s, t, spec.within_body) for t in spec.minus for s in self.group(t.name)
            ]
            minus = [s for s in minus if not s.is_empty]
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

    def members(self, term: Term) -> list[Structure]:
        """The ROIs an added term stands for: every PTV for ``PTVs``, else its one ROI."""
        return self.group(term.name) if term.name == "PTVs" else [self.single(term.name)]

    def shaped(self, structure: Structure, term: Term, within_body: bool) -> Structure:
        """An ROI grown or shrunk by the term's margin and clipped to the body outline as the
        protocol says (computed once); the ROI itself when neither applies."""
        if term.margin.is_zero and not within_body:
            return structure
        key = (structure.name, term, within_body)
        if key not in self._shaped:
            # Polygon geometry (shapely) is loaded only by the protocols that grow or clip.
            from rtcheck.dvh.margins import clip, contract, expand

            if term.shrink and term.name == "PTVs":
                raise NotEvaluable(f"{term}: shrinking a group of ROIs is not defined here")
            label = str(Term(structure.name, term.margin, term.shrink))
            shaped = structure
            if not term.margin.is_zero:
                operation = contract if term.shrink else expand
                shaped = operation(structure, term.margin, label, self.end_caps)
            if within_body:
                label = f"({label}) in {self.body().name}"
                shaped = clip(shaped, self.body(), label, self.end_caps)
            self._shaped[key] = shaped
        return self._shaped[key]

    def body(self) -> Structure:
        """The body outline: the one non-empty external ROI."""
        outlines = [s for s in self.structures if s.is_external and not s.is_empty]
        if len(outlines) != 1:
            found = "no" if not outlines else f"{len(outlines)}"
            raise NotEvaluable(f"{found} body outlines (External) to clip to")
        return trusted(outlines[0], "External")

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
