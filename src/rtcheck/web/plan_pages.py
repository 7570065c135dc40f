"""The dashboard's plan pages: the list (filtered, sorted and paged in SQL), a plan with its
record and history, and its report made again from its files."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from rtcheck.errors import PoolBusyError, RtcheckError, WorkerLostError
from rtcheck.web import queries as Q
from rtcheck.web.dependencies import MAX_PAGE, Held, day, message, page

router = APIRouter(include_in_schema=False)

#: The list's columns: (sort key, or "" where it cannot be sorted by; heading).
COLUMNS = [
    ("patient_id", "Patient"),
    ("", "Plan"),
    ("protocol", "Protocol"),
    ("decision", "Decision"),
    ("", "Failed mandatory limits"),
    ("lesion_count", "Lesions"),
    ("checked_at", "Checked (UTC)"),
]


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/plans", status_code=303)


@router.get("/plans", response_class=HTMLResponse)
def plans_page(
    held: Held,
    decision: str = "",
    protocol: str = "",
    since: str = "",
    until: str = "",
    q: str = "",
    sort: str = "checked_at",
    desc: int = 1,
    page_number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    f = Q.PlanFilter(
        decision or None, protocol or None, day(since, "since"), day(until, "until"), q or None
    )
    key = sort if sort in Q.SORT_KEYS else "checked_at"
    found = Q.list_plans(held.engine, f, sort=key, descending=bool(desc), page=page_number)
    state = {
        "decision": decision,
        "protocol": protocol,
        "since": since,
        "until": until,
        "q": q,
        "sort": key,
        "desc": desc,
        "page": page_number,
    }

    def link(**changes: Any) -> str:
        merged = {k: v for k, v in {**state, **changes}.items() if v not in ("", None)}
        return "/plans?" + urlencode(merged)

    return page(
        held,
        "plans.html",
        "plans",
        title="Plans",
        page=found,
        f=f,
        sort=key,
        descending=bool(desc),
        decisions=Q.DECISIONS,
        protocols=Q.protocols(held.engine),
        columns=COLUMNS,
        link=link,
    )


# Before the plan page: a key may hold slashes, and "/report" ends this one.
@router.get("/plans/{key:path}/report", response_class=HTMLResponse)
async def report_page(key: str, held: Held) -> HTMLResponse:
    plan = await run_in_threadpool(Q.stored_plan, held.engine, key)
    if plan is None:
        return message(held, "No such plan", "No plan is stored under that key.", 404, "plans")
    from rtcheck.web.checking import report_again

    try:
        return HTMLResponse(await held.pool.run(report_again, plan))
    except (PoolBusyError, WorkerLostError) as exc:
        return message(held, "Report not available now", str(exc), 503, "plans")
    except RtcheckError as exc:
        return message(held, "Report not available", str(exc), 409, "plans")


@router.get("/plans/{key:path}", response_class=HTMLResponse)
def plan_page(key: str, held: Held) -> HTMLResponse:
    plan = Q.stored_plan(held.engine, key)
    if plan is None:
        return message(held, "No such plan", "No plan is stored under that key.", 404, "plans")
    return page(held, "plan.html", "plans", title=f"Plan {key}", plan=plan)
