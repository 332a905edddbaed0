"""The staff route for tills: the mall's staff list, signed (``ledger/staff.py``, ``protocols/staff.py``)."""

from __future__ import annotations

from aiohttp import web

from ledger import staff
from ledger.http import SERVICE
from protocols.staff import sign_staff


async def serve(request: web.Request) -> web.Response:
    """``GET /v1/staff``: the staff list, signed with the issuer key (the answer is bound to the request too)."""
    svc = request.app[SERVICE]
    return web.json_response(sign_staff(await svc.store.db.read(staff.listing), svc.issuer))
