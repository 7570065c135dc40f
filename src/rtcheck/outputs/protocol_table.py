"""A protocol's limits as a reader sees them (``rtcheck protocols NAME``): one row per limit
with its columns by fractionation, and the sources as numbered notes; or as JSON for tools."""

from __future__ import annotations

import textwrap
from typing import Any

from rtcheck.protocol.definition import CumulativeLimit, Limit, Protocol

_GROUPS = {
    "oar": "whole plan",
    "lesion_coverage": "each lesion",
    "lesion_oar": "near a lesion",
    "cumulative": "sum with earlier courses",
}
#: Width of the "Applies to" column; the sites a limit applies to wrap within it.
_APPLIES_WIDTH = 26


def protocol_document(protocol: Protocol) -> dict[str, Any]:
    """The protocol as JSON: name, version, title, and every limit with its columns."""
    return {
        "protocol": protocol.name,
        "version": protocol.version,
        "title": protocol.title,
        "path": protocol.path,
        "sha256": protocol.sha256,
        "limits": [
            {
                "structure": limit.structure or None,
                "group": limit.group,
                "priority": limit.priority,
                "optional": limit.optional,
                "sites": list(limit.sites),
                "regime": limit.regime,
                "columns": [
                    {
                        "fractions": n or None,
                        "metric": metric.text,
                        "limit": None if limit.by_ptv_cc else str(comparison),
                        "acceptable": _tier(limit, n),
                    }
                    for n, metric, comparison in limit.by_fractions
                ],
                "by_ptv_cc": [
                    {"ptv_cc": v, "limit": str(c), "acceptable": _row_tier(limit, i)}
                    for i, (v, c) in enumerate(limit.by_ptv_cc)
                ],
                "outside_table": limit.outside_table if limit.by_ptv_cc else None,
                "source": limit.source,
                **_cumulative_fields(protocol, limit),
            }
            for limit in _limits(protocol)
        ],
    }


def _cumulative(protocol: Protocol, limit: Limit) -> CumulativeLimit:
    return next(c for c in protocol.reirradiation.limits if c.limit is limit)


def _cumulative_fields(protocol: Protocol, limit: Limit) -> dict[str, Any]:
    """A cumulative limit's α/β and recovery rule (months → %), for the JSON view."""
    if limit.group != "cumulative":
        return {}
    cumulative = _cumulative(protocol, limit)
    return {
        "alpha_beta_gy": cumulative.alpha_beta,
        "recovery": [{"months": m, "percent": p} for m, p in cumulative.recovery],
    }


def protocol_table(protocol: Protocol, width: int = 100) -> str:
    """The protocol's limits as a table within ``width`` columns: one line per published
    fractionation column, the sites a limit applies to wrapped, the sources as numbered
    notes."""
    sources: dict[str, int] = {}
    rows: list[list[str]] = []
    for limit in _limits(protocol):
        note = sources.setdefault(limit.source, len(sources) + 1)
        structure = (limit.structure or "lesion target") + (" (opt.)" if limit.optional else "")
        applies = _GROUPS[limit.group] + (f": {', '.join(limit.sites)}" if limit.sites else "")
        wrapped = textwrap.wrap(applies, _APPLIES_WIDTH) or [""]
        most = protocol.stereotactic_max_fractions
        regime_fx = {"stereotactic": f"<={most} fx", "conventional": f">{most} fx"}
        fx_all = regime_fx[limit.regime] if limit.regime else "any"
        if limit.group == "cumulative":
            fx_all = f"EQD2 a/b {_cumulative(protocol, limit).alpha_beta:g}"
        if limit.by_ptv_cc:
            metric = limit.by_fractions[0][1]
            rows.append(
                [
                    structure,
                    metric.text,
                    "by PTV cc:",
                    fx_all,
                    limit.priority,
                    wrapped[0],
                    f"[{note}]",
                ]
            )
            for i, (volume, comparison) in enumerate(limit.by_ptv_cc):
                tier = _row_tier(limit, i)
                shown = str(comparison) + (f" | {tier.split()[-1]}" if tier else "")
                rows.append(["", "", shown, f"{volume:g} cc", "", "", ""])
            continue
        for i, (n, metric, comparison) in enumerate(limit.by_fractions):
            first = i == 0
            tier = _tier(limit, n)
            rows.append(
                [
                    structure if first else "",
                    metric.text,
                    str(comparison) + (f" | {tier.split()[-1]}" if tier else ""),
                    f"{n} fx" if n else fx_all,
                    limit.priority if first else "",
                    wrapped[i] if i < len(wrapped) else "",
                    f"[{note}]" if first else "",
                ]
            )
        for extra in wrapped[len(limit.by_fractions) :]:
            rows.append(["", "", "", "", "", extra, ""])
    header = ["Structure", "Metric", "Limit", "Fx", "Priority", "Applies to", "Src"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    title = f"{protocol.name} {protocol.version}" + (
        f": {protocol.title}" if protocol.title else ""
    )
    lines = [*textwrap.wrap(title, width), ""]
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if any(limit.acceptable or limit.acceptable_by_ptv_cc for limit in _limits(protocol)):
        lines.append(
            "Limits 'a | b': a per protocol, b the acceptable variation (minor deviation)."
        )
    lines.append("")
    for source, n in sources.items():
        lines += textwrap.wrap(source, width, initial_indent=f"[{n}] ", subsequent_indent="    ")
    return "\n".join(lines) + "\n"


def _tier(limit: Limit, fractions: int) -> str | None:
    return next((str(c) for n, c in limit.acceptable if n == fractions), None)


def _row_tier(limit: Limit, row: int) -> str | None:
    tiers = limit.acceptable_by_ptv_cc
    return str(tiers[row][1]) if tiers else None


def _limits(protocol: Protocol) -> list[Limit]:
    cumulative = [c.limit for c in protocol.reirradiation.limits]
    return [
        *protocol.oar_limits,
        *protocol.lesion_coverage,
        *protocol.lesion_oar_limits,
        *cumulative,
    ]
