"""What evaluating a plan gives: one result per limit, the decision on criterion 19, and the
evaluation that holds them with the plan, the protocol and the DVHs computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict

from rtcheck.dicom.plan import Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dvh.engine import DVH
from rtcheck.numbers import json_number
from rtcheck.protocol.definition import Protocol
from rtcheck.protocol.lesions import Lesion
from rtcheck.protocol.names import StructureMatch


class Eligibility(StrEnum):
    """The answer to exclusion criterion 19, as the record, the exports and the pages say it."""

    EXCLUDED = "excluded"
    NOT_EXCLUDED = "not_excluded"
    INDETERMINATE = "indeterminate"


class Grade(StrEnum):
    """A limit's result. A limit with an acceptable tier that it does not meet is a minor
    deviation within that tier, a major one beyond it (NRG's grading)."""

    PASS = "pass"
    FAIL = "fail"
    MINOR_DEVIATION = "minor_deviation"
    MAJOR_DEVIATION = "major_deviation"
    NOT_EVALUATED = "not_evaluated"


#: Results that break a limit: a mandatory one excludes.
BROKEN = (Grade.FAIL, Grade.MAJOR_DEVIATION)
#: How a structure the plan does not have is said (an optional one's absence is no finding).
MISSING = "not found among the ROIs"


class NotEvaluable(Exception):
    """A limit cannot be evaluated on this plan; the message is the reason."""


@dataclass(frozen=True)
class LimitOrigin:
    """Where a result comes from, enough to judge the same evidence against an edited
    protocol (the dashboard's what-if) without the plan's files.

    Attributes
    ----------
    entry, index
        The protocol's list (``oar_limits``, ``lesion_coverage``, ``lesion_oar_limits``) and
        the limit's position in it.
    wanted_fractions, plan_fractions
        The fractionation whose column was chosen (the lesion's, or the plan's) and that of
        the dose compared (None: an EQD2 sum), as :func:`convert_limit` takes them.
    dose
        The key of the dose the DVH was computed on (``physical``, ``EQD2``, ``plan:LABEL``).
    ptv_cc
        The lesion's PTV volume (cc), for limits by PTV volume.
    prescription_gy
        The lesion's prescription (Gy), for metrics relative to it.
    """

    entry: str
    index: int
    wanted_fractions: int | None = None
    plan_fractions: int | None = None
    dose: str | None = None
    ptv_cc: float | None = None
    prescription_gy: float | None = None

    def to_row(self) -> OriginRow:
        """The origin as the eligibility record holds it (``limits[].origin``)."""
        return {
            "entry": self.entry,
            "index": self.index,
            "wanted_fractions": self.wanted_fractions,
            "plan_fractions": self.plan_fractions,
            "dose": self.dose,
            "ptv_cc": json_number(self.ptv_cc, 4),
            "prescription_gy": json_number(self.prescription_gy, 4),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LimitOrigin:
        """The origin a record's ``limits[].origin`` holds (:meth:`to_row`'s inverse)."""
        return cls(**row)


@dataclass(frozen=True)
class LimitResult:
    """The evidence for one limit.

    Attributes
    ----------
    structure
        The protocol's structure name (or the lesion's target for coverage limits).
    rois
        The ROI names matched to it.
    metric
        The metric evaluated (after any fractionation conversion of its threshold).
    limit
        The comparison (after any conversion), e.g. ``<= 45``; None when no published column
        can be chosen for this plan (its fractionation unknown: the reason lists them).
    value, margin
        The metric's value and how far inside the limit it is (negative: failing), or None.
    result
        ``pass``, ``fail`` or ``not_evaluated``.
    priority
        ``mandatory`` or ``optimal``.
    group
        ``oar``, ``lesion_coverage`` or ``lesion_oar``.
    lesion
        The lesion the limit is evaluated for, or None.
    reason
        Why it was not evaluated, or None.
    conversion
        How the published limit was converted to this plan's fractionation, or None.
    source
        Where the published numbers come from.
    optional
        True when the protocol allows the structure to be absent.
    dose_coverage
        Fraction of the structure inside the dose grid, when computed.
    """

    structure: str
    rois: tuple[str, ...]
    metric: str
    limit: str | None
    value: float | None
    margin: float | None
    result: Grade
    priority: str
    group: str
    lesion: str | None
    reason: str | None
    conversion: str | None
    source: str
    optional: bool = False
    dose_coverage: float | None = None
    acceptable: str | None = None
    origin: LimitOrigin | None = None

    @property
    def absent_optional(self) -> bool:
        """True for a limit on an optional structure that the plan does not have: not a
        finding, and no reason for an indeterminate decision."""
        return self.optional and self.result == "not_evaluated" and MISSING in (self.reason or "")

    def to_row(self) -> LimitRow:
        """The result as the eligibility record holds it (``limits[]``; the JSON Schema in
        ``data/eligibility-record.schema.json``): numbers rounded, NaN as null."""
        return {
            "structure": self.structure,
            "roi": list(self.rois),
            "lesion": self.lesion,
            "group": self.group,
            "metric": self.metric,
            "limit": self.limit,
            "value": json_number(self.value),
            "margin": json_number(self.margin),
            "result": self.result,
            "priority": self.priority,
            "optional": self.optional,
            "reason": self.reason,
            "conversion": self.conversion,
            "dose_coverage": json_number(self.dose_coverage, 6),
            "acceptable": self.acceptable,
            "source": self.source,
            "origin": self.origin.to_row() if self.origin else None,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **changed: Any) -> LimitResult:
        """The result a record's ``limits[]`` row holds (:meth:`to_row`'s inverse), with the
        fields ``changed`` replaced."""
        origin = row.get("origin")
        fields: dict[str, Any] = {
            "structure": row["structure"],
            "rois": tuple(row.get("roi") or ()),
            "metric": row["metric"],
            "limit": row["limit"],
            "value": row["value"],
            "margin": row["margin"],
            "result": Grade(row["result"]),
            "priority": row["priority"],
            "group": row["group"],
            "lesion": row.get("lesion"),
            "reason": row.get("reason"),
            "conversion": row.get("conversion"),
            "source": row["source"],
            "optional": bool(row.get("optional", False)),
            "dose_coverage": row.get("dose_coverage"),
            "acceptable": row.get("acceptable"),
            "origin": LimitOrigin.from_row(origin) if origin else None,
        }
        fields.update(changed)
        return cls(**fields)


class OriginRow(TypedDict):
    """``limits[].origin`` of the eligibility record (see :class:`LimitOrigin`)."""

    entry: str
    index: int
    wanted_fractions: int | None
    plan_fractions: int | None
    dose: str | None
    ptv_cc: float | None
    prescription_gy: float | None


class LimitRow(TypedDict):
    """``limits[]`` of the eligibility record (see :class:`LimitResult`, whose field ``rois``
    the record calls ``roi``)."""

    structure: str
    roi: list[str]
    lesion: str | None
    group: str
    metric: str
    limit: str | None
    value: float | None
    margin: float | None
    result: str
    priority: str
    optional: bool
    reason: str | None
    conversion: str | None
    dose_coverage: float | None
    acceptable: str | None
    source: str
    origin: OriginRow | None


@dataclass(frozen=True)
class Decision:
    """Criterion 19's decision and the reasons for it."""

    decision: Eligibility
    reasons: tuple[str, ...]
    minor_deviations: tuple[str, ...]


#: How the earlier courses' doses are summed with the current one, as the record says it.
RESAMPLING = (
    "each earlier course's physical dose sampled at the current dose grid's points through its "
    "registration (trilinear), converted to EQD2 voxel by voxel with its own fractions and the "
    "limit's alpha/beta, and added to the current course's EQD2"
)


@dataclass(frozen=True)
class CourseSummary:
    """One earlier course as the record and the report show it.

    Attributes
    ----------
    label, fractions, prescription_gy
        From its RTPLAN (None when unknown).
    end_date, end_date_source
        When it ended (ISO 8601) and how that was found.
    interval_months
        Months from its end to the current plan (None when a date is unknown).
    placement
        ``same frame of reference``, ``rigid`` or ``deformable``.
    registration_uid, registration_creator
        The registration object used (SOP Instance UID; Manufacturer and ContentCreatorName).
    matrix
        For a rigid registration, the matrix (4 rows) carrying a current point into the earlier
        frame.
    outside_percent
        % of the current dose grid's points beyond the earlier dose grid (given 0 Gy there).
    edge_max_gy
        The earlier dose's highest value on its grid's outer faces (Gy).
    files
        (path, SOP Instance UID, SHA-256) of the files used.
    warnings
        What was assumed or ignored.
    """

    label: str
    fractions: int | None
    prescription_gy: float | None
    end_date: str | None
    end_date_source: str
    interval_months: float | None
    placement: str
    registration_uid: str | None
    registration_creator: str
    matrix: tuple[tuple[float, ...], ...] | None
    outside_percent: float
    edge_max_gy: float
    files: tuple[tuple[str, str, str], ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class EarlierDose:
    """A lesion's dose from one earlier course (Gy, physical, and in that course's EQD2 at the
    target's α/β), and whether it lies inside that course's field."""

    lesion: str
    course: str
    d98_gy: float
    d50_gy: float
    max_gy: float
    d50_eqd2_gy: float | None
    d50_percent: float | None
    inside_field: bool | None


@dataclass(frozen=True)
class EarlierCourses:
    """What the earlier courses add to an evaluation."""

    courses: tuple[CourseSummary, ...]
    lesion_doses: tuple[EarlierDose, ...]
    flags: tuple[str, ...]
    plan_date: str | None
    plan_date_source: str
    status: str
    resampling: str = RESAMPLING


@dataclass(frozen=True)
class Evaluation:
    """Everything ``rtcheck check`` found about a plan; ``dvhs`` holds (structure, dose, DVH)
    for every DVH computed."""

    plan: Plan
    protocol: Protocol
    limits: tuple[LimitResult, ...]
    lesions: tuple[Lesion, ...]
    matches: tuple[StructureMatch, ...]
    decision: Decision
    dose_mode: str
    end_caps: EndCaps = EndCaps.HALF_SLAB
    warnings: tuple[str, ...] = field(default=())
    dvhs: tuple[tuple[str, str, DVH], ...] = field(default=())
    #: The earlier courses summed with this one (re-irradiation), when given.
    earlier: EarlierCourses | None = None
    #: When the evaluation was made: UTC, ISO 8601 to the second.
    evaluated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat("T", "seconds"))

    @property
    def excluded_sites(self) -> tuple[tuple[Lesion, str], ...]:
        """Lesions at a site the trial excludes (brain, meninges...), with the protocol's
        reason: other criteria than 19, flagged with the evidence, not decided here."""
        reasons = self.protocol.excluded_sites
        return tuple(
            (x, reasons[x.site]) for x in self.lesions if x.site is not None and x.site in reasons
        )

    @property
    def organ_count(self) -> int:
        """Number of distinct metastatic organs (unknown sites not counted)."""
        return len({lesion.site for lesion in self.lesions if lesion.site})
