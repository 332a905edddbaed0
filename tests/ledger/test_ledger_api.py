"""The reference ledger over HTTP: auth, idempotent ingest, seq conflicts, garbage batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocols.records import TransactionRecord
from protocols.sync import SyncReply, batch_to_wire
from tests.gateway.records import draft
from tests.harness import LedgerHandle

pytestmark = pytest.mark.ledger


def numbered(records: list[TransactionRecord]) -> list[TransactionRecord]:
    return [dataclasses.replace(r, seq=i) for i, r in enumerate(records, 1)]


async def post(ledger: LedgerHandle, body: object, token: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token or ledger.tokens['ledger']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.post(f"{ledger.url}/v1/sync/batch", json=body) as r:
        return r.status, await r.json(content_type=None)


async def test_ingest_is_idempotent_and_credits_points_once(ledger: LedgerHandle) -> None:
    records = numbered([draft("T-9", 25_000, "M0001"), draft("T-9", 999), draft("T-9", 10_000, "M0001")])
    status, body = await post(ledger, batch_to_wire("T-9", records))
    assert status == 200
    reply = SyncReply.from_wire(body)
    assert [r.status for r in reply.results] == ["accepted"] * 3
    assert reply.high_seq == 3
    status, body = await post(ledger, batch_to_wire("T-9", records))
    assert [r.status for r in SyncReply.from_wire(body).results] == ["duplicate"] * 3
    assert await ledger.points("M0001") == 3  # 2 + 1, once


async def test_a_seq_reused_by_another_transaction_is_rejected_and_gaps_hold_high_seq(ledger: LedgerHandle) -> None:
    first = numbered([draft("T-8")])
    await post(ledger, batch_to_wire("T-8", first))
    impostor = dataclasses.replace(draft("T-8"), seq=1)
    later = dataclasses.replace(draft("T-8"), seq=3)
    _, body = await post(ledger, batch_to_wire("T-8", [impostor, later]))
    reply = SyncReply.from_wire(body)
    assert [(r.status, r.reason) for r in reply.results] == [
        ("rejected", "seq 1 already holds another transaction"),
        ("accepted", None),
    ]
    assert reply.high_seq == 1  # seq 2 is missing: a gap the terminal must fill


async def test_bad_batches_and_bad_tokens(ledger: LedgerHandle) -> None:
    status, body = await post(ledger, {"terminal_id": "T-1", "records": [{"seq": "x"}]})
    assert status == 422
    assert isinstance(body, dict)
    assert any("seq" in p for p in body["problems"])
    status, _ = await post(ledger, batch_to_wire("T-1", []), token="not-the-token-at-all")
    assert status == 401
    headers = {"Authorization": f"Bearer {ledger.tokens['ledger']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{ledger.url}/v1/sync/batch", data=b"\xff not json") as r:
            assert r.status == 400
        # The terminal token does not let anyone mint member QR codes.
        async with http.post(f"{ledger.url}/v1/members/M0001/qr") as r:
            assert r.status == 401


async def test_rulebook_carries_the_issuer_key_and_survives_restart(ledger: LedgerHandle, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {ledger.tokens['ledger']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{ledger.url}/v1/rulebook") as r:
            before = await r.json()
        ledger.stop()
        await ledger.start()
        async with http.get(f"{ledger.url}/v1/rulebook") as r:
            after = await r.json()
    assert before == after
    assert len(before["rulebook"]["issuer_keys"]) == 1
    assert before["kid"] in before["rulebook"]["issuer_keys"]
    assert (ledger.data_dir / "issuer.key").stat().st_mode & 0o777 == 0o600


async def test_terminal_key_registration_first_key_wins(ledger: LedgerHandle) -> None:
    headers = {"Authorization": f"Bearer {ledger.tokens['ledger']}"}
    url = f"{ledger.url}/v1/terminals/T-5/key"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.put(url, json={"public_key": "A" * 43}) as r:
            assert r.status == 200
        async with http.put(url, json={"public_key": "A" * 43}) as r:
            assert r.status == 200  # the same key again is fine (a restart)
        async with http.put(url, json={"public_key": "B" * 43}) as r:
            assert r.status == 409
            assert (await r.json(content_type=None))["type"] == "urn:posgw:problem:terminal-key-conflict"
        async with http.put(url, json={"public_key": "short"}) as r:
            assert r.status == 422


async def test_member_deltas_carry_only_what_changed(ledger: LedgerHandle) -> None:
    headers = {"Authorization": f"Bearer {ledger.tokens['ledger']}"}

    async def members(since: int) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"{ledger.url}/v1/members", params={"since": str(since)}) as r,
        ):
            envelope: dict[str, Any] = await r.json()
            assert envelope["kid"]
            assert envelope["signature"]
            body: dict[str, Any] = envelope["members"]
            return body

    full = await members(0)
    assert full["full"] is True
    assert {m["member_id"] for m in full["members"]} == {"M0001", "M0002", "M0003", "M0099"}
    assert (await members(full["version"]))["members"] == []
    await post(ledger, batch_to_wire("T-7", numbered([draft("T-7", 30_000, "M0002")])))
    await ledger.add_identifier("M0003", "card:8600001234")
    delta = await members(full["version"])
    assert delta["full"] is False
    assert sorted((m["member_id"], m["points"]) for m in delta["members"]) == [("M0002", 3), ("M0003", 0)]
    assert delta["version"] > full["version"]
