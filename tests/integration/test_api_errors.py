"""Bad input at the local API: a typed problem, a clear message, nothing lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.events import MAX_STATUS_SUBSCRIBERS, MAX_SUBSCRIBERS
from protocols.tokens import TokenClaims, key_id, sign_token
from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = pytest.mark.ledger


async def problem_of(coro: object) -> tuple[int, dict[str, object]]:
    with pytest.raises(ApiProblemError) as err:
        await coro  # type: ignore[misc]
    return err.value.status, err.value.body


async def test_token_and_request_errors(tmp_path: Path, tokens: dict[str, str]) -> None:
    # No ledger at all: the terminal still sells for cash.
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        base = f"http://127.0.0.1:{gw.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/status") as r:
                assert r.status == 401
                assert r.content_type == "application/problem+json"
            async with http.get(f"{base}/v1/status", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200

        basket = (await pos.new_basket())["basket_id"]
        auth = {"Authorization": f"Bearer {tokens['api']}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.post(f"{base}/v1/baskets/{basket}/lines", data=b"{not json") as r:
                assert r.status == 400
                assert (await r.json(content_type=None))["type"] == "urn:posgw:problem:bad-request"
            async with http.post(f"{base}/v1/baskets/{basket}/lines", data=b"x" * 10_000) as r:
                assert r.status == 413
            # Nesting past any body of ours, and a lone surrogate (which could never be signed): 400 at the door.
            for hostile in (b"[" * 3_000, b'{"sku": "A", "name": "\\ud800", "unit_price": 1}'):
                async with http.post(f"{base}/v1/baskets/{basket}/lines", data=hostile) as r:
                    assert r.status == 400, await r.text()

        status, body = await problem_of(pos.add_line(basket, sku="", unit_price=-5, quantity=0, colour="red"))
        assert status == 422
        assert body["problems"] == [  # every problem at once, in the model's field order
            r"sku: expected str matching regex '^[\\x21-\\x7e]{1,64}$', got ''",
            "unit_price: expected int >= 0, got -5",
            "quantity: expected int >= 1, got 0",
            "colour: unknown key",
        ]
        status, body = await problem_of(pos.basket("nope"))
        assert status == 404

        await pos.add_line(basket, sku="X", unit_price=1000)
        status, body = await problem_of(pos.complete_cash(basket, 999))
        assert (status, body["type"]) == (422, "urn:posgw:problem:tender-invalid")
        status, body = await problem_of(pos.call("POST", f"/v1/baskets/{basket}/complete", {"tenders": []}))
        assert status == 422
        assert "Idempotency-Key: header is required on completion" in body["problems"]  # type: ignore[operator]

        sale = await pos.complete_cash(basket, 1000, key="key-one-123")
        assert sale["record"]["offline"] is True
        status, body = await problem_of(pos.add_line(basket, sku="Y", unit_price=1))
        assert status == 409
        status, body = await problem_of(pos.complete_cash(basket, 1000, key="key-two-456"))
        assert status == 409
        other = (await pos.new_basket())["basket_id"]
        status, body = await problem_of(pos.complete_cash(other, 1000, key="key-one-123"))
        assert (status, body["type"]) == (422, "urn:posgw:problem:idempotency-conflict")
        # The same key with another body is refused, never answered with the first sale.
        assert (await pos.complete_cash(basket, 1000, key="key-one-123"))["replayed"] is True
        status, body = await problem_of(pos.complete_cash(basket, 2000, key="key-one-123"))
        assert (status, body["type"]) == (422, "urn:posgw:problem:idempotency-conflict")

        status, body = await problem_of(pos.call("POST", f"/v1/baskets/{other}/member", {"token": "PM1.a.b"}))
        assert (status, body["type"]) == (503, "urn:posgw:problem:rules-unavailable")
        assert (await pos.status())["journal"]["total"] == 1


async def test_member_token_errors(tmp_path: Path, tokens: dict[str, str], ledger: LedgerHandle) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    issuer = ledger.issuer_key()
    kid = key_id(issuer.public_key())
    now = int(time.time())

    def token(member: str, *, iat: int = now, exp: int = now + 60, key: Ed25519PrivateKey = issuer) -> str:
        return sign_token("PM1.", TokenClaims("PM1.", member, iat, exp, "n", kid), key)

    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        basket = (await pos.new_basket())["basket_id"]

        async def attach(tok: str) -> tuple[int, dict[str, object]]:
            return await problem_of(pos.call("POST", f"/v1/baskets/{basket}/member", {"token": tok}))

        assert (await attach(token("M0001", key=Ed25519PrivateKey.generate())))[1]["type"] == (
            "urn:posgw:problem:token-forged"
        )
        assert (await attach(token("M0001", iat=now - 200, exp=now - 100)))[1]["type"] == (
            "urn:posgw:problem:token-expired"
        )
        assert (await attach("PM1.bm90IGpzb24.c2ln"))[1]["type"] == "urn:posgw:problem:token-malformed"
        status, body = await attach(token("M7777"))
        assert (status, body["type"]) == (404, "urn:posgw:problem:unknown-member")
        status, body = await attach(token("M0099"))
        assert body["type"] == "urn:posgw:problem:member-refused"
        assert "frozen" in str(body["detail"])

        # The scanner path reports the same refusal to the cashier as an event, not an HTTP error.
        result = await pos.call("POST", "/v1/scans", {"data": token("M0099")})
        assert result["member_error"]["code"] == "member-refused"
        ok = await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": token("M0001")})
        assert ok["member"]["member_id"] == "M0001"


async def test_websocket_needs_the_token(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        intruder = PosClient(f"http://127.0.0.1:{gw.port}", "x" * 20)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await intruder.connect_events()
        await intruder.close()
        hello = await pos.connect_events()
        assert hello["type"] == "hello"
        await pos.call("POST", "/v1/scans", {"data": "6901234567892"})
        event = await pos.next_event("scan")
        assert (event["kind"], event["device"]) == ("product", "keyboard")


async def test_unknown_paths_wrong_methods_and_a_flood_of_event_streams(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        base = f"http://127.0.0.1:{gw.port}"
        auth = {"Authorization": f"Bearer {tokens['api']}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/v1/nothing-here") as r:
                assert (r.status, r.content_type) == (404, "application/problem+json")
            async with http.delete(f"{base}/v1/status") as r:
                assert (r.status, r.content_type) == (405, "application/problem+json")
            streams = [await http.ws_connect(f"{base}/v1/events") for _ in range(MAX_SUBSCRIBERS)]
            try:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{base}/v1/events")
                assert refused.value.status == 503
                basket = (await pos.new_basket())["basket_id"]  # the till is not affected
                await pos.add_line(basket, sku="X", unit_price=100)
                assert (await pos.complete_cash(basket, 100))["record"]["seq"] == 1
            finally:
                for ws in streams:
                    await ws.close()
            for _ in range(100):  # the server notices the closes a moment later: then a slot is free again
                try:
                    again = await http.ws_connect(f"{base}/v1/events")
                    break
                except aiohttp.WSServerHandshakeError:
                    await asyncio.sleep(0.02)
            assert (await again.receive_json())["type"] == "hello"
            await again.close()


async def test_status_pages_have_their_own_cap_and_need_the_token_or_their_own_origin(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    """32 sockets on /status/ws from any local process cut the POS app off its events; now they cannot."""
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, _pos), aiohttp.ClientSession() as http:
        base, own = f"http://127.0.0.1:{gw.port}", {"Origin": f"http://127.0.0.1:{gw.port}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
            await http.ws_connect(f"{base}/status/ws")  # no token, not the page itself
        assert anonymous.value.status == 401
        pages = [await http.ws_connect(f"{base}/status/ws", headers=own) for _ in range(MAX_STATUS_SUBSCRIBERS)]
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await http.ws_connect(f"{base}/status/ws", headers=own)
            assert full.value.status == 503
            auth = {"Authorization": f"Bearer {tokens['api']}"}
            streams = [await http.ws_connect(f"{base}/v1/events", headers=auth) for _ in range(MAX_SUBSCRIBERS)]
            for ws in streams:  # every one of the POS app's streams still opens
                assert (await ws.receive_json())["type"] == "hello"
                await ws.close()
        finally:
            for ws in pages:
                await ws.close()


async def test_slow_clients_do_not_hold_up_the_till(tmp_path: Path, tokens: dict[str, str]) -> None:
    """Forty connections that send half a request and stall: the till sells on, the API answers."""
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        stalled = []
        for _ in range(40):
            _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST /v1/baskets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # and nothing more
            await writer.drain()
            stalled.append(writer)
        try:
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="X", unit_price=100)
            assert (await pos.complete_cash(basket, 100))["record"]["seq"] == 1
            assert (await pos.status())["journal"]["total"] == 1
        finally:
            for writer in stalled:
                writer.close()


async def test_a_key_given_twice_is_a_400_not_a_500(tmp_path: Path, tokens: dict[str, str]) -> None:
    """Found by fuzzing the contract: msgspec judged the first ``unit_price``, a plain parse kept the last, so no
    field could be named and the API answered 500."""
    async with running_gateway(gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)) as (gw, pos):
        basket = (await pos.new_basket())["basket_id"]
        url = f"http://127.0.0.1:{gw.port}/v1/baskets/{basket}/lines"
        headers = {"Authorization": f"Bearer {tokens['api']}", "Content-Type": "application/json"}
        body = b'{"sku": "A", "unit_price": "x", "unit_price": 100}'
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
            assert r.status == 400
            assert "'unit_price' is given twice" in (await r.json())["detail"]
