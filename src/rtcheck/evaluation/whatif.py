"""What-if: a stored plan's limits judged again against an edited protocol, from the evidence
its record and stored DVHs hold (no DICOM file is read, no DVH computed).

For each stored result, the limit at the same place in the edited protocol is chosen and
converted to the plan's fractionation exactly as a check does (:func:`convert_limit`, the PTV
volume table, the acceptable tier), then compared with the stored value where the metric is
the same, or with the value read from the stored DVH where the edit changed the metric (a dose
within 0.05 Gy of the full DVH's, see :mod:`rtcheck.dvh.compact`). Where neither can be had (a
plan-quality index whose metric changed, a record without origins, a limit moved to another
structure), the plan is said to need a new check, never judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rtcheck.dvh.engine import DVH
from rtcheck.dvh.metrics import Metric, evaluate_metric
from rtcheck.errors import RtcheckError, StoredDVHError
from rtcheck.evaluation.decision import decide
from rtcheck.evaluation.fractionation import convert_limit
from rtcheck.evaluation.limits import by_ptv_volume, graded
from rtcheck.evaluation.results import Grade, LimitResult, NotEvaluable
from rtcheck.protocol.definition import Comparison, Limit, Protocol


class NeedsCheck(Exception):
    """The stored evidence cannot answer for this limit; the message says why."""


@dataclass(frozen=True)
class LimitChange:
    """A limit whose result the edit changes: what it was and what it would be."""

    label: str
    before: str
    after: str
    limit_before: str | None
    limit_after: str | None
    value: float | None


@dataclass(frozen=True)
class WhatIf:
    """One plan under the edited protocol: its decision before and after, the limits whose
    result changes, or why it needs a new check (``after`` is then None)."""

    before: str
    after: str | None
    changes: tuple[LimitChange, ...] = ()
    needs_check: str | None = None
    results: tuple[LimitResult, ...] = ()

    @property
    def changed(self) -> bool:
        return self.after is not None and self.after != self.before


def _result_of(row: Mapping[str, Any], rule: Limit, **changed: Any) -> LimitResult:
    """The stored result, with the edited limit's priority and optionality (and ``changed``)."""
    return LimitResult.from_row(row, priority=rule.priority, optional=rule.optional, **changed)


def _label(row: Mapping[str, Any]) -> str:
    lesion = f" [{row['lesion']}]" if row.get("lesion") else ""
    return f"{row['structure']}{lesion} {row['metric']}"


def _applies(limit: Limit, origin: Mapping[str, Any], protocol: Protocol, lesion: bool) -> bool:
    """As a check decides it: by the lesion's regime (applies when its fractions are unknown),
    or by that of the dose compared (an EQD2 sum is conventional)."""
    if limit.regime is None:
        return True
    wanted = origin.get("wanted_fractions")
    if lesion:
        return wanted is None or protocol.regime_of(wanted) == limit.regime
    return protocol.regime_of(origin.get("plan_fractions")) == limit.regime


def _applied(
    limit: Limit, origin: Mapping[str, Any], protocol: Protocol
) -> tuple[Metric, Comparison, Comparison | None, str | None]:
    """The edited limit as it applies to this plan: metric, limit, acceptable tier, note."""
    wanted, plan_fx = origin.get("wanted_fractions"), origin.get("plan_fractions")
    if origin["entry"] == "lesion_coverage":
        _, metric, comparison = limit.by_fractions[0]
        acceptable = limit.acceptable[0][1] if limit.acceptable else None
        note = None
        if limit.by_ptv_cc:
            ptv_cc = origin.get("ptv_cc")
            if ptv_cc is None:
                raise NeedsCheck("the lesion's PTV volume is not stored")
            comparison, acceptable, note = by_ptv_volume(limit, float(ptv_cc))
        return metric, comparison, acceptable, note
    alpha_beta = protocol.alpha_beta(limit.structure)
    metric, comparison, note = convert_limit(limit, wanted, plan_fx, alpha_beta, protocol.regime_of)
    tier = None
    if limit.acceptable:
        looser = dict(limit.acceptable)
        as_tier = replace(
            limit, by_fractions=tuple((n, m, looser[n]) for n, m, _ in limit.by_fractions)
        )
        tier = convert_limit(as_tier, wanted, plan_fx, alpha_beta, protocol.regime_of)[1]
    return metric, comparison, tier, note


