"""A hostile network between a till and its ledger: relays, or answers in the ledger's place.

Used by the tests and ``make chaos`` to play what a till must survive on the
path to the ledger (a compromised switch, a captive proxy, a plain-HTTP
link): the ledger answering garbage, hanging, an attacker faking
``accepted`` to sync batches or injecting another member into an identifier
look-up. ``mode`` may be changed while it runs.

- ``relay``: every request goes to the ledger, byte for byte, and its answer back.
- ``garbage``: every answer is ``200`` with a body that is not the protocol.
- ``hang``: no answer at all (the till's timeout must end the wait).
- ``fake-accept``: sync batches are answered "accepted" without reaching the ledger.
- ``forge-lookup``: identifier look-ups are answered with ``forged_member``.
- ``replay``: every answer is the last answer the ledger signed, whatever was asked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

MODES = ("relay", "garbage", "hang", "fake-accept", "forge-lookup", "replay")
_HOP = {"host", "content-length", "transfer-encoding", "connection"}
_KEPT = ("Content-Type", "Content-Digest", "Signature-Input", "Signature", "Retry-After", "WWW-Authenticate")


@dataclass
class LedgerProxy:
    ledger_url: str
    mode: str = "relay"
    forged_member: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    faked: int = 0  # answers given in the ledger's place
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    _last: tuple[int, bytes, dict[str, str]] | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])  # the one the OS chose, when 0 was asked
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        self._closing.set()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.mode == "hang":  # until the proxy stops: the till's own timeout must end its wait
            await self._closing.wait()
            return web.Response(status=503)
        if self.mode == "garbage":
            self.faked += 1
            return web.Response(status=200, body=b"<html>captive portal</html>", content_type="text/html")
        if self.mode == "fake-accept" and request.path == "/v1/sync/batch":
            self.faked += 1
            records = json.loads(body).get("records", [])
            results = [{"txn_id": r["txn_id"], "seq": r["seq"], "status": "accepted", "reason": None} for r in records]
            high = max((r["seq"] for r in records), default=0)
            return web.json_response({"results": results, "high_seq": high, "gaps": []})
        if self.mode == "forge-lookup" and request.path.startswith("/v1/identifiers/"):
            self.faked += 1
            return web.json_response(self.forged_member)
        if self.mode == "replay" and self._last is not None:
            self.faked += 1
            status, answer, headers = self._last
            return web.Response(status=status, body=answer, headers=headers)
        return await self._relay(request, body)

    async def _relay(self, request: web.Request, body: bytes) -> web.Response:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._http.request(
            request.method, self.ledger_url + request.path_qs, data=body or None, headers=headers
        ) as resp:
            answer = await resp.read()
            kept = {k: resp.headers[k] for k in _KEPT if k in resp.headers}
            self._last = (resp.status, answer, kept)
            return web.Response(status=resp.status, body=answer, headers=kept)
