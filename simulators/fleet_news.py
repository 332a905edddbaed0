"""The fleet's terminals on MQTT, as gateways are: status out with a last will, news in.

Each simulated terminal speaks MQTT as ``docs/protocols/mqtt.md`` says a
gateway does, written here from the topics and payloads of
``protocols/mqtt_topics.py`` (a second implementation beside the gateway's
``gateway/ledger_link/mqtt.py``, so the ledger is driven by the protocol, not
by one client's habits): it publishes its status (queue depth, offline or
not) retained on its topic, with a last will that marks it offline, and hears
the mall's rulebook and member notices and coupon revocations. A notice of something newer makes it
refresh as a gateway does: fetch the signed rulebook and the member delta
over HTTP and verify both against the ledger's key (pinned at first contact).
So a fleet run drives the ledger over HTTP and MQTT at once, and shows what
a notice costs the ledger when every terminal answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiomqtt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.notices import raise_if_cancelled
from protocols.backoff import Backoff
from protocols.errors import GatewayError, ProtocolError
from protocols.mqtt_topics import (
    command,
    command_topic,
    encode,
    members_topic,
    revoked_topic,
    rulebook_topic,
    status_topic,
    version_notice,
)
from protocols.pacing import RefreshPacer
from protocols.rulebook import open_members, open_rulebook
from simulators.ledger_session import SignedSession


@dataclass(frozen=True)
class FleetBroker:
    host: str
    port: int
    mall: str
    heartbeat: float = 15.0  # seconds between a terminal's status messages
    min_refresh: float = 5.0  # seconds a terminal leaves between two refreshes, as the gateway's default
    within: float = 60.0  # seconds the terminals may take to connect, or to hear of the last revision


@dataclass
class NewsCounts:
    """What the fleet's terminals did on MQTT's account."""

    refreshes: int = 0  # rulebook + member delta fetched and verified
    refresh_failures: int = 0
    members_fetched: int = 0  # member entries received in deltas
    refresh_seconds: list[float] = field(default_factory=list)  # each refresh's two requests, round trip


class TerminalNews:
    """One simulated terminal's MQTT link and its verified copy of the ledger's rules and members."""

    def __init__(
        self,
        terminal_id: str,
        broker: FleetBroker,
        session: SignedSession,
        counts: NewsCounts,
        status: dict[str, Any],
    ) -> None:
        self.terminal_id = terminal_id
        self.session, self.counts = session, counts
        self.status = status  # what the terminal reports: its outbox depth, offline or not (kept by the fleet)
        self.rulebook_version = -1
        self.members_version = 0
        self.members: dict[str, str] = {}  # member -> tier, as the terminal's cache holds them
        self.revocations_version = 0  # the revocation list's version last announced
        if session.ledger_key is None:
            raise FleetNewsError(f"{terminal_id} has no pinned ledger key (enrol it first)")
        self.key: Ed25519PublicKey = session.ledger_key
        self.pacer = RefreshPacer(broker.min_refresh, random.Random(terminal_id))
        self._kick = asyncio.Event()
        self.broker = broker
        self.connected = False
        self.topic = status_topic(broker.mall, terminal_id)

    def kick(self) -> None:
        """Refresh (paced), as a notice of something newer asks."""
        self._kick.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._link())
            tg.create_task(self._refresher())

    async def _link(self) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                await self._session()
            except (aiomqtt.MqttError, OSError):
                self.connected = False
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()

    async def _session(self) -> None:
        will = aiomqtt.Will(self.topic, encode({"online": False, "terminal_id": self.terminal_id}), qos=1, retain=True)
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=f"posgw-{self.broker.mall}-{self.terminal_id}",
            will=will,
            timeout=5.0,
        ) as client:
            mall = self.broker.mall
            for topic in (
                rulebook_topic(mall),
                members_topic(mall),
                revoked_topic(mall),
                command_topic(mall, self.terminal_id),
            ):
                await client.subscribe(topic, qos=1)
                raise_if_cancelled()
            self.connected = True
            heartbeat = asyncio.create_task(self._heartbeat(client), name=f"fleet-heartbeat-{self.terminal_id}")
            try:
                async for message in client.messages:
                    raise_if_cancelled()
                    payload = message.payload
                    self._hear(str(message.topic), payload if isinstance(payload, bytes) else str(payload).encode())
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await heartbeat
                with contextlib.suppress(aiomqtt.MqttError):  # stopped, not lost: said before the will would
                    stopped = {"online": False, "terminal_id": self.terminal_id, "reason": "stopped"}
                    await client.publish(self.topic, encode(stopped), qos=1, retain=True)
                self.connected = False

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        while True:
            body = {"online": True, "terminal_id": self.terminal_id, **self.status}
            await client.publish(self.topic, encode(body), qos=1, retain=True)
            raise_if_cancelled()
            await asyncio.sleep(self.broker.heartbeat)

    def _hear(self, topic: str, payload: bytes) -> None:
        mall = self.broker.mall
        try:
            if (topic == rulebook_topic(mall) and version_notice(payload) > self.rulebook_version) or (
                topic == members_topic(mall) and version_notice(payload) > self.members_version
            ):
                self.kick()
            elif topic == revoked_topic(mall):
                self.revocations_version = version_notice(payload)
            elif topic == command_topic(mall, self.terminal_id) and command(payload) == "refresh":
                self.kick()  # a sync command: the fleet's terminals sync on their own schedule
        except ProtocolError:  # a bad notice can at most cause a fetch; dropped
            pass

    async def _refresher(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(self.pacer.wait(time.monotonic()))
            self._kick.clear()  # notices that came while waiting are answered by this one refresh
            self.pacer.refreshed(time.monotonic())
            try:
                await self.refresh_once()
            # The ledger away, or what it sent refused (a signature, a schema): the next notice tries again.
            except (aiohttp.ClientError, TimeoutError, ValueError, GatewayError) as err:
                self.counts.refresh_failures += 1
                self.status["last_error"] = str(err)

    async def refresh_once(self) -> None:
        started = time.monotonic()
        status, envelope = await self.session.request("GET", "/v1/rulebook")
        if status != 200:
            raise FleetNewsError(f"the ledger answered {status} for the rulebook")
        status, members = await self.session.request("GET", "/v1/members", params={"since": str(self.members_version)})
        if status != 200:
            raise FleetNewsError(f"the ledger answered {status} for the members")
        self.counts.refresh_seconds.append(time.monotonic() - started)
        book, _ = open_rulebook(envelope, self.key)
        listing = open_members(members, self.key)
        version, entries = listing.version, listing.members
        self.rulebook_version = book.version
        self.members_version = max(self.members_version, version)
        self.members.update({m.member_id: m.tier for m in entries})
        self.counts.refreshes += 1
        self.counts.members_fetched += len(entries)


class FleetNewsError(GatewayError):
    """The ledger did not answer a simulated terminal's refresh."""

    code = "fleet-news"


def quiet_links() -> None:
    """Only warnings from the terminals' links: a fleet's info lines are hundreds of "connected"."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@contextlib.asynccontextmanager
async def on_mqtt(broker: FleetBroker, sessions: dict[str, SignedSession], statuses: dict[str, dict[str, Any]]) -> Any:
    """Every terminal of ``statuses`` on the broker while the block runs; yields their news and the counts."""
    counts = NewsCounts()
    news = [TerminalNews(t, broker, sessions[t], counts, status) for t, status in statuses.items()]
    tasks = [asyncio.create_task(n.run(), name=f"fleet-mqtt-{n.terminal_id}") for n in news]
    try:
        yield news, counts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # each link says "stopped" on its way down
