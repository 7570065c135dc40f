"""The dashboard's what-if page: a protocol edited (pasted or uploaded) and judged over every
plan checked against it, from the stored evidence."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from rtcheck.errors import RtcheckError
from rtcheck.web import queries as Q
from rtcheck.web.dependencies import Held, page

router = APIRouter(include_in_schema=False)


@router.get("/whatif", response_class=HTMLResponse)
def whatif_form(held: Held, protocol: str = "") -> HTMLResponse:
    names = Q.protocols(held.engine)
    chosen = protocol if protocol in names else (names[-1] if names else "")
    text = Q.protocol_text(held.engine, chosen) if chosen else None
    note = None
    if chosen and not text:
        note = (
            "The protocol file these plans were checked against is no longer where it was, or "
            "has changed: upload it, or paste it here."
        )
    return page(
        held,
        "whatif.html",
        "whatif",
        title="What-if",
        protocols=names,
        protocol=chosen,
        text=text,
        error=note,
        result=None,
    )


@router.post("/whatif", response_class=HTMLResponse)
async def whatif_page(
    held: Held,
    protocol: Annotated[str, Form()],
    text: Annotated[str, Form()] = "",
    upload: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    from rtcheck.web.archive_whatif import MAX_PROTOCOL_BYTES, archive_what_if, load_edited

    names = Q.protocols(held.engine)
    if upload is not None and upload.filename:
        data = await upload.read(MAX_PROTOCOL_BYTES + 1)
        text = data.decode("utf-8", errors="replace")
    context: dict[str, Any] = {"protocols": names, "protocol": protocol, "text": text}
    if protocol not in names:
        error = "No plan was checked against that protocol."
        return page(
            held, "whatif.html", "whatif", 404, title="What-if", error=error, result=None, **context
        )
    try:
        edited = await run_in_threadpool(load_edited, text)
        result = await run_in_threadpool(archive_what_if, held.engine, protocol, edited)
    except RtcheckError as exc:
        return page(
            held,
            "whatif.html",
            "whatif",
            422,
            title="What-if",
            error=str(exc),
            result=None,
            **context,
        )
    return page(
        held, "whatif.html", "whatif", title="What-if", error=None, result=result, **context
    )
