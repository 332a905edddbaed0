"""The terminal's MQTT link: news from the ledger in, status out. Never in the way of a sale.

Subscribes to its mall's rulebook and member notices (retained, so a
terminal coming up hears the latest at once) and to its own command topic;
publishes its status (retained) at start, on every heartbeat and on the way
down, with a last will that marks it offline if it dies. A notice only makes
the terminal fetch over HTTP and verify as usual. When the broker is away
the link retries with backoff; sales, sync and refreshes go on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from gateway.clock import utc_now
from gateway.config import MqttConfig
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

log = structlog.get_logger("posgw.mqtt")


def raise_if_cancelled() -> None:
    """Raise the ``CancelledError`` a broker call swallowed, if the current task was asked to stop.

    On Python 3.11, ``asyncio.wait_for`` returns its result and drops the
    caller's cancellation when the awaited call completes in the same loop turn
    as the cancel (fixed in 3.12). aiomqtt waits for every SUBACK and PUBACK
    that way, so a link cancelled just as the broker answered carried on and
    waited for the next message forever: a gateway that never stopped (seen in
    the tests, one stop in two around a subscribe). Called after each such call.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class MqttState:
    connected: bool = False
    last_error: str | None = None
    messages_refused: int = 0  # dropped: not the protocol, or a reader failed on them


class MqttLink:
    def __init__(
        self,
        config: MqttConfig,
        terminal_id: str,
        status: Callable[[], Awaitable[dict[str, Any]]],
        versions: Callable[[], tuple[int, int]],
        refresh: Callable[[], None],
        sync: Callable[[], None],
        revoked: Callable[[int], None] = lambda version: None,
        refresh_now: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.terminal_id = terminal_id
        self.status = status  # what to publish as this terminal's status
        self.versions = versions  # (rulebook version, members version) this terminal holds
        self.refresh = refresh
        self.sync = sync
        self.revoked = revoked  # the revocation list's version announced: the signed list is fetched over HTTP
        self.refresh_now = refresh_now or refresh  # an operator's "refresh" command: not paced
        self.state = MqttState()
        self.status_topic = status_topic(config.mall, terminal_id)

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                await self._session()
            # The link may fail (a broker away, an account or certificate refused); the till never does.
            except (aiomqtt.MqttError, GatewayError, OSError) as err:
                self.state.connected, self.state.last_error = False, str(err)
                delay = backoff.next_delay()
                log.warning("mqtt_unavailable", error=str(err), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
            else:
                backoff.reset()

    async def _session(self) -> None:
        offline = encode({"online": False, "terminal_id": self.terminal_id, "reason": "connection lost"})
        will = aiomqtt.Will(self.status_topic, offline, qos=1, retain=True)
        async with aiomqtt.Client(
            self.config.host,
            self.config.port,
            # Per mall: a group's broker serves malls whose tills may share an id (T-0001 in each).
            identifier=f"posgw-{self.config.mall}-{self.terminal_id}",
            will=will,
            keepalive=self.config.keepalive,
            timeout=5.0,
            username=self.config.username,
            password=self.config.password or None,
            tls_context=ssl.create_default_context(cafile=self.config.ca_file) if self.config.tls else None,
        ) as client:
            for topic in (
                rulebook_topic(self.config.mall),
                members_topic(self.config.mall),
                revoked_topic(self.config.mall),
                command_topic(self.config.mall, self.terminal_id),
            ):
                await client.subscribe(topic, qos=1)
                raise_if_cancelled()
            # Connected means listening: a command sent once this says so is heard (commands are not retained).
            self.state.connected, self.state.last_error = True, None
            log.info("mqtt_connected", broker=f"{self.config.host}:{self.config.port}")
            heartbeat = asyncio.create_task(self._heartbeat(client), name="mqtt-heartbeat")
            try:
                async for message in client.messages:
                    raise_if_cancelled()
                    payload = message.payload
                    data = bytes(payload) if isinstance(payload, (bytes, bytearray)) else str(payload).encode()
                    self._handle(str(message.topic), data)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await heartbeat
                # On the way down (not a crash): say so ourselves rather than leave it to the will.
                with contextlib.suppress(aiomqtt.MqttError):
                    stopped = {"online": False, "terminal_id": self.terminal_id, "reason": "stopped", "at": utc_now()}
                    await client.publish(self.status_topic, encode(stopped), qos=1, retain=True)
                self.state.connected = False

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        while True:
            try:
                figures = await self.status()
            except GatewayError as err:  # the journal busy or closing: say what can be said
                figures = {"status_error": str(err)}
            body = {"online": True, "terminal_id": self.terminal_id, "at": utc_now(), **figures}
            await client.publish(self.status_topic, encode(body), qos=1, retain=True)
            raise_if_cancelled()
            await asyncio.sleep(self.config.heartbeat)

    def _handle(self, topic: str, payload: bytes) -> None:
        mall = self.config.mall
        try:
            if topic == rulebook_topic(mall):
                if version_notice(payload) > self.versions()[0]:
                    self.refresh()
            elif topic == members_topic(mall):
                if version_notice(payload) > self.versions()[1]:
                    self.refresh()
            elif topic == revoked_topic(mall):
                self.revoked(version_notice(payload))
            elif topic == command_topic(mall, self.terminal_id):
                what = command(payload)
                log.info("mqtt_command", command=what)
                (self.refresh_now if what == "refresh" else self.sync)()
        except ProtocolError as err:  # a bad message is logged and dropped: it can at most cause a fetch
            self.state.messages_refused += 1
            log.warning("mqtt_message_refused", topic=topic, error=str(err))
        except Exception:  # a reader's bug ends this one message, never the link or the daemon
            self.state.messages_refused += 1
            log.exception("mqtt_message_failed", topic=topic)
