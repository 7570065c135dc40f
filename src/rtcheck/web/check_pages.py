"""The dashboard's check page: a plan's files uploaded, checked in a worker process, and its
report shown. Nothing is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import HTMLResponse

from rtcheck.errors import PoolBusyError, RtcheckError, WorkerLostError
from rtcheck.web.dependencies import Held, bundled, checked, message, page

router = APIRouter(include_in_schema=False)


@router.get("/check", response_class=HTMLResponse)
def check_form(held: Held) -> HTMLResponse:
    return page(held, "check.html", "check", title="Check a plan", protocols=bundled())


@router.post("/check", response_class=HTMLResponse)
async def check_page(
    held: Held,
    files: Annotated[list[UploadFile], File()],
    protocol: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    try:
        return HTMLResponse(await checked(held, files, protocol, "report"))
    except (PoolBusyError, WorkerLostError) as exc:
        return message(held, "The plan could not be checked now", str(exc), 503, "check")
    except RtcheckError as exc:
        return message(held, "The plan could not be checked", str(exc), 400, "check")
