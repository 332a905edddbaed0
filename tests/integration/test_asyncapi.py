"""The event streams held to their AsyncAPI 3.0 document: every message a till sends matches its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import jsonschema_rs
import pytest

from gateway.api.asyncapi import DOCUMENT
from gateway.events import EVENT_TYPES
from tests.harness import gateway_config, running_gateway


def validators(channel: str) -> dict[str, list[Any]]:
    """Each message name on ``channel`` with the validators of its payloads (two events may share a name)."""
    found: dict[str, list[Any]] = {}
    for ref in DOCUMENT["channels"][channel]["messages"].values():
        message = DOCUMENT["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        schema = {**message["payload"], "components": DOCUMENT["components"]}
        found.setdefault(message["name"], []).append(jsonschema_rs.validator_for(schema))
    return found


def check(message: dict[str, Any], known: dict[str, list[Any]]) -> None:
    name = message.get("type", "status")
    assert name in known, f"a {name!r} message is not in the AsyncAPI document"
    assert any(v.is_valid(message) for v in known[name]), f"{message} matches no {name!r} schema"


def test_every_event_type_is_a_message_of_the_events_channel() -> None:
    assert DOCUMENT["asyncapi"] == "3.0.0"
    names = {m["name"] for m in DOCUMENT["components"]["messages"].values()}
    assert {e.type for e in EVENT_TYPES} | {"hello"} <= names
    listed = {r["$ref"].rsplit("/", 1)[1] for r in DOCUMENT["channels"]["events"]["messages"].values()}
    assert {e.__name__ for e in EVENT_TYPES} <= listed


def test_a_message_that_breaks_its_schema_is_caught() -> None:
    known = validators("events")
    with pytest.raises(AssertionError, match="matches no"):
        check({"type": "sale", "at": 1.0, "basket_id": "b", "txn_id": "t", "seq": "one"}, known)


async def test_what_the_streams_send_during_a_sale_matches_the_document(tmp_path: Path, tokens: dict[str, str]) -> None:
    events, status = validators("events"), validators("status")
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, pos):
        base = f"http://127.0.0.1:{gw.port}"
        async with aiohttp.ClientSession() as http, http.get(f"{base}/asyncapi.json") as r:
            assert await r.json() == DOCUMENT
        hello = await pos.connect_events()
        seen = [hello]
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="6901234567892", unit_price=1_000)
        await pos.call("POST", "/v1/scans", {"data": "6901234567892"})
        await pos.call("POST", "/v1/scans", {"data": "PM1.not.a-code"})
        await pos.complete_cash(basket, 1_000)
        while not any(m["type"] == "journal" for m in seen):
            seen.append(await pos.next_event())
        bearer = {"Authorization": f"Bearer {tokens['api']}"}
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{base}/status/ws", headers=bearer) as ws:
            page = await ws.receive_json()
    for message in seen:
        check(message, events)
    check(page, status)
    assert {"hello", "basket", "scan", "sale", "journal"} <= {m["type"] for m in seen}
