"""The dashboard's application (FastAPI, Jinja2 templates rendered on the server, plots as
inline SVG: nothing is loaded from another site).

Its routes are in routers by area (:mod:`~rtcheck.web.plan_pages`,
:mod:`~rtcheck.web.limit_pages`, :mod:`~rtcheck.web.whatif_pages`,
:mod:`~rtcheck.web.check_pages`, :mod:`~rtcheck.web.api`), each taking what it needs as
dependencies (:mod:`~rtcheck.web.dependencies`): the services held here, and the token,
required of every route when one is set (``Authorization: Bearer TOKEN``, or the cookie that
``?token=TOKEN`` sets once for a browser). Every page and API route reads the results database
through :mod:`rtcheck.web.queries`. Outermost, :mod:`rtcheck.web.guard` checks the host, the
origin and the size of every request before anything reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from rtcheck import __version__
from rtcheck.archive.store import open_store
from rtcheck.web import api, check_pages, limit_pages, plan_pages, whatif_pages
from rtcheck.web.dependencies import ServeSettings, Services, require_token
from rtcheck.web.guard import Guard, GuardSettings
from rtcheck.web.pool import CheckPool

__all__ = ["ServeSettings", "create_app"]

#: The routers, by area.
ROUTERS = (
    plan_pages.router,
    limit_pages.router,
    whatif_pages.router,
    check_pages.router,
    api.router,
)


def create_app(settings: ServeSettings) -> FastAPI:
    """The application over ``settings.db_url``."""
    templates = Environment(
        loader=PackageLoader("rtcheck.web", "templates"), autoescape=select_autoescape(["html"])
    )
    held = Services(
        settings=settings,
        engine=open_store(settings.db_url),
        pool=CheckPool(settings.check_workers, settings.check_queue),
        templates=templates,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(held.pool.shutdown)

    app = FastAPI(
        title="rtcheck",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like every route
        description="Plans checked against a trial's dose limits (exclusion criterion 19): "
        "list and filter them, read a record, check a plan, run a protocol what-if.",
        lifespan=lifespan,
        dependencies=[Depends(require_token)],
    )
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # Nothing is read before the host, origin and size are checked. An upload's multipart
    # framing adds a little to the files' own bytes.
    guard = GuardSettings(settings.allowed_hosts, settings.upload.max_bytes + 2**20)
    app.add_middleware(Guard, settings=guard)
    app.state.services = held
    return app
