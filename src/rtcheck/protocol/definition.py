"""Protocol files: dose limits in TG-263 metric syntax, read from YAML and validated on load.

The format is documented in ``constraints/README.md``. Every error names the file, the entry
and what is wrong.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rtcheck.dvh.indices import INDICES, parse_index
from rtcheck.dvh.margin import DIRECTIONS, Margin
from rtcheck.dvh.metrics import Metric, parse_metric
from rtcheck.errors import InvalidStructureError, MetricSyntaxError, ProtocolError, YamlFileError
from rtcheck.protocol.lesions import KNOWN_SITES
from rtcheck.protocol.names import is_tg263_name, suggestion
from rtcheck.protocol.yamlfile import read_yaml

#: ``Name + 5`` or ``Name - 3``: a structure grown or shrunk by a margin (mm); spaces around
#: the sign, as TG-263 names hold hyphens (``Lungs-PTVs``).
_TERM = re.compile(r"^\s*(?P<name>\S+)\s+(?P<op>[+-])\s+(?P<mm>\d+(?:\.\d+)?)\s*$")

#: Where the bundled protocols live, as package data (``constraints/`` in the repository links
#: to it).
_BUNDLED = "data/protocols"
DEFAULT_PROTOCOL = "eso-oligo-rt"
REGIMES = ("stereotactic", "conventional")
PRIORITIES = ("mandatory", "optimal")
_COMPARISON = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Comparison:
    """A comparator and a number: ``<= 45``."""

    operator: str
    value: float

    def holds(self, x: float) -> bool:
        """True when ``x`` satisfies the comparison."""
        return {
            "<=": x <= self.value,
            "<": x < self.value,
            ">=": x >= self.value,
            ">": x > self.value,
        }[self.operator]

    def margin(self, x: float) -> float:
        """How far ``x`` is inside the limit (negative when it fails), in the metric's unit."""
        return self.value - x if self.operator in ("<=", "<") else x - self.value

    def with_value(self, value: float) -> Comparison:
        """The same comparator with another number."""
        return Comparison(self.operator, value)

    def __str__(self) -> str:
        return f"{self.operator} {self.value:g}"

    @property
    def is_upper(self) -> bool:
        """True for an upper limit (``<=``, ``<``)."""
        return self.operator in ("<=", "<")


@dataclass(frozen=True)
class Limit:
    """One dose limit of a protocol.

    Attributes
    ----------
    structure
        TG-263 name of an OAR, a derived structure, or ``""`` for a lesion's own target.
    by_fractions
        Fraction count → (metric, comparison), the published columns; one entry when the
        limit is given for one fractionation.
    priority
        ``mandatory`` or ``optimal``.
    source
        Where the numbers come from.
    optional
        True when the structure may be absent (the limit is then not evaluated, without making
        the decision indeterminate).
    sites
        Lesion sites the limit applies to (lesion OAR limits only; empty means every site).
    group
        ``oar`` (whole plan), ``lesion_coverage`` or ``lesion_oar``.
    acceptable
        Fraction count → the looser threshold of a "variation acceptable" (minor deviation)
        tier, NRG-style; beyond it is a major deviation. Empty for a one-threshold limit.
    """

    structure: str
    by_fractions: tuple[tuple[int, Metric, Comparison], ...]
    priority: str
    source: str
    optional: bool
    sites: tuple[str, ...]
    group: str
    acceptable: tuple[tuple[int, Comparison], ...] = ()
    #: The regime the limit was published for and applies to (``stereotactic`` or
    #: ``conventional``); None: any. A plan or lesion of the other regime skips it.
    regime: str | None = None
    #: PTV volume (cc) → threshold, for a table by PTV volume (RTOG 0813/0915 Table 1);
    #: ``by_fractions`` then holds the first row.
    by_ptv_cc: tuple[tuple[float, Comparison], ...] = ()
    acceptable_by_ptv_cc: tuple[tuple[float, Comparison], ...] = ()
    #: Outside the table's PTV volumes: ``not_evaluated``, or ``nearest_row`` as the protocol says.
    outside_table: str = "not_evaluated"

    @property
    def label(self) -> str:
        """The metric as written for the first published fractionation."""
        return self.by_fractions[0][1].text


