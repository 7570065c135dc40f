"""What every route of the dashboard depends on, as FastAPI dependencies: the services the
application holds (the results database, the check workers, the templates, its settings), the
token when one is set, rendered pages, and the checks of uploaded plans."""

from __future__ import annotations

import hmac
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from rtcheck import __version__
from rtcheck.errors import PoolBusyError, UploadError, WorkerLostError
from rtcheck.outputs.html_report import CSS
from rtcheck.web import queries as Q
from rtcheck.web.guard import GuardSettings
from rtcheck.web.pool import CheckPool
from rtcheck.web.uploads import UploadLimits

#: The cookie that carries the token in a browser, once ``?token=`` has brought it.
TOKEN_COOKIE = "rtcheck_token"
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


@dataclass(frozen=True)
class Services:
    """What the application holds for its routes (``app.state.services``)."""

    settings: ServeSettings
    engine: Engine
    pool: CheckPool
    templates: Environment


def services(request: Request) -> Services:
    """The application's services (a dependency)."""
    held: Services = request.app.state.services
    return held


Held = Annotated[Services, Depends(services)]


def _matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def require_token(request: Request, held: Held) -> None:
    """Refuse a request without the token (401), compared in constant time; a browser's
    ``GET ...?token=`` is sent on without it, with the token in an HttpOnly, SameSite=Strict
    cookie (so the address bar loses it)."""
    token = held.settings.token
    if not token:
        return
    header = request.headers.get("authorization", "")
    bearer = header[7:] if header.lower().startswith("bearer ") else None
    if _matches(bearer, token) or _matches(request.cookies.get(TOKEN_COOKIE), token):
        return
    offered = request.query_params.get("token")
    if _matches(offered, token) and request.method == "GET":
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        # A path of "//host" would send the browser to another site.
        path = "/" + request.url.path.lstrip("/")
        target = path + ("?" + urlencode(kept) if kept else "")
        # Starlette writes the cookie header as it writes any (quoting included).
        written = Response()
        written.set_cookie(TOKEN_COOKIE, offered or "", httponly=True, samesite="strict")
        cookie = written.headers["set-cookie"]
        raise HTTPException(303, headers={"Location": target, "Set-Cookie": cookie})
    raise HTTPException(401, "a token is needed (rtcheck serve --token-file)")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def page(
    held: Services, name: str, section: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page rendered from its template (every value escaped by Jinja2's autoescape)."""
    html = held.templates.get_template(name).render(
        css=CSS,
        version=__version__,
        section=section,
        shown=Q.shown_decision,
        number=_number,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def message(held: Services, title: str, text: str, status: int, section: str = "") -> HTMLResponse:
    """A page that says one thing went wrong, with the status it goes with."""
    return page(held, "message.html", section, status, title=title, message=text, error=True)


def day(value: str | None, name: str) -> str | None:
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


def busy(exc: PoolBusyError | WorkerLostError) -> HTTPException:
    """503, to try again in a moment."""
    return HTTPException(503, str(exc), headers={"Retry-After": "10"})


def bundled() -> list[str]:
    """The names of the bundled protocols, which an upload may be checked against."""
    from rtcheck.protocol.definition import bundled_protocols

    return [p.stem for p in bundled_protocols()]


async def checked(
    held: Services, files: list[UploadFile], protocol: str | None, answer: str
) -> str:
    """An uploaded plan checked in a worker process: its record (JSON) or report (HTML). The
    files are unpacked in a temporary folder, removed afterwards."""
    from rtcheck.web.checking import check_unpacked
    from rtcheck.web.uploads import unpack

    limits = held.settings.upload
    uploads = await _read(files, limits)
    folder = tempfile.TemporaryDirectory(prefix="rtcheck-upload-")
    try:
        names = await run_in_threadpool(unpack, uploads, Path(folder.name), limits)
        chosen = protocol or held.settings.protocol
        return await held.pool.run(check_unpacked, folder.name, names, chosen, answer)
    finally:
        await run_in_threadpool(folder.cleanup)


async def _read(files: list[UploadFile], limits: UploadLimits) -> list[tuple[str, bytes]]:
    """The uploaded files' names and bytes, refusing more than the limits as they arrive."""
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
