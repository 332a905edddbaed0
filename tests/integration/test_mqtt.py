"""Terminals and the ledger over the real Mosquitto broker: status with a last will, notices, commands."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from ledger.notices import Broker, NoticePublisher
from protocols.mqtt_topics import rulebook_topic
from simulators.fleet import FleetError, run_fleet
from simulators.fleet_news import FleetBroker
from simulators.processes import Stack, free_port
from tests.brokers import broker_with_account, start_broker
from tests.gateway.records import draft
from tests.harness import (
    LedgerHandle,
    fleet_differences,
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


@pytest.fixture
async def mqtt_ledger(tmp_path: Path, tokens: dict[str, str], mall: str) -> AsyncIterator[LedgerHandle]:
    """A ledger announcing on the machine's broker, to this test's mall (member news paced at 0.2 s)."""
    extra = ("--mqtt", f"{BROKER[0]}:{BROKER[1]}", "--mall", mall, "--member-notices-every", "0.2")
    ledger = LedgerHandle(tmp_path / "ledger", tokens, extra)
    await ledger.start()
    yield ledger
    ledger.stop()


async def watch(topic: str, check: Callable[[dict[str, Any]], bool], started: asyncio.Event) -> dict[str, Any]:
    """The first message on ``topic`` (retained ones included) that ``check`` accepts. The caller times the
    wait from when the message is due (``heard``), not from the subscription: what comes before (enrolling
    and starting a till) takes as long as a busy machine makes it."""
    async with aiomqtt.Client(*BROKER, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)
        started.set()
        async for message in client.messages:
            body = json.loads(str(message.payload, "utf-8") if isinstance(message.payload, bytes) else "{}")
            if check(body):
                return dict(body)
    raise AssertionError("unreachable")


async def heard(watching: asyncio.Task[dict[str, Any]], within: float = 15.0) -> dict[str, Any]:
    return await asyncio.wait_for(watching, within)


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
        status = await heard(online)
        assert status["pending"] == 0
        assert "scanner" in status["devices"]
        started = asyncio.Event()
        offline = asyncio.create_task(watch(topic, lambda m: not m["online"], started))
        await started.wait()
        stack.gateway.stop(signal.SIGKILL)  # no goodbye: the broker speaks for it
        gone = await heard(offline)
        assert gone["reason"] == "connection lost"
    finally:
        stack.shutdown()


async def test_member_news_and_commands_reach_the_terminal_at_once(
    tmp_path: Path, tokens: dict[str, str], mall: str, mqtt_ledger: LedgerHandle
) -> None:
    ledger = mqtt_ledger
    mqtt = {"host": "127.0.0.1", "mall": mall, "heartbeat": 1.0}
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, mqtt=mqtt, refresh_interval=3600)
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
        # The mall withdraws a coupon copy: the till hears it and refuses the copy at once.
        token, key = await ledger.coupon("M0001", "C-20-OFF-200")
        await ledger.revoke_coupon(key)
        await until(lambda: key in directory.revoked_coupons)
        basket = (await pos.new_basket())["basket_id"]
        refused = await pos.call_problem("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
        assert refused["type"] == "urn:posgw:problem:coupon-revoked"
        # Anyone on a permissive broker retains an "empty list" (old and new form): nothing is un-revoked.
        async with aiomqtt.Client(*BROKER, identifier=f"forger-{uuid.uuid4().hex[:8]}") as forger:
            for forged in (b'{"instances": []}', b'{"version": 0}', b'{"version": 999999}'):
                await forger.publish(f"posgw/{mall}/coupons/revoked", forged, qos=1, retain=True)
        await asyncio.sleep(1.0)
        assert key in directory.revoked_coupons
        refused = await pos.call_problem("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
        assert refused["type"] == "urn:posgw:problem:coupon-revoked"
        # Nor can it announce a version that never comes and so stop every coupon: another copy is taken.
        other, _ = await ledger.coupon("M0001", "C-20-OFF-200")
        await pos.add_line(basket, sku="A", unit_price=30_000)
        taken = await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": other})
        assert taken["coupons"]


async def test_an_operators_refresh_command_is_answered_at_once_not_paced(
    tmp_path: Path, tokens: dict[str, str], mall: str, mqtt_ledger: LedgerHandle
) -> None:
    mqtt = {"host": "127.0.0.1", "mall": mall, "heartbeat": 1.0}
    # An hour both ways: neither the refresh timer nor a notice would refresh within the test.
    config = gateway_config(
        tmp_path / "gw", mqtt_ledger.url, tokens, mqtt=mqtt, refresh_interval=3600, min_refresh_interval=3600
    )
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["mqtt"]["connected"])  # first load done
        loaded = gw.services.link.state.rules_loaded_at
        assert loaded is not None
        sent = await asyncio.to_thread(ledger_cli, "command", "T-TEST-01", "refresh", "--mall", mall)
        assert sent.returncode == 0, sent.stderr
        await until(lambda: gw.services.link.state.rules_loaded_at != loaded)


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
            loaded = gw.services.link.state.rules_loaded_at
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.publish(f"posgw/{mall}/terminals/T-TEST-01/command", b'{"command": "refresh"}', qos=1)
            await until(lambda: gw.services.link.state.rules_loaded_at != loaded)
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


async def test_member_notices_are_paced_the_newest_goes_and_rulebooks_do_not_wait(mall: str) -> None:
    publisher = NoticePublisher(Broker(*BROKER), mall, members_every=2.0)
    seen: list[tuple[str, int]] = []
    async with aiomqtt.Client(*BROKER, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(f"posgw/{mall}/#", qos=1)

        async def listen() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b"{}"
                seen.append((str(message.topic).rsplit("/", 1)[-1], json.loads(payload)["version"]))

        tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(listen())]
        try:
            for version in range(1, 101):  # a busy mall: a new member revision every 10 ms
                publisher.members(version)
                await asyncio.sleep(0.01)
            publisher.rulebook(7)
            await until(lambda: ("members", 100) in seen, within=15)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert [v for topic, v in seen if topic == "members"] == [1, 100]  # the first at once, then the newest
    assert seen.index(("rulebook", 7)) < seen.index(("members", 100))  # a rulebook never waits for the pace
    assert publisher.published == 3


async def test_a_fleet_on_mqtt_reports_its_status_and_follows_member_news(
    tokens: dict[str, str], mall: str, mqtt_ledger: LedgerHandle, tmp_path: Path
) -> None:
    ledger = mqtt_ledger
    statuses: dict[str, list[dict[str, Any]]] = {}
    started = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client(*BROKER, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
            await client.subscribe(f"posgw/{mall}/terminals/+/status", qos=1)
            started.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b"{}"
                statuses.setdefault(str(message.topic).split("/")[3], []).append(json.loads(payload))

    watcher = asyncio.create_task(collect())
    try:
        await started.wait()
        broker = FleetBroker("127.0.0.1", 1883, mall, heartbeat=0.5, min_refresh=0.5)
        result, fleet = await run_fleet(ledger.url, await ledger.fleet_codes(20), 15, offline_share=0.3, broker=broker)
        assert result.accepted == result.records == 300
        assert await fleet_differences(ledger, [r for t in fleet for r in t.made]) == []
        # Every terminal fetched and verified the rules at its start and then on news; run_fleet
        # returned only once every one held the ledger's last member revision.
        assert result.news is not None
        assert result.news.refreshes > 20
        assert result.news.refresh_failures == 0
        assert result.news.members_fetched > 0
        # Each published its status, online with its queue, and said goodbye when the run ended.
        await until(lambda: len(statuses) == 20 and all(s[-1].get("reason") == "stopped" for s in statuses.values()))
        assert all(any(m["online"] and "queue_depth" in m for m in seen) for seen in statuses.values())

        # The command, and a fleet on a mall the ledger does not announce to: told, not hung.
        made = await asyncio.to_thread(
            ledger_cli, "terminal", "add", "T-CLI", "--count", "3", "--store", "S-FLEET", "--merchant", "M-BAKERY",
            *ledger.store_args(),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        (tmp_path / "codes").write_text(made.stdout)
        argv = ["-m", "simulators.cli", "fleet", "--codes", str(tmp_path / "codes"), "--records", "2"]
        argv += ["--ledger", ledger.url, "--mqtt", "127.0.0.1:1883", "--mall", mall]
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, *argv], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        again = await asyncio.to_thread(  # the same codes again: each was good once
            subprocess.run, [sys.executable, *argv], capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 1
        assert "T-CLI-0000 could not enrol (403)" in again.stderr
        assert "accepted 6, duplicate 0, rejected 0" in done.stdout
        assert "MQTT: " in done.stdout
        assert "mqtt_connected" not in done.stdout  # the links' info lines would be one a terminal
        elsewhere = FleetBroker("127.0.0.1", 1883, f"{mall}-elsewhere", min_refresh=0.1, within=3.0)
        codes = await ledger.fleet_codes(2, "T-ELSE")
        with pytest.raises(FleetError, match=r"hear of member revision \d+ \(is the ledger on this broker"):
            await run_fleet(ledger.url, codes, 2, offline_share=0.0, broker=elsewhere)
    finally:
        watcher.cancel()


async def test_a_conflict_is_logged_and_alerted_to_the_malls_operators(
    tmp_path: Path, mall: str, mqtt_ledger: LedgerHandle
) -> None:
    ledger = mqtt_ledger
    started = asyncio.Event()
    alert = asyncio.create_task(watch(f"posgw/{mall}/alerts", lambda m: m.get("kind") == "conflict", started))
    await started.wait()
    await register_key(ledger, "T-TWICE")
    spent = dataclasses.replace(draft("T-TWICE", 1000, "M0001"), points_redeemed=50, points_earned=0)
    batch = {"terminal_id": "T-TWICE", "records": [r.to_wire() for r in sealed([spent])]}
    status, _ = await post_batch(ledger, batch)
    assert status == 200
    got = await heard(alert)
    assert got["terminal_id"] == "T-TWICE"
    assert got["detail"] == "conflict: points overdrawn by 50 (spent offline twice?)"
    assert got["txn_id"] == spent.txn_id
    assert "conflict_recorded" in (tmp_path / "ledger" / "ledger.log").read_text()


async def test_a_payload_that_broke_the_mqtt_link_is_one_refused_message_and_the_till_keeps_selling(
    tmp_path: Path, tokens: dict[str, str], mall: str
) -> None:
    """A retained message nested 1,000 deep raised RecursionError out of the link and ended the daemon's
    TaskGroup (sync, scans, devices with it). Read by the one reader of untrusted JSON, it is a refused message:
    counted, the link stays up, nothing restarts, sales go on."""
    async with aiomqtt.Client(*BROKER) as client:
        await client.publish(rulebook_topic(mall), b"[" * 1000, qos=1, retain=True)
    try:
        mqtt = {"host": BROKER[0], "port": BROKER[1], "mall": mall}
        config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens, mqtt=mqtt)
        async with running_gateway(config) as (gw, pos):
            link = gw.services.mqtt
            assert link is not None
            await until(lambda: link.state.messages_refused >= 1 and link.state.connected, within=20)
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="X1", unit_price=1000)
            assert (await pos.complete_cash(basket, 1000))["record"]["seq"] == 1
            running = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
            assert {"sync", "scans", "mqtt", "rules-refresh"} <= running  # nothing else went down with it
            assert not [e for e in gw.services.recent_errors if "task-failed" in e]  # nothing even restarted
    finally:
        async with aiomqtt.Client(*BROKER) as client:  # an empty retained message clears it
            await client.publish(rulebook_topic(mall), b"", qos=1, retain=True)