@dataclass(frozen=True)
class CumulativeLimit:
    """A limit on the dose of an earlier course and the current one together, in EQD2.

    Attributes
    ----------
    limit
        The metric and threshold (Gy EQD2, volumes in cc or %), its priority and source.
    alpha_beta
        α/β (Gy) that both courses are converted with, voxel by voxel.
    recovery
        (months, percent) pairs, increasing: after at least ``months`` between the courses,
        the earlier course's EQD2 counts ``percent`` % less. Empty: no recovery (the default;
        only a protocol states one).
    """

    limit: Limit
    alpha_beta: float
    recovery: tuple[tuple[float, float], ...] = ()

    def recovery_percent(self, interval_months: float | None) -> float:
        """The recovery (%) that applies after ``interval_months``; 0 when none applies or
        the interval is unknown."""
        if interval_months is None:
            return 0.0
        return max((p for months, p in self.recovery if interval_months >= months), default=0.0)


@dataclass(frozen=True)
class Reirradiation:
    """The protocol's rules for a patient irradiated before (``cumulative_limits:``).

    Attributes
    ----------
    limits
        The cumulative limits.
    prior_field_percent
        A lesion whose median dose (D50%) from an earlier course reaches this % of that
        course's prescription lies inside the earlier field.
    irradiated_gy
        An organ whose highest dose from a course reaches this (Gy, physical) is irradiated by
        that course: irradiated by both, it needs a cumulative limit.
    status
        What the protocol says of these limits (for instance that they are an example to be
        confirmed); shown with every result.
    """

    limits: tuple[CumulativeLimit, ...] = ()
    prior_field_percent: float = 50.0
    irradiated_gy: float = 1.0
    status: str = ""


@dataclass(frozen=True)
class ScreenRule:
    """A rule of the protocol's ``screen:`` section: an organ closer than ``min_distance_mm``
    to a target (of ``regime``, any when None) is flagged ``at_risk`` at screening."""

    min_distance_mm: float
    regime: str | None = None


@dataclass(frozen=True)
class Term:
    """One part of a derived structure: a structure (a TG-263 name, a derived one, or ``PTVs``),
    grown by a margin, or shrunk by it when ``shrink``."""

    name: str
    margin: Margin = Margin()
    shrink: bool = False

    def __str__(self) -> str:
        if self.margin.is_zero:
            return self.name
        return f"{self.name} {'-' if self.shrink else '+'} {self.margin}"


@dataclass(frozen=True)
class DerivedStructure:
    """A structure the protocol builds: the union of ``plus`` minus the union of ``minus``,
    each term clipped to the body outline when ``within_body``."""

    plus: tuple[Term, ...]
    minus: tuple[Term, ...] = ()
    within_body: bool = False


@dataclass(frozen=True)
class Protocol:
    """A loaded, validated protocol."""

    name: str
    version: str
    title: str
    path: str
    sha256: str
    sources: Mapping[str, str]
    alpha_beta_gy: Mapping[str, float]
    derived: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    allowed_synonyms: Mapping[str, tuple[str, ...]]
    oar_limits: tuple[Limit, ...]
    lesion_coverage: tuple[Limit, ...]
    lesion_oar_limits: tuple[Limit, ...]
    max_lesions: int
    max_organs: int
    #: How each derived structure is built (its terms with their margins); ``derived`` names
    #: the structures each one uses.
    derived_terms: Mapping[str, DerivedStructure] = field(default_factory=dict)
    #: Lesion site → why the trial excludes a patient with a lesion there (another criterion
    #: than 19, flagged with the evidence; criterion 19 itself is about dose).
    excluded_sites: Mapping[str, str] = field(default_factory=dict)
    #: A course of at most this many fractions is stereotactic; more, conventional.
    stereotactic_max_fractions: int = 8
    #: Limits on the sum with an earlier course (re-irradiation), in EQD2.
    reirradiation: Reirradiation = Reirradiation()
    #: Structure → the distance rule that flags it ``at_risk`` at screening.
    screen_rules: Mapping[str, ScreenRule] = field(default_factory=dict)

    def regime_of(self, fractions: int | None) -> str:
        """The regime of a course of ``fractions`` (None: an EQD2 sum, in 2 Gy fractions)."""
        if fractions is None:
            return "conventional"
        return "stereotactic" if fractions <= self.stereotactic_max_fractions else "conventional"

    @property
    def lesion_sites(self) -> frozenset[str]:
        """The lesion sites the protocol's near-lesion limits name."""
        return frozenset(site for limit in self.lesion_oar_limits for site in limit.sites)

    def alpha_beta(self, structure: str, is_target: bool = False) -> float:
        """α/β (Gy) for a structure."""
        if is_target:
            return self.alpha_beta_gy.get("target", 10.0)
        return self.alpha_beta_gy.get(structure, self.alpha_beta_gy.get("default", 3.0))

    def structures(self) -> list[str]:
        """Every structure the limits name (derived ones included), in order of appearance."""
        names = [lim.structure for lim in (*self.oar_limits, *self.lesion_oar_limits)]
        return list(dict.fromkeys(names))


