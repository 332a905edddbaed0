"""The local API from a browser on the till: an allowed page completes a sale, any other page reads nothing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.api.browser import Tickets
from simulators.processes import free_port
from tests.harness import gateway_config, running_gateway

# The POS page: start a basket, add a line, open the event stream with a ticket, pay cash, wait for the sale event.
PAGE = """<!doctype html><html><body><pre id="outcome">running</pre><script>
const api = "__API__", token = "__TOKEN__";
const auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
function done(what) { document.getElementById("outcome").textContent = JSON.stringify(what); }
async function call(method, path, body, extra) {
  const r = await fetch(api + path, {method, headers: {...auth, ...(extra || {})}, body: body && JSON.stringify(body)});
  return {status: r.status, body: await r.json()};
}
async function sale() {
  const outcome = {};
  try {
    const ticket = await call("POST", "/v1/events/tickets");
    outcome.ticket = ticket.status;
    const events = new WebSocket(api.replace("http", "ws") + "/v1/events?ticket=" + ticket.body.ticket);
    const saleEvent = new Promise(resolve => {
      events.onmessage = m => { const e = JSON.parse(m.data); if (e.type === "sale") resolve(e); };
      events.onerror = () => resolve({type: "ws-error"});
    });
    await new Promise(resolve => { events.onopen = resolve; events.onclose = resolve; });
    const basket = await call("POST", "/v1/baskets");
    await call("POST", "/v1/baskets/" + basket.body.basket_id + "/lines", {sku: "6901234567892", unit_price: 1250});
    const paid = await call("POST", "/v1/baskets/" + basket.body.basket_id + "/complete",
      {tenders: [{kind: "cash", amount: 2000}]}, {"Idempotency-Key": "browser-sale-0001"});
    outcome.complete = paid.status;
    outcome.change = paid.body.record.change;
    outcome.event = (await saleEvent).type;
  } catch (err) {
    outcome.error = String(err);
  }
  try {
    const ws = new WebSocket(api.replace("http", "ws") + "/v1/events?ticket=made-up");
    outcome.stranger_ws = await new Promise(r => { ws.onopen = () => r("open"); ws.onerror = () => r("refused"); });
  } catch (err) { outcome.stranger_ws = "refused"; }
  done(outcome);
}
sale();
</script></body></html>"""


async def cdp(ws: aiohttp.ClientWebSocketResponse, ask: int, method: str, **params: object) -> dict[str, Any]:
    """One Chrome DevTools Protocol call on a page's socket; its result (events in between are skipped)."""
    await ws.send_json({"id": ask, "method": method, "params": params})
    while True:
        answer = await ws.receive_json()
        if answer.get("id") == ask:
            assert "error" not in answer, answer
            result: dict[str, Any] = answer["result"]
            return result


