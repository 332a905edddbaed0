"""The local API as a browser on the till may use it, and no other page may.

A POS application may be a web page on the terminal (served from its own
origin, say ``http://127.0.0.1:8080``). The browser enforces what a page may
read; this module tells it, and refuses what a hostile page could try:

- **Host** must name this till (the loopback names, ``[api] host`` and
  ``[api] hosts``): a page on another name that resolves to 127.0.0.1 (DNS
  rebinding) is answered ``421``, so it can neither read nor act.
- **Origin**: a request that carries one must come from ``[api]
  allowed_origins`` or from the gateway itself (the status page); any other is
  refused ``403`` before its handler runs, WebSockets included. An allowed
  origin gets CORS headers, and its preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) is answered ``204`` with the methods and
  headers the API takes. No cookies are used: the token travels in a header.
- **WebSocket tickets**: a browser cannot put ``Authorization`` on a
  WebSocket, so ``POST /v1/events/tickets`` (with the token) hands out a
  ticket good for one ``/v1/events?ticket=…`` connection within 30 seconds.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.api.problems import Handler, problem
from gateway.config import ApiConfig

TICKET_SECONDS = 30.0
MAX_TICKETS = 64  # outstanding at once; the oldest goes first
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"


class Tickets:
    """One-use tickets for a browser's WebSocket, short-lived and bounded in number."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, seconds: float = TICKET_SECONDS) -> None:
        self.clock = clock
        self.seconds = seconds
        self._issued: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        while len(self._issued) >= MAX_TICKETS:
            self._issued.popitem(last=False)
        ticket = secrets.token_urlsafe(24)
        self._issued[ticket] = self.clock() + self.seconds
        return ticket

    def redeem(self, ticket: str) -> bool:
        """True once per ticket, before it expires."""
        expires = self._issued.pop(ticket, None)
        return expires is not None and self.clock() <= expires


def host_names(api: ApiConfig) -> frozenset[str]:
    return LOOPBACK_NAMES | {api.host.strip("[]").lower()} | {h.lower() for h in api.hosts}


def browser_middleware(api: ApiConfig) -> Any:
    names = host_names(api)
    allowed = frozenset(o.rstrip("/") for o in api.allowed_origins)

    @web.middleware
    async def browser(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = (request.url.host or "").lower()
        if host not in names:
            return problem(421, "wrong-host", "Misdirected request", f"this till does not answer to {host!r}")
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser's cross-origin request: the token decides
            return await handler(request)
        own = origin in (f"http://{request.host}", f"https://{request.host}")
        if not own and origin not in allowed:
            return problem(403, "origin-refused", "Origin not allowed", f"{origin} is not in [api] allowed_origins")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if not response.prepared:  # a WebSocket is already under way: its upgrade answered
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return browser
