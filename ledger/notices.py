"""The ledger's side of MQTT: announce rulebook and member revisions to the mall's terminals.

Notices are retained, so a terminal that connects later hears the latest at
once. Publishing happens on its own task with a queue: a broker that is down
delays news, never an ingest (terminals also refresh on their own timer).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from protocols.backoff import Backoff
from protocols.mqtt_topics import alerts_topic, command_topic, encode, members_topic, revoked_topic, rulebook_topic

log = structlog.get_logger("posgw.ledger.mqtt")


def raise_if_cancelled() -> None:
    """A stop that a PUBACK arriving at the same moment swallowed (Python 3.11; gateway/ledger_link/mqtt.py)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True)
class Broker:
    """How the ledger reaches the broker: address, its own account, TLS."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # TLS, the broker's certificate checked against this CA
    tls: bool = False  # TLS against the system's CAs

    def client(self, identifier: str) -> aiomqtt.Client:
        tls = ssl.create_default_context(cafile=self.ca_file) if (self.tls or self.ca_file) else None
        return aiomqtt.Client(
            self.host, self.port, identifier=identifier, username=self.username, password=self.password, tls_context=tls
        )


def add_broker_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--mqtt", metavar="HOST:PORT", default=default, help="the MQTT broker")
    parser.add_argument("--mqtt-user", metavar="NAME", help="the ledger's broker account")
    parser.add_argument(
        "--mqtt-password-file", type=Path, metavar="FILE", help="its password (or $POSGW_LEDGER_MQTT_PASSWORD)"
    )
    parser.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="TLS to the broker, checked against this CA")
    parser.add_argument("--mqtt-tls", action="store_true", help="TLS to the broker, checked against the system's CAs")
    parser.add_argument("--mall", default="demo", help="the mall's id in MQTT topics (default: demo)")


def broker_from(args: Any) -> Broker:
    """The broker options as given; an unreadable password or CA file raises OSError (the CLI reports it)."""
    host, _, port = str(args.mqtt).rpartition(":")
    password = os.environ.get("POSGW_LEDGER_MQTT_PASSWORD") or None
    if args.mqtt_password_file is not None:
        password = args.mqtt_password_file.read_text().strip()
    if args.mqtt_ca is not None and not args.mqtt_ca.is_file():
        raise FileNotFoundError(f"--mqtt-ca {args.mqtt_ca}: no such file")
    return Broker(host, int(port), args.mqtt_user, password, args.mqtt_ca, args.mqtt_tls)


MEMBERS_EVERY = 1.0  # seconds between two member-revision notices (see NoticePublisher)
ALERTS_PENDING = 1000  # alerts kept while the broker is away; each is in the books and the log anyway


class NoticePublisher:
    """Publishes the newest of each notice, retained.

    Member revisions change with nearly every batch, and every notice goes to
    every terminal of the mall: announced per batch, a busy mall's broker would
    carry batches × terminals messages a second (500 terminals syncing a sale
    each every half second: 200,000/s, measured to take the fleet's own
    throughput from 850 to under 400 records/s). So a member revision is
    announced at most every ``members_every`` seconds, the newest one then;
    rulebooks and revocations go at once. Alerts (not retained) go at once,
    each of them, oldest first.

    Of several ledger nodes, only the one whose ``announcing`` is set (the
    holder of the ``notices`` lease, ``ledger/duties.py``) announces versions,
    and each version goes once, never after a newer one; every node sends its
    own alerts, under a broker session of its own (``node`` in the client id).
    """

    def __init__(self, broker: Broker, mall: str, members_every: float = MEMBERS_EVERY, node: str = "") -> None:
        self.broker, self.mall = broker, mall
        self.members_every = members_every
        self.node = node
        self.announcing = True  # set by the node's duties: whether this node announces the versions
        self.news_due = asyncio.Event()  # set when a batch changed members: the duties read the revision soon
        self._announced: dict[str, int] = {}  # topic -> the newest version taken for publishing
        self._latest: dict[str, bytes] = {}  # topic -> retained payload still to publish
        self._wake = asyncio.Event()
        self._members_next = 0.0  # loop time before which no member notice goes out
        self._alerts: collections.deque[bytes] = collections.deque(maxlen=ALERTS_PENDING)
        self.published = 0  # notices sent (for the tests and the bench)

    def rulebook(self, version: int) -> None:
        self._announce(rulebook_topic(self.mall), version)

    def members(self, version: int) -> None:
        self._announce(members_topic(self.mall), version)

    def revoked(self, version: int) -> None:
        """The revocation list's version: terminals fetch the signed delta over HTTP (``protocols/revocations.py``)."""
        self._announce(revoked_topic(self.mall), version)

    def alert(self, payload: dict[str, Any]) -> None:
        """Tell the mall's operators (``posgw/<mall>/alerts``); kept until the broker takes it."""
        self._alerts.append(encode(payload))
        self._wake.set()

    def _announce(self, topic: str, version: int) -> None:
        if not self.announcing or version <= self._announced.get(topic, -1):
            return  # another node announces; or this version (or a newer one) went already
        self._announced[topic] = version
        self._latest[topic] = encode({"version": version})  # only the newest of each matters
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                name = f"posgw-ledger-{self.mall}" + (f"-{self.node}" if self.node else "")
                async with self.broker.client(name) as client:
                    backoff.reset()
                    while True:
                        await self._wake.wait()
                        self._wake.clear()
                        await self._publish_due(client)
            except (aiomqtt.MqttError, OSError) as err:  # OSError: the CA file unreadable since start
                self._wake.set()  # whatever is pending goes out after reconnecting
                delay = backoff.next_delay()
                log.warning("mqtt_unavailable", error=str(err), retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    async def _publish_due(self, client: aiomqtt.Client) -> None:
        """Everything pending, member notices no sooner than their pace allows."""
        loop = asyncio.get_running_loop()
        members = members_topic(self.mall)
        while self._alerts:
            await client.publish(alerts_topic(self.mall), self._alerts[0], qos=1)
            self._alerts.popleft()  # only once the broker has it
            self.published += 1
            raise_if_cancelled()
        while self._latest:
            if set(self._latest) == {members} and (wait := self._members_next - loop.time()) > 0:
                await asyncio.sleep(wait)  # whatever arrives meanwhile replaces it: the newest goes
                continue
            topic = next((t for t in self._latest if t != members), members)
            payload = self._latest.pop(topic)
            try:
                await client.publish(topic, payload, qos=1, retain=True)
            except aiomqtt.MqttError:
                self._latest.setdefault(topic, payload)  # sent again after reconnecting
                raise
            self.published += 1
            raise_if_cancelled()
            if topic == members:
                self._members_next = loop.time() + self.members_every


async def send_command(broker: Broker, mall: str, terminal_id: str, name: str) -> None:
    """An operator's command to one terminal (``posgw-ledger command``)."""
    async with broker.client(f"posgw-ledger-cmd-{mall}-{terminal_id}") as client:
        await client.publish(command_topic(mall, terminal_id), encode({"command": name}), qos=1)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.1)  # let the broker take it before disconnecting
