"""Choosing a limit's published column for a plan's fractionation and converting it with the LQ
model (iso-BED), so that it compares with the plan's dose: its physical dose in its own number
of fractions, or EQD2 for a sum of plans."""

from __future__ import annotations

import math
from collections.abc import Callable

from rtcheck.dvh.metrics import Metric
from rtcheck.evaluation.results import NotEvaluable
from rtcheck.protocol import lq
from rtcheck.protocol.definition import Comparison, Limit


def convert_limit(
    limit: Limit,
    wanted_fractions: int | None,
    plan_fractions: int | None,
    alpha_beta: float,
    regime_of: Callable[[int | None], str] | None = None,
) -> tuple[Metric, Comparison, str | None]:
    """Choose the published column for ``wanted_fractions`` and convert it to the dose it is
    compared with: the plan's physical dose in ``plan_fractions``, or EQD2 when
    ``plan_fractions`` is None.

    Doses convert by iso-BED with ``alpha_beta``: a V/CV threshold in Gy, or a D/Mean/Max/Min
    limit value in Gy. Relative (% of prescription) and volume quantities do not change.

    With ``regime_of`` (fractions → ``stereotactic`` / ``conventional``; None is EQD2, in 2 Gy
    fractions), a column is chosen, and converted, only within the regime of the course it is
    compared with: a limit published for 5 fractions is never stretched to 25, nor a
    conventional one shrunk to 5 (``NotEvaluable`` says so).
    """
    columns = limit.by_fractions
    if len(columns) == 1 and columns[0][0] == 0:
        _, metric, comparison = columns[0]
        return metric, comparison, None  # published without a fractionation
    wanted = wanted_fractions if wanted_fractions is not None else plan_fractions
    if regime_of is not None:
        regime = regime_of(wanted)
        same = [c for c in columns if regime_of(c[0]) == regime]
        if not same:
            course = f"{wanted} fractions" if wanted is not None else "an EQD2 sum"
            raise NotEvaluable(
                f"published for {_fractions(columns)} fractions only; not for a {regime} course "
                f"({course}), and no conversion across regimes"
            )
        columns = tuple(same)
    if wanted is None:
        if len(columns) > 1:
            raise NotEvaluable("unknown fractionation: cannot choose a published column")
        source_fx, metric, comparison = columns[0]
    else:
        exact = [c for c in columns if c[0] == wanted]
        source_fx, metric, comparison = (
            exact[0] if exact else min(columns, key=lambda c: (abs(math.log(c[0] / wanted)), c[0]))
        )
    target_fx = plan_fractions
    if regime_of is not None and regime_of(target_fx) != regime_of(source_fx):
        to = "an EQD2 sum" if target_fx is None else f"{target_fx} fractions"
        raise NotEvaluable(
            f"published for {source_fx} fractions ({regime_of(source_fx)}); the dose compared is "
            f"{to} ({regime_of(target_fx)}): no conversion across regimes"
        )

    def dose(value_gy: float) -> float:
        if target_fx is None:
            return lq.eqd2(value_gy, source_fx, alpha_beta)
        return lq.convert(value_gy, source_fx, target_fx, alpha_beta)

    if target_fx == source_fx:
        return metric, comparison, None
    to = "EQD2" if target_fx is None else f"{target_fx} fractions"
    note = f"published for {source_fx} fractions; converted to {to} (LQ, a/b {alpha_beta:g} Gy)"
    scale = {"Gy": 1.0, "cGy": 0.01}
    if metric.quantity in ("V", "CV") and metric.threshold_unit in scale:
        assert metric.threshold is not None
        gy = metric.threshold * scale[metric.threshold_unit]
        new_gy = dose(gy)
        text = f"{metric.quantity}{_fmt(new_gy)}Gy[{metric.result_unit}]"
        converted = Metric(text, metric.quantity, new_gy, "Gy", metric.result_unit)
        return converted, comparison, f"{note}: {metric.text} -> {text}"
    if metric.is_dose and metric.result_unit in scale:
        gy = comparison.value * scale[metric.result_unit]
        new_value = dose(gy) / scale[metric.result_unit]
        new = comparison.with_value(round(new_value, 3))
        return metric, new, f"{note}: {comparison} -> {new}"
    return metric, comparison, f"{note}: relative metric, unchanged"


def published_columns(limit: Limit) -> str:
    """Every published column of a limit: ``<= 14 (1 fx), <= 21.9 (3 fx)``, each with its
    metric where the columns' metrics differ (``V10Gy[cc] <= 0.35 (1 fx), V18Gy[cc] ...``)."""
    columns = limit.by_fractions
    named = len({metric.text for _, metric, _ in columns}) > 1
    return ", ".join(
        f"{metric.text + ' ' if named else ''}{c}" + (f" ({n} fx)" if n else "")
        for n, metric, c in columns
    )


def _fractions(columns: tuple[tuple[int, Metric, Comparison], ...]) -> str:
    return ", ".join(str(n) for n, _, _ in columns)


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")