def bundled_protocols() -> list[Path]:
    """The protocol files shipped with rtcheck (package data, read where it is installed)."""
    folder = resources.files("rtcheck").joinpath(_BUNDLED)
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def find_protocol(name_or_path: str | None) -> Path:
    """The file of a bundled protocol by name, or a path to a protocol file."""
    wanted = name_or_path or DEFAULT_PROTOCOL
    candidate = Path(wanted)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ProtocolError(f"{wanted}: no such protocol file")
        return candidate
    for path in bundled_protocols():
        if path.stem == wanted:
            return path
    names = ", ".join(p.stem for p in bundled_protocols()) or "none"
    raise ProtocolError(f"no bundled protocol named {wanted!r} (bundled: {names})")


def load_protocol(name_or_path: str | None = None) -> Protocol:
    """Load and validate a protocol, bundled (by name) or from a file.

    Raises
    ------
    ProtocolError
        If the file is missing, not YAML, or any entry is wrong; the message names the file,
        the entry and the problem.
    """
    path = find_protocol(name_or_path)
    try:
        document, data = read_yaml(path, "the protocol")
    except YamlFileError as exc:
        raise ProtocolError(f"{path}: {exc}") from None
    if isinstance(document, dict) and "extends" in document:
        document, data = _extended(path, document, data)
    return _Reader(str(path), hashlib.sha256(data).hexdigest()).protocol(document)


def _extended(path: Path, document: dict[Any, Any], data: bytes) -> tuple[dict[Any, Any], bytes]:
    """A protocol that ``extends`` a bundled one: the bundled protocol's entries, each replaced
    by the file's own where it gives one (``sources`` merged), and the bytes of both files (the
    record's hash covers them)."""
    base_name = document.pop("extends")
    bundled = {p.stem: p for p in bundled_protocols()}
    if not isinstance(base_name, str) or base_name not in bundled:
        names = ", ".join(sorted(bundled))
        raise ProtocolError(f"{path}: extends: {base_name!r} is no bundled protocol ({names})")
    try:
        base, base_data = read_yaml(bundled[base_name], "the protocol")
    except YamlFileError as exc:
        raise ProtocolError(f"{bundled[base_name]}: {exc}") from None
    if not isinstance(base, dict) or "extends" in base:
        raise ProtocolError(f"{path}: extends: {base_name} extends another protocol in turn")
    merged = {**base, **document}
    if isinstance(base.get("sources"), dict) and isinstance(document.get("sources"), dict):
        merged["sources"] = {**base["sources"], **document["sources"]}
    return merged, data + b"\n" + base_data


