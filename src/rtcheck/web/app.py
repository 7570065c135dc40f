"""The dashboard's pages and the REST API (FastAPI, Jinja2 templates rendered on the server,
plots as inline SVG: nothing is loaded from another site).

Every page and API route reads the results database through :mod:`rtcheck.web.queries`. When
a token is set, every request must carry it: ``Authorization: Bearer TOKEN``, or the cookie
that ``?token=TOKEN`` sets once for a browser.
"""

from __future__ import annotations

import hmac
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from rtcheck import __version__
from rtcheck.archive.store import open_store
from rtcheck.errors import PoolBusyError, RtcheckError, WorkerLostError
from rtcheck.outputs.html_report import CSS
from rtcheck.web import queries as Q
from rtcheck.web.guard import Guard, GuardSettings
from rtcheck.web.pool import CheckPool
from rtcheck.web.uploads import UploadLimits

_COOKIE = "rtcheck_token"
#: The most pages a listing may be asked for, and the most plans on one page.
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class ServeSettings:
    """How the dashboard serves (see ``rtcheck serve --help``)."""

    db_url: str
    token: str | None = None
    upload: UploadLimits = UploadLimits()
    protocol: str | None = None
    allowed_hosts: frozenset[str] = GuardSettings.hosts_for("127.0.0.1")
    check_workers: int = 1
    check_queue: int = 4


