"""The REST API, JSON only, described at ``/openapi.json``: stored plans and their records, a
plan checked from its uploaded files, and a protocol what-if over the archive."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from rtcheck.errors import PoolBusyError, RtcheckError, WorkerLostError
from rtcheck.web import queries as Q
from rtcheck.web.dependencies import MAX_PAGE, MAX_PAGE_SIZE, Held, busy, checked, day

router = APIRouter(prefix="/api")


class WhatIfRequest(BaseModel):
    """A what-if: the protocol plans were checked against, and the edited protocol's text."""

    protocol: str
    yaml: str


@router.get("/plans", tags=["plans"])
def api_plans(
    held: Held,
    decision: str | None = None,
    protocol: str | None = None,
    since: str | None = None,
    until: str | None = None,
    q: str | None = None,
    sort: Q.SortKey = "checked_at",
    desc: bool = True,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> dict[str, Any]:
    """Stored plans matching the filters, one page of them."""
    f = Q.PlanFilter(decision, protocol, day(since, "since"), day(until, "until"), q)
    found = Q.list_plans(held.engine, f, sort=sort, descending=desc, page=page, size=size)
    plans = [{k: v for k, v in r.items() if k != "id"} for r in found.rows]
    return {"total": found.total, "page": found.page, "size": found.size, "plans": plans}


@router.get("/plans/{key:path}/record", tags=["plans"])
def api_record(key: str, held: Held) -> JSONResponse:
    """A plan's eligibility record (404 for an unknown plan or one whose check failed)."""
    plan = Q.stored_plan(held.engine, key)
    if plan is None or plan.record is None:
        raise HTTPException(404, "no eligibility record stored for that plan")
    return JSONResponse(plan.record)


@router.get("/plans/{key:path}", tags=["plans"])
def api_plan(key: str, held: Held) -> dict[str, Any]:
    """A stored plan: its row, its error if its check failed, and its history."""
    plan = Q.stored_plan(held.engine, key)
    if plan is None:
        raise HTTPException(404, "no plan stored under that key")
    row = {k: v for k, v in plan.row.items() if k not in ("id", "files")}
    return {"plan": row, "error": plan.error, "history": list(plan.history)}


@router.post("/check", tags=["check"])
async def api_check(
    held: Held,
    files: Annotated[list[UploadFile], File(description="a plan's DICOM files or a zip")],
    protocol: Annotated[str | None, Form()] = None,
) -> Response:
    """Check an uploaded plan; its eligibility record. Nothing is stored."""
    try:
        record = await checked(held, files, protocol, "record")
    except (PoolBusyError, WorkerLostError) as exc:
        raise busy(exc) from None
    except RtcheckError as exc:
        raise HTTPException(400, str(exc)) from None
    return Response(record, media_type="application/json")


@router.post("/whatif", tags=["what-if"])
def api_whatif(request: WhatIfRequest, held: Held) -> dict[str, Any]:
    """Judge every plan checked against ``protocol`` ("name version") again against the
    edited protocol ``yaml``, from stored values and DVHs; the plans whose decision changes,
    and why, and those that need a new check."""
    from rtcheck.web.archive_whatif import archive_what_if, load_edited

    if request.protocol not in Q.protocols(held.engine):
        raise HTTPException(404, "no plan was checked against that protocol")
    try:
        result = archive_what_if(held.engine, request.protocol, load_edited(request.yaml))
    except RtcheckError as exc:
        raise HTTPException(422, str(exc)) from None

    def plan(p: Any) -> dict[str, Any]:
        changes = [asdict(c) for c in p.outcome.changes]
        return {
            "plan_key": p.plan_key,
            "patient_id": p.patient_id,
            "before": p.outcome.before,
            "after": p.outcome.after,
            "changes": changes,
            "needs_check": p.outcome.needs_check,
        }

    return {
        "protocol": result.protocol,
        "edited": result.edited,
        "judged": result.judged,
        "seconds": round(result.seconds, 3),
        "changed": [plan(p) for p in result.changed],
        "needs_check": [plan(p) for p in result.needs_check],
    }
