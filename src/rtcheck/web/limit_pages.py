"""The dashboard's limit pages: every limit of a protocol across the archive, and one limit's
distribution of values and failure rate by month."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from rtcheck.web import queries as Q
from rtcheck.web.dependencies import Held, message, page

router = APIRouter(include_in_schema=False)


@router.get("/limits", response_class=HTMLResponse)
def limits_page(held: Held, protocol: str = "") -> HTMLResponse:
    names = Q.protocols(held.engine)
    chosen = protocol if protocol in names else (names[-1] if names else "")

    def query(k: Q.LimitKey) -> str:
        return urlencode({"protocol": chosen, "structure": k.structure, "metric": k.metric})

    keys = Q.limit_keys(held.engine, chosen) if chosen else []
    return page(
        held,
        "limits.html",
        "limits",
        title="Limits",
        protocols=names,
        protocol=chosen,
        keys=keys,
        query=query,
    )


@router.get("/limits/detail", response_class=HTMLResponse)
def limit_page(held: Held, protocol: str, structure: str, metric: str) -> HTMLResponse:
    from rtcheck.web.plots import distribution_svg, failure_rate_svg

    values = Q.limit_values(held.engine, protocol, structure, metric)
    if not values.rows:
        return message(held, "No such limit", "No plan of that protocol has that limit.", 404)
    limits = [str(r["limit"]) for r in values.rows]
    return page(
        held,
        "limit.html",
        "limits",
        title=f"{structure} {metric}",
        protocol=protocol,
        structure=structure,
        metric=metric,
        values=values,
        distribution=distribution_svg(values.values, limits, f"{structure} {metric}"),
        failure_rate=failure_rate_svg(values.failure_rate_by_month()),
    )
