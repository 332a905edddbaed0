"""The broker as a mall would run it: TLS, an account per terminal and one for the ledger, the shipped ACL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import uuid
from pathlib import Path

import aiomqtt
import pytest

from simulators.processes import free_port
from tests.brokers import broker_conf, make_tls, start_broker
from tests.gateway.records import draft
from tests.harness import LedgerHandle, gateway_config, post_batch, register_key, running_gateway, sealed, until

pytestmark = [pytest.mark.broker, pytest.mark.ledger]

LEDGER_PASSWORD = "ledger-secret-0123456789"
TILL_PASSWORD = "till-secret-0123456789"
OPS_PASSWORD = "ops-secret-0123456789"


async def retained(port: int, ca: Path, user: str, password: str, topic: str) -> dict[str, object]:
    """The retained message on ``topic``, read over TLS with an account."""
    tls = ssl.create_default_context(cafile=ca)
    identifier = f"test-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=identifier, username=user, password=password, tls_context=tls
    ) as client:
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            body: dict[str, object] = json.loads(message.payload)
            return body
    raise AssertionError("unreachable")


async def first_message(port: int, ca: Path, user: str, password: str, topic: str, ready: asyncio.Event) -> bytes:
    """The next message on ``topic`` (not retained ones: alerts are not), read over TLS with an account."""
    tls = ssl.create_default_context(cafile=ca)
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password, tls_context=tls) as client:
        await client.subscribe(topic, qos=1)
        ready.set()
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return message.payload
    raise AssertionError("unreachable")


async def test_terminal_and_ledger_over_tls_with_their_own_accounts_held_to_the_acl(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    mall, port = f"tls-{uuid.uuid4().hex[:8]}", free_port()
    tls = make_tls(tmp_path / "tls")
    ca = tls / "ca.pem"
    accounts = {"posgw-ledger": LEDGER_PASSWORD, "T-TEST-01": TILL_PASSWORD, "posgw-ops": OPS_PASSWORD}
    broker = start_broker(broker_conf(tmp_path, port, accounts, tls=tls, acl=True))
    (tmp_path / "ledger-mqtt").write_text(LEDGER_PASSWORD)
    (tmp_path / "till-mqtt").write_text(TILL_PASSWORD)
    ledger_mqtt: tuple[str, ...] = ("--mqtt", f"127.0.0.1:{port}", "--mall", mall, "--mqtt-user", "posgw-ledger")
    ledger_mqtt += ("--mqtt-password-file", str(tmp_path / "ledger-mqtt"), "--mqtt-ca", str(ca))
    ledger = LedgerHandle(tmp_path / "ledger", tokens, ledger_mqtt)
    mqtt = {"host": "127.0.0.1", "port": port, "mall": mall, "heartbeat": 0.5, "ca_file": str(ca)}
    mqtt |= {"username": "T-TEST-01", "password_file": str(tmp_path / "till-mqtt")}
    try:
        await ledger.start()
        async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt)) as (gw, pos):
            await pos.wait_status(lambda s: s["mqtt"]["connected"])
            # The ledger's notice, published with its account, heard with the terminal's.
            rulebook = f"posgw/{mall}/rulebook"
            assert await retained(port, ca, "T-TEST-01", TILL_PASSWORD, rulebook) == {"version": 1}
            # The terminal's status, published with its account, read with the ledger's.
            status = f"posgw/{mall}/terminals/T-TEST-01/status"
            assert (await retained(port, ca, "posgw-ledger", LEDGER_PASSWORD, status))["online"] is True
            # A revocation goes through to the till.
            _, key = await ledger.coupon("M0001", "C-20-OFF-200")
            await ledger.revoke_coupon(key)
            await until(lambda: key in gw.services.directory.revoked_coupons)
            # A terminal's account may not speak for the ledger: the broker drops its forged notice.
            client_tls = ssl.create_default_context(cafile=ca)
            async with aiomqtt.Client(
                "127.0.0.1", port, username="T-TEST-01", password=TILL_PASSWORD, tls_context=client_tls
            ) as forger:
                await forger.publish(rulebook, b'{"version": 999}', qos=1, retain=True)
            assert await retained(port, ca, "T-TEST-01", TILL_PASSWORD, rulebook) == {"version": 1}
            # Points spent twice offline: the ledger's alert reaches the operators' account.
            ready = asyncio.Event()
            alerts = f"posgw/{mall}/alerts"
            alert = asyncio.create_task(first_message(port, ca, "posgw-ops", OPS_PASSWORD, alerts, ready))
            await ready.wait()
            await register_key(ledger, "T-TWICE")
            spent = dataclasses.replace(draft("T-TWICE", 1000, "M0001"), points_redeemed=50, points_earned=0)
            await post_batch(ledger, {"terminal_id": "T-TWICE", "records": [r.to_wire() for r in sealed([spent])]})
            async with asyncio.timeout(15):
                assert json.loads(await alert)["terminal_id"] == "T-TWICE"
    finally:
        ledger.stop()
        broker.kill()
        broker.wait()


async def test_a_broker_certificate_from_another_ca_is_refused_and_the_till_sells_on(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    port = free_port()
    tls = make_tls(tmp_path / "tls")
    stranger = make_tls(tmp_path / "other")  # a CA that did not sign the broker's certificate
    broker = start_broker(broker_conf(tmp_path, port, {"T-TEST-01": TILL_PASSWORD}, tls=tls))
    (tmp_path / "till-mqtt").write_text(TILL_PASSWORD)
    mqtt = {"host": "127.0.0.1", "port": port, "mall": "m", "ca_file": str(stranger / "ca.pem")}
    mqtt |= {"username": "T-TEST-01", "password_file": str(tmp_path / "till-mqtt")}
    try:
        async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt)) as (_gw, pos):
            status = await pos.wait_status(lambda s: s["mqtt"]["last_error"] is not None)
            assert status["mqtt"]["connected"] is False
            assert "certificate verify failed" in status["mqtt"]["last_error"]
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="X1", unit_price=500)
            assert (await pos.complete_cash(basket, 500))["record"]["seq"] == 1
    finally:
        broker.kill()
        broker.wait()