async def page_outcome(url: str, profile: Path, within: float = 30.0) -> dict[str, Any]:
    """Open ``url`` in headless Chromium (driven over its DevTools socket) and wait for the page's outcome."""
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    flags = ["--headless", "--disable-gpu", f"--user-data-dir={profile}", "--remote-debugging-port=0"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    devnull = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(browser, *flags, "about:blank", stdout=devnull, stderr=devnull)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        port_file = profile / "DevToolsActivePort"
        while not port_file.exists() or not port_file.read_text().strip():
            assert loop.time() < deadline, "Chromium did not open its DevTools port"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                page = next(t for t in await r.json() if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await cdp(ws, 1, "Page.navigate", url=url)
                read = "(document.getElementById('outcome') || {}).textContent"
                for ask in range(2, 10_000):
                    value = (await cdp(ws, ask, "Runtime.evaluate", expression=read, returnByValue=True))["result"]
                    # Until the page has parsed and run, the element is missing, empty or "running".
                    if str(value.get("value") or "").startswith("{"):
                        break
                    assert loop.time() < deadline, "the page never said how it went"
                    await asyncio.sleep(0.1)
                outcome: dict[str, Any] = json.loads(value["value"])
                return outcome
    finally:
        proc.terminate()  # only the browser this test started, by its pid
        await asyncio.wait_for(proc.wait(), 10)


@asynccontextmanager
async def page_server(port: int, api: str, token: str) -> AsyncIterator[str]:
    """The POS page, served from its own origin (``http://127.0.0.1:<port>``); yields its URL."""
    body = PAGE.replace("__API__", api).replace("__TOKEN__", token)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/pos.html", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/pos.html"
    finally:
        await runner.cleanup()


async def test_a_page_on_an_allowed_origin_completes_a_sale_and_another_reads_nothing(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    allowed, other = free_port(), free_port()
    api_options: dict[str, object] = {"allowed_origins": [f"http://127.0.0.1:{allowed}"]}
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens, api=api_options)
    async with running_gateway(config) as (gw, pos):
        api = f"http://127.0.0.1:{gw.port}"
        async with page_server(allowed, api, tokens["api"]) as good, page_server(other, api, tokens["api"]) as bad:
            sold = await page_outcome(good, tmp_path / "good-profile")
            refused = await page_outcome(bad, tmp_path / "bad-profile")
        journal = (await pos.status())["journal"]
    assert sold == {"ticket": 201, "complete": 201, "change": 750, "event": "sale", "stranger_ws": "refused"}, sold
    assert "error" in refused, refused  # the browser let it read nothing
    assert "ticket" not in refused, refused
    assert refused["stranger_ws"] == "refused"
    assert journal["total"] == 1  # the other page's requests never reached a handler


async def test_the_api_answers_browsers_by_the_rules(tmp_path: Path, tokens: dict[str, str]) -> None:
    page = "http://127.0.0.1:8080"
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens, api={"allowed_origins": [page]})
    async with running_gateway(config) as (gw, _pos), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{gw.port}"
        bearer = {"Authorization": f"Bearer {tokens['api']}"}
        async with http.get(f"{base}/v1/status") as r:
            assert (r.status, r.headers["WWW-Authenticate"]) == (401, 'Bearer realm="posgw"')
        preflight = {
            "Origin": page,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,idempotency-key",
        }
        async with http.options(f"{base}/v1/baskets", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == page
            assert "Idempotency-Key" in r.headers["Access-Control-Allow-Headers"]
        async with http.post(f"{base}/v1/baskets", headers={**bearer, "Origin": page}) as r:
            assert (r.status, r.headers["Access-Control-Allow-Origin"]) == (201, page)
        async with http.get(f"{base}/v1/status", headers={"Origin": page}) as r:  # a refusal the page can read
            assert (r.status, r.headers["Access-Control-Allow-Origin"]) == (401, page)
        async with http.post(f"{base}/v1/baskets", headers={**bearer, "Origin": "http://evil.example"}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        async with http.get(f"{base}/v1/status", headers={**bearer, "Host": "rebound.example:80"}) as r:
            assert (r.status, (await r.json(content_type=None))["type"]) == (421, "urn:posgw:problem:wrong-host")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{base}/v1/events", headers={**bearer, "Origin": "http://evil.example"})
        assert refused.value.status == 403
        async with http.post(f"{base}/v1/events/tickets", headers=bearer) as r:
            ticket = (await r.json())["ticket"]
        async with http.ws_connect(f"{base}/v1/events?ticket={ticket}", headers={"Origin": page}) as ws:
            assert (await ws.receive_json())["type"] == "hello"  # a ticket, no Authorization header
        with pytest.raises(aiohttp.WSServerHandshakeError) as used:
            await http.ws_connect(f"{base}/v1/events?ticket={ticket}", headers={"Origin": page})
        assert used.value.status == 401


def test_a_ticket_opens_one_stream_once_and_not_after_it_expires() -> None:
    now = [100.0]
    tickets = Tickets(clock=lambda: now[0], seconds=30)
    first, second = tickets.issue(), tickets.issue()
    assert tickets.redeem(first)
    assert not tickets.redeem(first)  # once
    now[0] += 31
    assert not tickets.redeem(second)  # expired
    assert not tickets.redeem("made-up")