def _value(
    row: Mapping[str, Any],
    metric: Metric,
    origin: Mapping[str, Any],
    dvhs: Mapping[tuple[str, str], DVH],
) -> float:
    if metric.text == row["metric"] and row["value"] is not None:
        return float(row["value"])
    if metric.quantity == "Index":
        raise NeedsCheck(f"{_label(row)}: a plan-quality index changed; it is not in a DVH")
    try:
        dvh = dvhs.get((row["structure"], str(origin.get("dose"))))
    except StoredDVHError as exc:
        raise NeedsCheck(f"{_label(row)}: {exc}") from None
    if dvh is None:
        raise NeedsCheck(f"{_label(row)}: the metric changed and the DVH is not stored")
    value = evaluate_metric(metric, dvh, origin.get("prescription_gy"))
    if math.isnan(value):
        raise NeedsCheck(f"{_label(row)}: {metric.text} is undefined on the stored DVH")
    return value


#: (entry, index, wanted fractions, plan fractions, PTV cc) → the limit as it applies, or the
#: reason it cannot be evaluated: the same for every plan of that fractionation.
AppliedCache = dict[
    tuple[Any, ...], "tuple[Metric, Comparison, Comparison | None, str | None] | str"
]


def _judged(
    row: Mapping[str, Any],
    protocol: Protocol,
    dvhs: Mapping[tuple[str, str], DVH],
    applied: AppliedCache,
) -> LimitResult | None:
    origin = row.get("origin")
    if row.get("group") == "cumulative":
        raise NeedsCheck(
            f"{_label(row)}: a limit on the sum with earlier courses; its doses are not stored"
        )
    if not origin:
        raise NeedsCheck("the record is older than 1.3: its results carry no origin")
    entries: Sequence[Limit] = getattr(protocol, str(origin["entry"]))
    if origin["index"] >= len(entries):
        return None  # the edit removed the limit
    limit = entries[origin["index"]]
    if origin["entry"] != "lesion_coverage" and limit.structure != row["structure"]:
        raise NeedsCheck(
            f"{_label(row)}: the edited protocol has {limit.structure} at its place; limits "
            "may be changed, not moved"
        )
    if not _applies(limit, origin, protocol, bool(row.get("lesion"))):
        return None
    if row["result"] == Grade.NOT_EVALUATED:
        return _result_of(row, limit)  # not evaluated before: nothing stored to judge
    key = (
        origin["entry"],
        origin["index"],
        origin.get("wanted_fractions"),
        origin.get("plan_fractions"),
        origin.get("ptv_cc"),
    )
    if key not in applied:
        try:
            applied[key] = _applied(limit, origin, protocol)
        except (NotEvaluable, RtcheckError) as exc:
            applied[key] = str(exc)
    chosen = applied[key]
    if isinstance(chosen, str):
        return _result_of(
            row, limit, value=None, margin=None, result=Grade.NOT_EVALUATED, reason=chosen
        )
    metric, comparison, acceptable, note = chosen
    value = _value(row, metric, origin, dvhs)
    base = _result_of(row, limit, metric=metric.text, limit=str(comparison))
    return graded(base, value, comparison, acceptable, note)


def what_if(
    record: Mapping[str, Any],
    protocol: Protocol,
    dvhs: Mapping[tuple[str, str], DVH],
    applied: AppliedCache | None = None,
) -> WhatIf:
    """The plan of ``record`` judged against ``protocol``; ``dvhs`` are its stored DVHs by
    (structure, dose key). ``applied``, shared by the calls for one protocol, keeps each limit
    as it applies to a fractionation, which is the same for every plan."""
    applied = {} if applied is None else applied
    before = str(record["criterion_19"]["decision"])
    rows = record.get("limits", [])
    results: list[LimitResult] = []
    changes: list[LimitChange] = []
    try:
        for row in rows:
            judged = _judged(row, protocol, dvhs, applied)
            if judged is None:
                changes.append(
                    LimitChange(
                        _label(row), row["result"], "no longer applies", row["limit"], None, None
                    )
                )
                continue
            results.append(judged)
            if (judged.result, judged.priority, judged.limit) != (
                row["result"],
                row["priority"],
                row["limit"],
            ):
                changes.append(
                    LimitChange(
                        _label(row),
                        f"{row['result']} ({row['priority']})",
                        f"{judged.result} ({judged.priority})",
                        row["limit"],
                        judged.limit,
                        judged.value,
                    )
                )
    except NeedsCheck as exc:
        return WhatIf(before, None, needs_check=str(exc))
    return WhatIf(before, decide(results).decision, tuple(changes), None, tuple(results))