class _Reader:
    def __init__(self, path: str, sha256: str) -> None:
        self.path, self.sha256 = path, sha256

    def fail(self, where: str, message: str) -> ProtocolError:
        return ProtocolError(f"{self.path}: {where}: {message}")

    def protocol(self, doc: Any) -> Protocol:
        if not isinstance(doc, dict):
            raise self.fail("top level", "a protocol file is a YAML mapping")
        for key in ("protocol", "version", "oar_limits"):
            if key not in doc:
                raise self.fail("top level", f"'{key}' is missing")
        known = {
            "protocol",
            "version",
            "title",
            "sources",
            "alpha_beta_gy",
            "derived",
            "allowed_synonyms",
            "oar_limits",
            "lesions",
            "fractionation",
            "cumulative_limits",
            "screen",
        }
        unknown = sorted(set(doc) - known)
        if unknown:
            raise self.fail("top level", f"unknown key(s) {', '.join(unknown)}")
        sources = {
            str(k): self.text(v, f"sources.{k}")
            for k, v in self.mapping(doc.get("sources"), "sources").items()
        }
        alpha_beta: dict[str, float] = {}
        for key, value in self.mapping(doc.get("alpha_beta_gy"), "alpha_beta_gy").items():
            if not _is_number(value) or not 0 < value < 1000:
                raise self.fail(f"alpha_beta_gy.{key}", f"{value!r} is not a positive number")
            alpha_beta[str(key)] = float(value)
        derived = {}
        derived_terms = {}
        for name, spec in self.mapping(doc.get("derived"), "derived").items():
            where = f"derived.{name}"
            if not isinstance(spec, dict) or not spec.get("union"):
                raise self.fail(where, "needs 'union: [structures]' (and optionally 'minus')")
            if set(spec) - {"union", "minus", "within"}:
                extra = ", ".join(sorted(map(str, set(spec) - {"union", "minus", "within"})))
                raise self.fail(where, f"unknown keys {extra} (union, minus, within)")
            within = spec.get("within")
            if within not in (None, "External"):
                raise self.fail(f"{where}.within", f"{within!r}: only External (the body outline)")
            plus = tuple(
                self.term(v, f"{where}.union[{i}]")
                for i, v in enumerate(self.sequence(spec["union"], f"{where}.union"))
            )
            minus = tuple(
                self.term(v, f"{where}.minus[{i}]")
                for i, v in enumerate(self.sequence(spec.get("minus"), f"{where}.minus"))
            )
            derived[str(name)] = (tuple(t.name for t in plus), tuple(t.name for t in minus))
            derived_terms[str(name)] = DerivedStructure(plus, minus, within == "External")
        synonyms = {
            str(k): self.texts(v, f"allowed_synonyms.{k}")
            for k, v in self.mapping(doc.get("allowed_synonyms"), "allowed_synonyms").items()
        }

        oar = doc["oar_limits"]
        if not isinstance(oar, dict) or "limits" not in oar:
            raise self.fail("oar_limits", "needs 'fractions' and 'limits'")
        fractions = oar.get("fractions")
        oar_limits = tuple(
            self.limit(entry, f"oar_limits.limits[{i}]", "oar", fractions, sources)
            for i, entry in enumerate(self.sequence(oar["limits"], "oar_limits.limits"))
        )
        lesions = self.mapping(doc.get("lesions"), "lesions")
        coverage = tuple(
            self.limit(
                {**self.mapping(entry, f"lesions.coverage[{i}]"), "structure": ""},
                f"lesions.coverage[{i}]",
                "lesion_coverage",
                None,
                sources,
            )
            for i, entry in enumerate(self.sequence(lesions.get("coverage"), "lesions.coverage"))
        )
        lesion_oar = tuple(
            self.limit(entry, f"lesions.oar_limits[{i}]", "lesion_oar", None, sources)
            for i, entry in enumerate(
                self.sequence(lesions.get("oar_limits"), "lesions.oar_limits")
            )
        )
        reirradiation = self.reirradiation(doc.get("cumulative_limits"), sources)
        screen_rules = self.screen_rules(doc.get("screen"), derived)
        self.check_names(
            oar_limits + lesion_oar + tuple(c.limit for c in reirradiation.limits), derived
        )
        return Protocol(
            name=str(doc["protocol"]),
            version=str(doc["version"]),
            title=str(doc.get("title", "")),
            path=self.path,
            sha256=self.sha256,
            sources=sources,
            alpha_beta_gy=alpha_beta,
            derived=derived,
            allowed_synonyms=synonyms,
            oar_limits=oar_limits,
            lesion_coverage=coverage,
            lesion_oar_limits=lesion_oar,
            max_lesions=self.whole(lesions.get("max_lesions", 5), "lesions.max_lesions"),
            max_organs=self.whole(lesions.get("max_organs", 3), "lesions.max_organs"),
            excluded_sites=self.excluded_sites(lesions.get("excluded_sites")),
            derived_terms=derived_terms,
            stereotactic_max_fractions=self.stereotactic_max(doc.get("fractionation")),
            reirradiation=reirradiation,
            screen_rules=screen_rules,
        )

    def screen_rules(
        self, value: Any, derived: Mapping[str, tuple[tuple[str, ...], ...]]
    ) -> dict[str, ScreenRule]:
        """The ``screen:`` section: structure → ``{min_distance_mm: D, regime: R}``."""
        rules = {}
        for name, rule in self.mapping(value, "screen").items():
            where = f"screen.{name}"
            rule = self.mapping(rule, where)
            if "min_distance_mm" not in rule or set(rule) - {"min_distance_mm", "regime"}:
                raise self.fail(where, "give min_distance_mm (and optionally regime)")
            distance = rule["min_distance_mm"]
            if not _is_number(distance) or not 0 < distance <= 100:
                raise self.fail(f"{where}.min_distance_mm", f"{distance!r} is not 0-100 mm")
            name = str(name)
            if name not in derived and not is_tg263_name(name):
                raise self.fail(
                    where, f"{name!r} is neither a TG-263 name nor derived in this file"
                )
            rules[name] = ScreenRule(float(distance), self.regime(rule.get("regime"), where))
        return rules

    def reirradiation(self, value: Any, sources: Mapping[str, str]) -> Reirradiation:
        """The ``cumulative_limits:`` section: ``limits`` (each with ``alpha_beta`` and
        optionally ``recovery: {months: percent}``), ``prior_field: {percent_of_prescription:
        P}``, ``irradiated_gy`` and ``status``."""
        section = self.mapping(value, "cumulative_limits")
        known = {"limits", "prior_field", "irradiated_gy", "status"}
        if set(section) - known:
            extra = ", ".join(sorted(map(str, set(section) - known)))
            raise self.fail(
                "cumulative_limits", f"unknown key(s) {extra} ({', '.join(sorted(known))})"
            )
        limits = []
        for i, entry in enumerate(self.sequence(section.get("limits"), "cumulative_limits.limits")):
            where = f"cumulative_limits.limits[{i}]"
            entry = self.mapping(entry, where)
            if "fractions" in entry or isinstance(entry.get("limit"), dict):
                raise self.fail(where, "a cumulative limit is in EQD2: one threshold, no fractions")
            if "alpha_beta" not in entry:
                raise self.fail(where, "'alpha_beta' is missing (Gy, for the EQD2 of both courses)")
            alpha_beta = entry["alpha_beta"]
            if not _is_number(alpha_beta) or not 0 < alpha_beta < 1000:
                raise self.fail(f"{where}.alpha_beta", f"{alpha_beta!r} is not a positive number")
            rest = {k: v for k, v in entry.items() if k not in ("alpha_beta", "recovery")}
            limit = self.limit(rest, where, "cumulative", None, sources)
            metric = limit.by_fractions[0][1]
            if metric.needs_prescription:
                raise self.fail(
                    where, f"{metric.text}: a sum of two courses has no one prescription; in Gy"
                )
            limits.append(
                CumulativeLimit(
                    limit, float(alpha_beta), self.recovery(entry.get("recovery"), where)
                )
            )
        field_rule = self.mapping(section.get("prior_field"), "cumulative_limits.prior_field")
        if set(field_rule) - {"percent_of_prescription"}:
            raise self.fail("cumulative_limits.prior_field", "give percent_of_prescription only")
        percent = field_rule.get("percent_of_prescription", 50)
        if not _is_number(percent) or not 0 < percent <= 200:
            raise self.fail(
                "cumulative_limits.prior_field.percent_of_prescription",
                f"{percent!r} is not 0-200 %",
            )
        irradiated = section.get("irradiated_gy", 1.0)
        if not _is_number(irradiated) or not 0 < irradiated < 100:
            raise self.fail(
                "cumulative_limits.irradiated_gy", f"{irradiated!r} is not a dose in Gy"
            )
        status = self.text(section.get("status", ""), "cumulative_limits.status")
        return Reirradiation(tuple(limits), float(percent), float(irradiated), status)

    def recovery(self, value: Any, where: str) -> tuple[tuple[float, float], ...]:
        pairs = []
        for months, percent in self.mapping(value, f"{where}.recovery").items():
            if not _is_number(months) or not 0 <= months <= 600:
                raise self.fail(f"{where}.recovery", f"{months!r} is not a number of months")
            if not _is_number(percent) or not 0 <= percent < 100:
                raise self.fail(f"{where}.recovery.{months}", f"{percent!r} is not 0-100 %")
            pairs.append((float(months), float(percent)))
        return tuple(sorted(pairs))

    def excluded_sites(self, value: Any) -> dict[str, str]:
        sites = {}
        for site, why in self.mapping(value, "lesions.excluded_sites").items():
            where = f"lesions.excluded_sites.{site}"
            if str(site).lower() not in KNOWN_SITES:
                known = ", ".join(sorted(KNOWN_SITES))
                raise self.fail(where, f"{site!r} is no lesion site rtcheck finds ({known})")
            sites[str(site).lower()] = self.text(why, where)
        return sites

    def stereotactic_max(self, value: Any) -> int:
        settings = self.mapping(value, "fractionation")
        if set(settings) - {"stereotactic_max_fractions"}:
            raise self.fail("fractionation", "give stereotactic_max_fractions only")
        return self.whole(
            settings.get("stereotactic_max_fractions", 8),
            "fractionation.stereotactic_max_fractions",
        )

    def check_meaningful(self, metric: Metric, comparison: Comparison, where: str) -> None:
        """Refuse a limit that no plan can fail or none can pass: a volume above 100 %, or a
        bound below what a dose or volume can be (neither is ever negative)."""
        value, op = comparison.value, comparison.operator
        volume_percent = metric.quantity in ("V", "CV") and metric.result_unit == "%"
        if volume_percent and (value > 100 or (op == "<=" and value == 100)):
            raise self.fail(where, f"{metric.text} {comparison}: a volume in % is at most 100")
        if (op == ">=" and value <= 0) or (op == ">" and value < 0):
            raise self.fail(
                where, f"{metric.text} {comparison} always holds: the metric is never negative"
            )
        if (op == "<" and value <= 0) or (op == "<=" and value < 0):
            raise self.fail(
                where, f"{metric.text} {comparison} never holds: the metric is never negative"
            )

    def check_names(
        self, limits: tuple[Limit, ...], derived: Mapping[str, tuple[tuple[str, ...], ...]]
    ) -> None:
        """Refuse a structure name that is neither a TG-263 name nor derived in the file
        (``SpinalChord``), in a limit or in a derived structure's definition."""
        named = [(f"limit on {limit.structure}", limit.structure) for limit in limits]
        named += [
            (f"derived.{name}", part)
            for name, (plus, minus) in derived.items()
            for part in (*plus, *minus)
        ]
        for where, name in named:
            if name != "PTVs" and name not in derived and not is_tg263_name(name):
                raise self.fail(
                    where,
                    f"{name!r} is neither a TG-263 name nor derived in this file"
                    f"{suggestion(name, derived)}",
                )

    def mapping(self, value: Any, where: str) -> dict[Any, Any]:
        """A mapping, or {} for an absent (null) one."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, not {type(value).__name__} {value!r}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        """A list, or [] for an absent (null) one."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, not {type(value).__name__} {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(where, f"must be text, not {type(value).__name__} {value!r}")
        return str(value)

    def texts(self, value: Any, where: str) -> tuple[str, ...]:
        return tuple(
            self.text(v, f"{where}[{i}]") for i, v in enumerate(self.sequence(value, where))
        )

    def term(self, value: Any, where: str) -> Term:
        """A derived structure's term: ``Name``, ``"Name + 5"`` (grown 5 mm), ``"Name - 3"``
        (shrunk), or ``{structure: Name, expand_mm: M}`` / ``{structure: Name, contract_mm: M}``
        with ``M`` a number or a mapping of directions (right, left, anterior, posterior,
        inferior, superior; those not given are 0)."""
        if isinstance(value, dict):
            keys = set(value)
            if (
                "structure" not in keys
                or len(keys & {"expand_mm", "contract_mm"}) != 1
                or (keys - {"structure", "expand_mm", "contract_mm"})
            ):
                raise self.fail(where, "give structure and one of expand_mm or contract_mm")
            shrink = "contract_mm" in keys
            amount = value["contract_mm" if shrink else "expand_mm"]
            margin = self.margin(amount, f"{where}.{'contract_mm' if shrink else 'expand_mm'}")
            return Term(self.text(value["structure"], f"{where}.structure"), margin, shrink)
        text = self.text(value, where)
        found = _TERM.match(text)
        if found is None:
            return Term(text.strip())
        margin = self.margin(float(found["mm"]), where)
        return Term(found["name"], margin, found["op"] == "-")

    def margin(self, value: Any, where: str) -> Margin:
        try:
            if _is_number(value):
                return Margin.isotropic(float(value))
            if isinstance(value, dict):
                unknown = set(value) - set(DIRECTIONS)
                if unknown or not all(_is_number(v) for v in value.values()):
                    raise self.fail(where, f"give numbers (mm) for some of {', '.join(DIRECTIONS)}")
                return Margin(**{str(k): float(v) for k, v in value.items()})
        except InvalidStructureError as exc:
            raise self.fail(where, str(exc)) from None
        raise self.fail(where, f"{value!r} is not a margin in mm")

    def whole(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise self.fail(where, f"{value!r} is not a whole number from 1 to 1000")
        return value

    def limit(
        self, entry: Any, where: str, group: str, fractions: Any, sources: Mapping[str, str]
    ) -> Limit:
        if not isinstance(entry, dict):
            raise self.fail(where, "a limit is a mapping with structure, metric, limit, priority")
        structure = entry.get("structure")
        where = f"{where} ({structure or 'lesion target'} {entry.get('metric', '')})"
        for key in ("metric", "limit", "priority", "source"):
            if key not in entry:
                raise self.fail(where, f"'{key}' is missing")
        if structure is None:
            raise self.fail(where, "'structure' is missing")
        unknown = set(entry) - {
            "structure",
            "metric",
            "limit",
            "priority",
            "source",
            "optional",
            "sites",
            "fractions",
            "acceptable",
            "regime",
            "outside_table",
        }
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
        if isinstance(entry["limit"], dict) and "ptv_cc" in entry["limit"]:
            return self.volume_table_limit(entry, where, group, sources)
        priority = entry["priority"]
        if priority not in PRIORITIES:
            raise self.fail(where, f"priority {priority!r} is not mandatory or optimal")
        fractions = entry.get("fractions", fractions)
        metric_raw, limit_raw = entry["metric"], entry["limit"]
        pairs = (("metric", metric_raw), ("limit", limit_raw))
        tables = [self.columns(v, where, k) for k, v in pairs if isinstance(v, dict)]
        if len(tables) == 2 and set(tables[0]) != set(tables[1]):
            raise self.fail(where, "metric and limit give different fraction columns")
        if tables:
            columns = sorted(tables[0])
        elif fractions is None:
            columns = [0]  # no fractionation stated: the limit applies as it is
        elif isinstance(fractions, int) and not isinstance(fractions, bool) and fractions >= 1:
            columns = [fractions]
        else:
            raise self.fail(where, f"fractions {fractions!r} is not a number of fractions")
        rows = []
        for n in columns:
            metric_text = metric_raw[n] if isinstance(metric_raw, dict) else metric_raw
            limit_text = limit_raw[n] if isinstance(limit_raw, dict) else limit_raw
            metric = self.metric(metric_text, where, group)
            comparison = self.comparison(limit_text, where)
            self.check_meaningful(metric, comparison, where)
            rows.append((n, metric, comparison))
        acceptable = self.acceptable(entry.get("acceptable"), rows, where)
        sites = tuple(s.lower() for s in self.texts(entry.get("sites"), f"{where}.sites"))
        source = self.text(entry["source"], f"{where}.source")
        optional = entry.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(where, f"optional {optional!r} is not true or false")
        if not isinstance(structure, str):
            raise self.fail(where, f"structure {structure!r} is not a name")
        return Limit(
            structure=str(structure),
            by_fractions=tuple(rows),
            priority=str(priority),
            source="; ".join(sources.get(s.strip(), s.strip()) for s in source.split(";")),
            optional=optional,
            sites=sites,
            group=group,
            acceptable=acceptable,
            regime=self.regime(entry.get("regime"), where),
        )

    def metric(self, text: Any, where: str, group: str) -> Metric:
        """A TG-263 metric, or (for a lesion's own limits) a plan-quality index."""
        index = parse_index(str(text))
        if index is not None:
            if group != "lesion_coverage":
                raise self.fail(
                    where, f"{index.text} is a lesion's index: give it in lesions.coverage"
                )
            return index
        try:
            return parse_metric(str(text))
        except MetricSyntaxError as exc:
            raise self.fail(where, f"{exc}; or a lesion index: {', '.join(INDICES)}") from None

    def regime(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if value not in REGIMES:
            raise self.fail(f"{where}.regime", f"{value!r}: stereotactic or conventional")
        return str(value)

    def volume_table_limit(
        self, entry: dict[str, Any], where: str, group: str, sources: Mapping[str, str]
    ) -> Limit:
        """A limit whose threshold depends on the PTV's volume (RTOG 0813/0915 Table 1): rows
        ``{ptv_cc: {1.8: "< 1.2", 3.8: "< 1.2", ...}}``, interpolated linearly between rows."""
        if group != "lesion_coverage":
            raise self.fail(where, "a limit by PTV volume is a lesion coverage limit")
        metric = self.metric(entry["metric"], where, group)
        rows = self.volume_rows(entry["limit"], f"{where}.limit")
        acceptable: tuple[tuple[float, Comparison], ...] = ()
        if entry.get("acceptable") is not None:
            acceptable = self.volume_rows(entry["acceptable"], f"{where}.acceptable")
            if [v for v, _ in acceptable] != [v for v, _ in rows]:
                raise self.fail(f"{where}.acceptable", "give the same PTV volumes as the limit")
            for (_, strict), (_, loose) in zip(rows, acceptable, strict=True):
                looser = (
                    loose.value >= strict.value if strict.is_upper else loose.value <= strict.value
                )
                if loose.is_upper != strict.is_upper or not looser:
                    raise self.fail(f"{where}.acceptable", f"{loose} is not looser than {strict}")
        outside = entry.get("outside_table", "not_evaluated")
        if outside not in ("not_evaluated", "nearest_row"):
            raise self.fail(f"{where}.outside_table", f"{outside!r}: not_evaluated or nearest_row")
        priority = entry["priority"]
        if priority not in PRIORITIES:
            raise self.fail(where, f"priority {priority!r} is not mandatory or optimal")
        source = self.text(entry["source"], f"{where}.source")
        return Limit(
            structure="",
            by_fractions=((0, metric, rows[0][1]),),
            priority=str(priority),
            source="; ".join(sources.get(s.strip(), s.strip()) for s in source.split(";")),
            optional=False,
            sites=(),
            group=group,
            regime=self.regime(entry.get("regime"), where),
            by_ptv_cc=rows,
            acceptable_by_ptv_cc=acceptable,
            outside_table=str(outside),
        )

    def volume_rows(self, value: Any, where: str) -> tuple[tuple[float, Comparison], ...]:
        table = value.get("ptv_cc") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(table, dict) or len(table) < 2:
            raise self.fail(where, "give {ptv_cc: {volume: comparison, ...}} with 2 rows or more")
        rows = []
        for volume, text in table.items():
            if not _is_number(volume) or not volume > 0:
                raise self.fail(where, f"PTV volume {volume!r} is not a positive number of cc")
            rows.append((float(volume), self.comparison(text, where)))
        rows.sort()
        if len({c.operator for _, c in rows}) != 1:
            raise self.fail(where, "every row needs the same comparator")
        return tuple(rows)

    def acceptable(
        self, value: Any, rows: list[tuple[int, Metric, Comparison]], where: str
    ) -> tuple[tuple[int, Comparison], ...]:
        """The minor-deviation tier of a limit: for each published column, a threshold with the
        same direction as the limit's, and looser (or equal)."""
        if value is None:
            return ()
        where = f"{where}.acceptable"
        if isinstance(value, dict):
            columns = self.columns(value, where, "acceptable")
            if set(columns) != {n for n, _, _ in rows}:
                raise self.fail(where, "give the same fraction columns as the limit")
        elif len(rows) > 1:
            raise self.fail(where, "the limit is a table by fractions: give acceptable as one too")
        tiers = []
        for n, _, comparison in rows:
            looser = self.comparison(value[n] if isinstance(value, dict) else value, where)
            if looser.is_upper != comparison.is_upper:
                raise self.fail(where, f"{looser} and the limit {comparison} point opposite ways")
            inside = (
                looser.value >= comparison.value
                if looser.is_upper
                else (looser.value <= comparison.value)
            )
            if not inside:
                raise self.fail(where, f"{looser} is stricter than the limit {comparison}")
            tiers.append((n, looser))
        return tuple(tiers)

    def columns(self, value: dict[Any, Any], where: str, key: str) -> dict[int, Any]:
        for n in value:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise self.fail(where, f"{key} column {n!r} is not a number of fractions")
        if not value:
            raise self.fail(where, f"{key} has no fraction columns")
        return value

    def comparison(self, text: Any, where: str) -> Comparison:
        match = _COMPARISON.match(str(text))
        if not match:
            raise self.fail(
                where, f"limit {text!r} must be a comparator and a number, such as '<= 45'"
            )
        return Comparison(match[1], float(match[2]))


def _is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool, which YAML's true also gives)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