class _TokenGate(BaseHTTPMiddleware):
    """Refuses a request without the token (401), in constant time."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token.encode()

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._matches(bearer) or self._matches(request.cookies.get(_COOKIE)):
            return await call_next(request)
        offered = request.query_params.get("token")
        if self._matches(offered) and request.method == "GET":
            # A browser brings the token once; the cookie carries it from then on, and the
            # address bar loses it.
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            # A path of "//host" would send the browser to another site.
            path = "/" + request.url.path.lstrip("/")
            target = path + ("?" + urlencode(kept) if kept else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(_COOKIE, offered or "", httponly=True, samesite="strict")
            return response
        return JSONResponse({"detail": "a token is needed (rtcheck serve --token-file)"}, 401)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _day(value: str | None, name: str) -> str | None:
    """An ISO date (or date and time) filter as given, or None; 422 for anything else."""
    if not value:
        return None
    try:
        if len(value) == 10:
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: {value[:40]!r} is not a date (YYYY-MM-DD)") from None
    return value


def create_app(settings: ServeSettings) -> FastAPI:
    """The application over ``settings.db_url``."""
    engine: Engine = open_store(settings.db_url)
    pool = CheckPool(settings.check_workers, settings.check_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(pool.shutdown)

    templates = Environment(
        loader=PackageLoader("rtcheck.web", "templates"), autoescape=select_autoescape(["html"])
    )
    app = FastAPI(
        title="rtcheck", version=__version__, docs_url=None, redoc_url=None,
        description="Plans checked against a trial's dose limits (exclusion criterion 19): "
        "list and filter them, read a record, check a plan, run a protocol what-if.",
        lifespan=lifespan,
    )  # fmt: skip
    if settings.token:
        app.add_middleware(_TokenGate, token=settings.token)
    # Outermost (added last): nothing is read before the host, origin and size are checked.
    # An upload's multipart framing adds a little to the files' own bytes.
    guard = GuardSettings(settings.allowed_hosts, settings.upload.max_bytes + 2**20)
    app.add_middleware(Guard, settings=guard)

    def page(name: str, section: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(
            css=CSS, version=__version__, section=section, shown=Q.shown_decision,
            number=_number, **context,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def message(title: str, text: str, status: int, section: str = "") -> HTMLResponse:
        return page("message.html", section, status, title=title, message=text, error=True)

    async def checked(files: list[UploadFile], protocol: str | None, answer: str) -> str:
        """An uploaded plan checked in a worker process: its record (JSON) or report."""
        from rtcheck.web.checking import check_unpacked
        from rtcheck.web.uploads import unpack

        uploads = await _read(files, settings.upload)
        folder = tempfile.TemporaryDirectory(prefix="rtcheck-upload-")
        try:
            names = await run_in_threadpool(unpack, uploads, Path(folder.name), settings.upload)
            return await pool.run(
                check_unpacked, folder.name, names, protocol or settings.protocol, answer
            )
        finally:
            await run_in_threadpool(folder.cleanup)

    def busy(exc: PoolBusyError | WorkerLostError) -> HTTPException:
        return HTTPException(503, str(exc), headers={"Retry-After": "10"})

    # Pages ------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/plans", status_code=303)

    @app.get("/plans", response_class=HTMLResponse, include_in_schema=False)
    def plans_page(
        decision: str = "", protocol: str = "", since: str = "", until: str = "", q: str = "",
        sort: str = "checked_at", desc: int = 1,
        page_number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    ) -> HTMLResponse:  # fmt: skip
        f = Q.PlanFilter(
            decision or None, protocol or None, _day(since, "since"), _day(until, "until"),
            q or None,
        )  # fmt: skip
        key = sort if sort in Q.SORT_KEYS else "checked_at"
        found = Q.list_plans(engine, f, key, bool(desc), page_number)
        state = {"decision": decision, "protocol": protocol, "since": since, "until": until,
                 "q": q, "sort": key, "desc": desc, "page": page_number}  # fmt: skip

        def link(**changes: Any) -> str:
            merged = {k: v for k, v in {**state, **changes}.items() if v not in ("", None)}
            return "/plans?" + urlencode(merged)

        columns = [("patient_id", "Patient"), ("", "Plan"), ("protocol", "Protocol"),
                   ("decision", "Decision"), ("", "Failed mandatory limits"),
                   ("lesion_count", "Lesions"), ("checked_at", "Checked (UTC)")]  # fmt: skip
        return page(
            "plans.html", "plans", title="Plans", page=found, f=f, sort=key,
            descending=bool(desc), decisions=Q.DECISIONS, protocols=Q.protocols(engine),
            columns=columns, link=link,
        )  # fmt: skip

    @app.get("/plans/{key:path}/report", response_class=HTMLResponse, include_in_schema=False)
    async def report_page(key: str) -> HTMLResponse:
        plan = await run_in_threadpool(Q.stored_plan, engine, key)
        if plan is None:
            return message("No such plan", "No plan is stored under that key.", 404, "plans")
        from rtcheck.web.checking import report_again

        try:
            return HTMLResponse(await pool.run(report_again, plan))
        except (PoolBusyError, WorkerLostError) as exc:
            return message("Report not available now", str(exc), 503, "plans")
        except RtcheckError as exc:
            return message("Report not available", str(exc), 409, "plans")

    @app.get("/plans/{key:path}", response_class=HTMLResponse, include_in_schema=False)
    def plan_page(key: str) -> HTMLResponse:
        plan = Q.stored_plan(engine, key)
        if plan is None:
            return message("No such plan", "No plan is stored under that key.", 404, "plans")
        return page("plan.html", "plans", title=f"Plan {key}", plan=plan)

    @app.get("/limits", response_class=HTMLResponse, include_in_schema=False)
    def limits_page(protocol: str = "") -> HTMLResponse:
        names = Q.protocols(engine)
        chosen = protocol if protocol in names else (names[-1] if names else "")

        def query(k: Q.LimitKey) -> str:
            return urlencode({"protocol": chosen, "structure": k.structure, "metric": k.metric})

        keys = Q.limit_keys(engine, chosen) if chosen else []
        return page("limits.html", "limits", title="Limits", protocols=names, protocol=chosen,
                    keys=keys, query=query)  # fmt: skip

    @app.get("/limits/detail", response_class=HTMLResponse, include_in_schema=False)
    def limit_page(protocol: str, structure: str, metric: str) -> HTMLResponse:
        from rtcheck.web.plots import distribution_svg, failure_rate_svg

        values = Q.limit_values(engine, protocol, structure, metric)
        if not values.rows:
            return message("No such limit", "No plan of that protocol has that limit.", 404)
        limits = [str(r["limit"]) for r in values.rows]
        return page(
            "limit.html", "limits", title=f"{structure} {metric}", protocol=protocol,
            structure=structure, metric=metric, values=values,
            distribution=distribution_svg(values.values, limits, f"{structure} {metric}"),
            failure_rate=failure_rate_svg(values.failure_rate_by_month()),
        )  # fmt: skip

    @app.get("/whatif", response_class=HTMLResponse, include_in_schema=False)
    def whatif_form(protocol: str = "") -> HTMLResponse:
        names = Q.protocols(engine)
        chosen = protocol if protocol in names else (names[-1] if names else "")
        text = Q.protocol_text(engine, chosen) if chosen else None
        note = None if text or not chosen else (
            "The protocol file these plans were checked against is no longer where it was, or "
            "has changed: upload it, or paste it here."
        )  # fmt: skip
        return page("whatif.html", "whatif", title="What-if", protocols=names, protocol=chosen,
                    text=text, error=note, result=None)  # fmt: skip

    @app.post("/whatif", response_class=HTMLResponse, include_in_schema=False)
    async def whatif_page(
        protocol: Annotated[str, Form()],
        text: Annotated[str, Form()] = "",
        upload: Annotated[UploadFile | None, File()] = None,
    ) -> HTMLResponse:
        from rtcheck.web.archive_whatif import MAX_PROTOCOL_BYTES, archive_what_if, load_edited

        names = Q.protocols(engine)
        if upload is not None and upload.filename:
            data = await upload.read(MAX_PROTOCOL_BYTES + 1)
            text = data.decode("utf-8", errors="replace")
        context: dict[str, Any] = {"protocols": names, "protocol": protocol, "text": text}
        if protocol not in names:
            return page("whatif.html", "whatif", 404, title="What-if", error="No plan was "
                        "checked against that protocol.", result=None, **context)  # fmt: skip
        try:
            edited = await run_in_threadpool(load_edited, text)
            result = await run_in_threadpool(archive_what_if, engine, protocol, edited)
        except RtcheckError as exc:
            return page("whatif.html", "whatif", 422, title="What-if", error=str(exc),
                        result=None, **context)  # fmt: skip
        return page("whatif.html", "whatif", title="What-if", error=None, result=result,
                    **context)  # fmt: skip

    # API --------------------------------------------------------------------------------------

    @app.get("/api/plans", tags=["plans"])
    def api_plans(
        decision: str | None = None, protocol: str | None = None, since: str | None = None,
        until: str | None = None, q: str | None = None, sort: Q.SortKey = "checked_at",
        desc: bool = True, page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> dict[str, Any]:  # fmt: skip
        """Stored plans matching the filters, one page of them."""
        f = Q.PlanFilter(decision, protocol, _day(since, "since"), _day(until, "until"), q)
        found = Q.list_plans(engine, f, sort, desc, page, size)
        plans = [{k: v for k, v in r.items() if k != "id"} for r in found.rows]
        return {"total": found.total, "page": found.page, "size": found.size, "plans": plans}

    @app.get("/api/plans/{key:path}/record", tags=["plans"])
    def api_record(key: str) -> JSONResponse:
        """A plan's eligibility record (404 for an unknown plan or one whose check failed)."""
        plan = Q.stored_plan(engine, key)
        if plan is None or plan.record is None:
            raise HTTPException(404, "no eligibility record stored for that plan")
        return JSONResponse(plan.record)

    @app.get("/api/plans/{key:path}", tags=["plans"])
    def api_plan(key: str) -> dict[str, Any]:
        """A stored plan: its row, its error if its check failed, and its history."""
        plan = Q.stored_plan(engine, key)
        if plan is None:
            raise HTTPException(404, "no plan stored under that key")
        row = {k: v for k, v in plan.row.items() if k not in ("id", "files")}
        return {"plan": row, "error": plan.error, "history": list(plan.history)}

    @app.post("/api/check", tags=["check"])
    async def api_check(
        files: Annotated[list[UploadFile], File(description="a plan's DICOM files or a zip")],
        protocol: Annotated[str | None, Form()] = None,
    ) -> Response:
        """Check an uploaded plan; its eligibility record. Nothing is stored."""
        try:
            record = await checked(files, protocol, "record")
        except (PoolBusyError, WorkerLostError) as exc:
            raise busy(exc) from None
        except RtcheckError as exc:
            raise HTTPException(400, str(exc)) from None
        return Response(record, media_type="application/json")

    @app.post("/api/whatif", tags=["what-if"])
    def api_whatif(request: WhatIfRequest) -> dict[str, Any]:
        """Judge every plan checked against ``protocol`` ("name version") again against the
        edited protocol ``yaml``, from stored values and DVHs; the plans whose decision
        changes, and why, and those that need a new check."""
        from rtcheck.web.archive_whatif import archive_what_if, load_edited

        if request.protocol not in Q.protocols(engine):
            raise HTTPException(404, "no plan was checked against that protocol")
        try:
            result = archive_what_if(engine, request.protocol, load_edited(request.yaml))
        except RtcheckError as exc:
            raise HTTPException(422, str(exc)) from None

        def plan(p: Any) -> dict[str, Any]:
            changes = [asdict(c) for c in p.outcome.changes]
            return {"plan_key": p.plan_key, "patient_id": p.patient_id,
                    "before": p.outcome.before, "after": p.outcome.after, "changes": changes,
                    "needs_check": p.outcome.needs_check}  # fmt: skip

        return {
            "protocol": result.protocol, "edited": result.edited, "judged": result.judged,
            "seconds": round(result.seconds, 3),
            "changed": [plan(p) for p in result.changed],
            "needs_check": [plan(p) for p in result.needs_check],
        }  # fmt: skip

    @app.get("/check", response_class=HTMLResponse, include_in_schema=False)
    def check_form() -> HTMLResponse:
        return page("check.html", "check", title="Check a plan", protocols=_bundled())

    @app.post("/check", response_class=HTMLResponse, include_in_schema=False)
    async def check_page(
        files: Annotated[list[UploadFile], File()],
        protocol: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        try:
            return HTMLResponse(await checked(files, protocol, "report"))
        except (PoolBusyError, WorkerLostError) as exc:
            return message("The plan could not be checked now", str(exc), 503, "check")
        except RtcheckError as exc:
            return message("The plan could not be checked", str(exc), 400, "check")

    app.state.engine = engine
    app.state.pool = pool
    return app


class WhatIfRequest(BaseModel):
    """A what-if: the protocol plans were checked against, and the edited protocol's text."""

    protocol: str
    yaml: str


def _bundled() -> list[str]:
    from rtcheck.protocol.definition import bundled_protocols

    return [p.stem for p in bundled_protocols()]


async def _read(files: list[UploadFile], limits: UploadLimits) -> list[tuple[str, bytes]]:
    """The uploaded files' names and bytes, refusing more than the limits as they arrive."""
    from rtcheck.errors import UploadError
    from rtcheck.web.uploads import size_text

    read: list[tuple[str, bytes]] = []
    total = 0
    for upload in files:
        data = await upload.read(limits.max_bytes - total + 1)
        total += len(data)
        if total > limits.max_bytes:
            raise UploadError(f"the upload is larger than {size_text(limits.max_bytes)}")
        read.append((upload.filename or "upload", data))
    return read
