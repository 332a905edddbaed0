"""The ledger's side of MQTT: announce rulebook and member revisions to the mall's terminals.

Notices are retained, so a terminal that connects later hears the latest at
once. Publishing happens on its own task with a queue: a broker that is down
delays news, never an ingest (terminals also refresh on their own timer).
"""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
import structlog

from protocols.backoff import Backoff
from protocols.mqtt_topics import command_topic, encode, members_topic, revoked_topic, rulebook_topic

log = structlog.get_logger("posgw.ledger.mqtt")


class NoticePublisher:
    def __init__(self, host: str, port: int, mall: str) -> None:
        self.host, self.port, self.mall = host, port, mall
        self._latest: dict[str, bytes] = {}  # topic -> retained payload still to publish
        self._wake = asyncio.Event()

    def rulebook(self, version: int) -> None:
        self._announce(rulebook_topic(self.mall), version)

    def members(self, version: int) -> None:
        self._announce(members_topic(self.mall), version)

    def revoked(self, instances: list[str]) -> None:
        self._latest[revoked_topic(self.mall)] = encode({"instances": instances})
        self._wake.set()

    def _announce(self, topic: str, version: int) -> None:
        self._latest[topic] = encode({"version": version})  # only the newest of each matters
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"posgw-ledger-{self.mall}") as client:
                    backoff.reset()
                    while True:
                        await self._wake.wait()
                        self._wake.clear()
                        while self._latest:
                            topic, payload = self._latest.popitem()
                            try:
                                await client.publish(topic, payload, qos=1, retain=True)
                            except aiomqtt.MqttError:
                                self._latest.setdefault(topic, payload)  # sent again after reconnecting
                                raise
            except aiomqtt.MqttError as err:
                self._wake.set()  # whatever is pending goes out after reconnecting
                delay = backoff.next_delay()
                log.warning("mqtt_unavailable", error=str(err), retry_in=round(delay, 2))
                await asyncio.sleep(delay)


async def send_command(host: str, port: int, mall: str, terminal_id: str, name: str) -> None:
    """An operator's command to one terminal (``posgw-ledger command``)."""
    async with aiomqtt.Client(host, port, identifier=f"posgw-ledger-cmd-{terminal_id}") as client:
        await client.publish(command_topic(mall, terminal_id), encode({"command": name}), qos=1)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.1)  # let the broker take it before disconnecting
