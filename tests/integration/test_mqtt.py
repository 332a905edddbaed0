"""Terminals and the ledger over the real Mosquitto broker: status with a last will, notices, commands."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from simulators.processes import Stack, free_port
from tests.brokers import broker_with_account, start_broker
from tests.gateway.records import draft
from tests.harness import (
    LedgerHandle,
    gateway_config,
    ledger_cli,
    post_batch,
    register_key,
    running_gateway,
    sealed,
    until,
)

pytestmark = [pytest.mark.broker, pytest.mark.ledger]

BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def mall() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # topics of their own: no retained message from another test


async def watch(
    topic: str, check: Callable[[dict[str, Any]], bool], started: asyncio.Event, within: float = 15.0
) -> dict[str, Any]:
    """The first message on ``topic`` (retained ones included) that ``check`` accepts."""
    async with aiomqtt.Client(*BROKER, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)
        started.set()
        async with asyncio.timeout(within):
            async for message in client.messages:
                body = json.loads(str(message.payload, "utf-8") if isinstance(message.payload, bytes) else "{}")
                if check(body):
                    return dict(body)
    raise AssertionError("unreachable")


async def test_a_terminal_publishes_its_status_and_its_last_will_marks_it_offline(tmp_path: Path, mall: str) -> None:
    stack = Stack.create(
        tmp_path, extra_config=f'\n[mqtt]\nhost = "127.0.0.1"\nmall = "{mall}"\nkeepalive = 1\nheartbeat = 0.5\n'
    )
    topic = f"posgw/{mall}/terminals/T-DEMO-01/status"
    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        started = asyncio.Event()
        online = asyncio.create_task(watch(topic, lambda m: bool(m["online"] and m.get("ledger_online")), started))
        await started.wait()
        stack.gateway.start()
        await stack.gateway.wait_healthy()
        status = await online
        assert status["pending"] == 0
        assert "scanner" in status["devices"]
        started = asyncio.Event()
        offline = asyncio.create_task(watch(topic, lambda m: not m["online"], started))
        await started.wait()
        stack.gateway.stop(signal.SIGKILL)  # no goodbye: the broker speaks for it
        gone = await offline
        assert gone["reason"] == "connection lost"
    finally:
        stack.shutdown()


async def test_member_news_and_commands_reach_the_terminal_at_once(
    tmp_path: Path, tokens: dict[str, str], mall: str
) -> None:
    ledger = LedgerHandle(tmp_path / "ledger", tokens, ("--mqtt", "127.0.0.1:1883", "--mall", mall))
    await ledger.start()
    mqtt = {"host": "127.0.0.1", "mall": mall, "heartbeat": 1.0}
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt, refresh_interval=3600)
    try:
        async with running_gateway(config) as (gw, pos):
            await pos.wait_status(lambda s: bool(s["members_cached"]) and s["mqtt"]["connected"])
            directory = gw.services.directory
            assert directory.members is not None
            assert directory.members["M0001"].points == 0
            # Another till's sale earns M0001 points; the ledger announces the member revision.
            await register_key(ledger, "T-OTHER")
            records = [r.to_wire() for r in sealed([draft("T-OTHER", 30_000, "M0001")])]
            status, _ = await post_batch(ledger, {"terminal_id": "T-OTHER", "records": records})
            assert status == 200
            await until(lambda: directory.members is not None and directory.members["M0001"].points == 3)
            # An operator's command: refresh now (the refresh timer is an hour away).
            loaded = gw.services.sync.state.rules_loaded_at
            sent = await asyncio.to_thread(ledger_cli, "command", "T-TEST-01", "refresh", "--mall", mall)
            assert sent.returncode == 0, sent.stderr
            await until(lambda: gw.services.sync.state.rules_loaded_at != loaded)
            # The mall withdraws a coupon copy: the till hears it and refuses the copy at once.
            token, key = await ledger.coupon("M0001", "C-20-OFF-200")
            await ledger.revoke_coupon(key)
            await until(lambda: key in directory.revoked_coupons)
            basket = (await pos.new_basket())["basket_id"]
            refused = await pos.call_problem("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
            assert refused["type"] == "urn:posgw:problem:coupon-revoked"
    finally:
        ledger.stop()


async def test_without_a_broker_the_till_sells_as_ever(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    mqtt = {"host": "127.0.0.1", "port": free_port(), "mall": "nowhere"}
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt)) as (_gw, pos):
        status = await pos.wait_status(lambda s: s["mqtt"]["last_error"] is not None)
        assert status["mqtt"]["connected"] is False
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="X1", unit_price=1000)
        assert (await pos.complete_cash(basket, 1000))["record"]["seq"] == 1
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)  # and it syncs over HTTP


async def test_the_broker_restarted_the_terminal_reconnects_and_hears_again(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], mall: str
) -> None:
    """A private Mosquitto on a free port, killed and started again under a running till."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = start_broker(conf)
    mqtt = {"host": "127.0.0.1", "port": port, "mall": mall, "heartbeat": 0.5}
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt, refresh_interval=3600)
    try:
        async with running_gateway(config) as (gw, pos):
            await pos.wait_status(lambda s: s["mqtt"]["connected"])
            broker.kill()
            broker.wait()
            await pos.wait_status(lambda s: not s["mqtt"]["connected"])
            cash_sale = (await pos.new_basket())["basket_id"]  # the till sells on meanwhile
            await pos.add_line(cash_sale, sku="X1", unit_price=500)
            assert (await pos.complete_cash(cash_sale, 500))["record"]["seq"] == 1
            broker = start_broker(conf)
            await pos.wait_status(lambda s: s["mqtt"]["connected"], within=40)
            loaded = gw.services.sync.state.rules_loaded_at
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.publish(f"posgw/{mall}/terminals/T-TEST-01/command", b'{"command": "refresh"}', qos=1)
            await until(lambda: gw.services.sync.state.rules_loaded_at != loaded)
    finally:
        broker.kill()
        broker.wait()


async def test_a_broker_that_wants_an_account_gets_the_terminals_own(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], mall: str
) -> None:
    port = free_port()
    secret = "till-01-secret-0123456789"
    broker = start_broker(broker_with_account(tmp_path, port, "till-01", secret))
    try:
        for password, connects in ((secret, True), ("not-the-password-000", False)):
            password_file = tmp_path / f"password-{connects}"
            password_file.write_text(password)
            mqtt = {"host": "127.0.0.1", "port": port, "mall": mall, "username": "till-01"}
            mqtt["password_file"] = str(password_file)
            config = gateway_config(tmp_path / f"gw-{connects}", ledger.url, tokens, mqtt=mqtt)
            async with running_gateway(config) as (_gw, pos):
                if connects:
                    await pos.wait_status(lambda s: s["mqtt"]["connected"])
                    continue
                status = await pos.wait_status(lambda s: s["mqtt"]["last_error"] is not None)
                assert status["mqtt"]["connected"] is False
                assert "not authori" in status["mqtt"]["last_error"].lower()
    finally:
        broker.kill()
        broker.wait()
