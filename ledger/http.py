"""What every route of the ledger's API shares: its service, the caller, problem documents, reading requests.

Kept apart from the routes (``ledger/app.py`` and its desks: ``ledger/sync_desk.py``, ``ledger/hold_desk.py``,
``ledger/member_desk.py`` …) so that a room of routes imports
these and not the app that gathers them.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from ledger.auth import AuthError, Principal
from ledger.service import LedgerService
from protocols.errors import SchemaError
from protocols.records import ID_PATTERN
from protocols.schema import Fields, Problems
from protocols.untrusted_json import UntrustedJsonError, read_json

SERVICE = web.AppKey("ledger", LedgerService)
MAX_BATCH_BYTES = 8 * 1024 * 1024


def problem(status: int, code: str, detail: str, **extra: object) -> web.Response:
    body = {"type": f"urn:posgw:problem:{code}", "title": code, "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


PRINCIPAL = web.RequestKey("principal", Principal)


def me(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def own(request: web.Request, terminal_id: str, what: str) -> None:
    """A terminal acts only for itself (an operator, where a route admits one, for any)."""
    if me(request).kind == "operator":
        return
    if me(request).name != terminal_id:
        raise AuthError(403, "not-your-terminal", f"terminal {me(request).name} may not {what} for {terminal_id}")


def param(request: web.Request, name: str) -> str:
    """A path parameter that must be an id (``A-Za-z0-9_.:-``, 1-64): anything else is a 422, not a lookup."""
    value = request.match_info[name]
    if not re.fullmatch(ID_PATTERN, value):
        raise SchemaError(f"path {name}", [f"{name}: {value[:32]!r} is not an id ({ID_PATTERN})"])
    return value


async def body_of(request: web.Request) -> object:
    """The request's JSON body, through the one reader of untrusted JSON; refused: a 400 the guard reports."""
    try:
        return read_json(await request.read(), "request body", max_bytes=MAX_BATCH_BYTES)
    except UntrustedJsonError as err:
        raise web.HTTPBadRequest(text=str(err)) from err


async def one_field(request: web.Request, what: str, name: str, pattern: str) -> str:
    """Read ``{"<name>": "..."}``; a bad body raises the problem the guard turns into 400/422."""
    problems = Problems(what)
    value = Fields(await body_of(request), problems).text(name, pattern=pattern)
    problems.raise_if_any()
    return value
