"""The status page for store IT and the cashier: one small HTML page, live over a WebSocket.

``GET /status`` serves the page, already showing the current state; ``GET /status/ws`` pushes the daemon's
status (the same document as ``/v1/status``, plus the recent errors) at once
and again after every event, at most five times a second. Both are on the
API's loopback address without the token: the status holds no personal data
and no secret, and a browser cannot send a bearer token on a WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from gateway.services import Services

PUSH_EVERY = 0.2  # seconds: at most five status pushes a second, however busy the till

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>posgw status</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 1.5em; color: #222; }
#ledger { padding: .6em 1em; font-size: 1.4em; font-weight: bold; border-radius: 6px; }
#ledger.online { background: #1b8a3a; color: #fff; }
#ledger.offline { background: #d01f1f; color: #fff; }
#ledger.unknown { background: #888; color: #fff; }
table { border-collapse: collapse; margin-top: 1em; }
td, th { padding: .25em .8em; text-align: left; border-bottom: 1px solid #ddd; }
.error { color: #b00; }
.check { margin-top: .4em; padding: .4em 1em; background: #f3c623; color: #222; border-radius: 6px; }
</style></head>
<body>
<div id="ledger" class="unknown">connecting…</div>
<div id="checks"></div>
<table>
<tr><th>terminal</th><td id="terminal">-</td></tr>
<tr><th>version</th><td id="version">-</td></tr>
<tr><th>queue</th><td id="queue">-</td></tr>
<tr><th>oldest pending</th><td id="oldest">-</td></tr>
<tr><th>last sync</th><td id="last-sync">-</td></tr>
<tr><th>basket</th><td id="basket">-</td></tr>
</table>
<h3>Devices</h3><table id="devices"></table>
<h3>Recent errors</h3><ul id="errors"></ul>
<script>
function text(id, value) { document.getElementById(id).textContent = value; }
function render(s) {
  const ledger = document.getElementById("ledger");
  const failing = s.checks.filter(c => !c.ok && !c.name.startsWith("device:"));
  const trouble = failing.some(c => c.name !== "ledger");
  // Green only when the ledger answers, accepts this till and nothing else is wrong: never a green lie.
  ledger.className = s.ledger.online && !trouble ? "online" : "offline";
  ledger.textContent = !s.ledger.online ? "Ledger: OFFLINE, sales are kept on this till"
    : trouble ? "Ledger: online, but something needs attention" : "Ledger: online";
  document.getElementById("checks").replaceChildren(...failing.filter(c => c.name !== "ledger").map(c => {
    const banner = document.createElement("div");
    banner.className = "check"; banner.dataset.check = c.name;
    banner.textContent = c.name + ": " + c.reason;
    return banner;
  }));
  text("terminal", s.terminal_id + (s.draining ? " (shutting down)" : ""));
  text("version", "posgw " + s.version);
  text("queue", s.journal.pending + " waiting to sync");
  text("oldest", s.journal.oldest_pending || "-");
  text("last-sync", s.ledger.last_sync || "never");
  text("basket", s.active_basket || "none open");
  const devices = document.getElementById("devices");
  devices.replaceChildren(...s.devices.map(d => {
    const row = document.createElement("tr");
    for (const v of [d.device, d.state, d.error || ""]) {
      const cell = document.createElement("td"); cell.textContent = v; row.append(cell);
    }
    if (d.error) row.className = "error";
    return row;
  }));
  const errors = document.getElementById("errors");
  errors.replaceChildren(...s.recent_errors.map(e => {
    const item = document.createElement("li"); item.className = "error"; item.textContent = e; return item;
  }));
}
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/status/ws");
  ws.onmessage = m => render(JSON.parse(m.data));
  ws.onclose = () => {
    const ledger = document.getElementById("ledger");
    ledger.className = "unknown"; ledger.textContent = "the gateway does not answer; retrying…";
    setTimeout(connect, 1000);
  };
}
connect();
</script>
</body></html>
"""


def page(services: Services) -> Any:
    async def status_page(request: web.Request) -> web.Response:
        # The page arrives already showing the state (no blank "connecting" moment); the socket keeps it live.
        # "</" escaped so that no text in the status can close the script element.
        initial = json.dumps(await services.status_page()).replace("</", "<\\/")
        html = PAGE.replace("connect();\n</script>", f"render({initial});\nconnect();\n</script>")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    return status_page


def status_socket(services: Services) -> Any:
    async def socket(request: web.Request) -> web.WebSocketResponse:
        services.hub.check_room("status")  # its own small cap: status pages never take the POS app's streams
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        async with services.hub.subscribe("status") as events:
            reader = asyncio.create_task(_drain(ws), name="status-ws-reader")
            try:
                while not ws.closed and not reader.done():
                    await ws.send_str(json.dumps(await services.status_page()))
                    await asyncio.sleep(PUSH_EVERY)  # a burst of events makes one push
                    waiting = asyncio.ensure_future(events.get())
                    done, _ = await asyncio.wait({waiting, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if waiting not in done:
                        waiting.cancel()
                        break
                    if waiting.result() is None:
                        break
                    while not events.empty():  # everything that came meanwhile is in the next push
                        if events.get_nowait() is None:
                            return ws
            finally:
                reader.cancel()
                await ws.close()
        return ws

    return socket


async def _drain(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
