"""Criterion 19 from the limit results: ``excluded`` when a mandatory limit fails (a major
deviation of a tiered limit); otherwise ``indeterminate`` when a mandatory limit could not be
evaluated (an absent optional structure aside); otherwise ``not_excluded``. Optimal limits that
fail, and minor deviations of any limit, are minor deviations."""

from __future__ import annotations

from collections.abc import Sequence

from rtcheck.evaluation.results import BROKEN, Decision, Eligibility, Grade, LimitResult


def decide(results: Sequence[LimitResult]) -> Decision:
    """Criterion 19 from the limit results."""
    failed = [r for r in results if r.result in BROKEN and r.priority == "mandatory"]
    unknown = [
        r
        for r in results
        if r.result == Grade.NOT_EVALUATED and r.priority == "mandatory" and not r.absent_optional
    ]
    minor = [
        r
        for r in results
        if r.result == Grade.MINOR_DEVIATION or (r.result in BROKEN and r.priority == "optimal")
    ]
    if failed:
        return Decision(
            Eligibility.EXCLUDED, tuple(_describe(r) for r in failed), tuple(map(_describe, minor))
        )
    if unknown:
        return Decision(
            Eligibility.INDETERMINATE,
            tuple(_describe(r) for r in unknown),
            tuple(map(_describe, minor)),
        )
    return Decision(
        Eligibility.NOT_EXCLUDED,
        ("every mandatory limit passes",),
        tuple(_describe(r) for r in minor),
    )


def _describe(r: LimitResult) -> str:
    who = f"{r.structure}" + (f" (lesion {r.lesion})" if r.lesion else "")
    if r.result == Grade.NOT_EVALUATED:
        stated = f" {r.limit}" if r.limit else ""
        return f"{who} {r.metric}{stated}: not evaluated: {r.reason}"
    assert r.value is not None
    tier = f", acceptable {r.acceptable}: {r.result.replace('_', ' ')}" if r.acceptable else ""
    return f"{who} {r.metric} = {r.value:.2f}, limit {r.limit}{tier} ({r.priority})"
