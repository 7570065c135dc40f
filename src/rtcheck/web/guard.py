"""What every request to the dashboard passes before it reaches a page: the Host header, the
origin of a state-changing request, and the size of its body; and the headers every answer
carries.

- **Host**: only the names the server is reached by (those it is bound to, and those given
  with ``--allowed-host``) are answered; any other is 400. A page on another site that
  rebinds its own name to 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
- **Origin**: a POST (or any method but GET, HEAD and OPTIONS) from a browser must come from
  the dashboard's own pages: ``Sec-Fetch-Site`` must be ``same-origin`` (or ``none``, typed by
  the user), else ``Origin`` must be the dashboard's own. Clients that are not browsers send
  neither, and cannot be made to send a user's cookie by another site.
- **Size**: a body declared larger than the limit is refused (413) before a byte of it is
  read; a body without a declared size (chunked) is counted as it arrives and cut off at the
  limit, so no more than the limit is ever read or written.
- **Headers**: a Content-Security-Policy that allows no script at all and no framing, no
  content sniffing, no referrer.

A pure ASGI middleware, so that the body is limited as it streams (before the form parser
spools it to disk).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Every page styles itself inline and draws its plots as inline SVG; none has a script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
#: Methods that change nothing, which a cross-site request may make.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The host names loopback is reached by.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class GuardSettings:
    """What the guard lets through.

    Attributes
    ----------
    allowed_hosts
        Host names (without port) a request may name in its Host header.
    max_body_bytes
        The largest body of a request to an upload path (bytes).
    upload_paths
        Paths whose requests carry uploads; every other request's body is limited to
        ``max_other_bytes``.
    max_other_bytes
        The largest body of any other request (bytes): a pasted protocol, a what-if.
    """

    allowed_hosts: frozenset[str]
    max_body_bytes: int
    upload_paths: frozenset[str] = frozenset({"/check", "/api/check"})
    max_other_bytes: int = 2 * 2**20

    @staticmethod
    def hosts_for(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
        """The host names a server bound to ``bound`` answers to: that address, the loopback
        names when it is a loopback address, and ``extra``."""
        names = {_bare(bound)}
        if names & set(LOOPBACK_NAMES):
            names |= set(LOOPBACK_NAMES)
        return frozenset(names | {_bare(h) for h in extra})


def _bare(host: str) -> str:
    """A host name as compared: lower case, without brackets around an IPv6 address."""
    return host.strip().lower().removeprefix("[").removesuffix("]")


def host_of(header: str) -> str:
    """The host name of a Host header value (its port removed)."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8080
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The ASGI middleware; see the module's description."""

    def __init__(self, app: App, settings: GuardSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        limit = (
            self.settings.max_body_bytes
            if scope["path"] in self.settings.upload_paths
            else self.settings.max_other_bytes
        )
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "the Content-Length header is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, _too_large(limit))
                return
        state = {"received": 0, "started": False, "cut": False}

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not state["cut"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["cut"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _answer(send, 413, _too_large(limit))
                    # The application sees the client gone, and reads no more.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["cut"]:
                return  # the 413 has been sent in its place
            if message["type"] == "http.response.start":
                state["started"] = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not state["cut"]:
                raise

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) for a request refused before it is read, or None."""
        host = host_of(headers.get("host", ""))
        if host not in self.settings.allowed_hosts:
            return 400, "this server does not answer to that host name (see --allowed-host)"
        if scope["method"] in SAFE_METHODS:
            return None
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:
            if fetch_site in ("same-origin", "none"):
                return None
            return 403, "a cross-site request may not change anything here"
        origin = headers.get("origin")
        if origin is None:
            return None  # not sent by a browser on another site's behalf
        parts = urlsplit(origin)
        if parts.hostname and parts.hostname.lower() in self.settings.allowed_hosts:
            own = headers.get("host", "").strip().lower()
            if parts.netloc.lower() == own:
                return None
        return 403, "a cross-site request may not change anything here"


def _too_large(limit: int) -> str:
    from rtcheck.web.uploads import size_text

    return f"the request is larger than {size_text(limit)}"


async def _answer(send: Send, status: int, reason: str) -> None:
    """A JSON answer ``{"detail": reason}`` with the security headers; the connection is
    closed after it (what is left of the body is not read)."""
    body = json.dumps({"detail": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
