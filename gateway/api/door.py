"""The local API's door: how many connections it lets in, and how long one may stand there silent.

Any local process may open a TCP connection without a token. A flood of
half-open connections must not use up the daemon's file descriptors (the
journal, the member cache and the card reader need theirs), so the door
counts: past ``max_connections`` the oldest connection that has not yet
said a word is closed to let the new one in (a POS app speaks the moment
it connects; a flood's connections never do), and when every connection
is talking, a new one gets a one-line ``503`` and is closed at once. A
connection that has not sent its first byte within ``first_byte_timeout``
is closed. The limit never exceeds what the
process's descriptor limit leaves room for (:func:`connection_budget`).
Idle keep-alive between requests is aiohttp's ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

log = structlog.get_logger("posgw.api")

RESERVED_FDS = 128  # kept back for the journal, caches, devices, the ledger and the broker
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"


def raise_fd_limit(wanted: int = 65536) -> int:
    """Lift the soft descriptor limit towards the hard one (many systems start at 1,024); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:  # a container may forbid it: the budget below adapts
            log.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(err))
    return int(soft) if soft != resource.RLIM_INFINITY else wanted


def connection_budget(configured: int, fd_limit: int) -> int:
    """The connections the door lets in: as configured, but never more than half of what the descriptor
    limit leaves after :data:`RESERVED_FDS`."""
    return max(4, min(configured, (fd_limit - RESERVED_FDS) // 2))


@dataclass
class DoorCounts:
    open: int = 0  # let in and not yet gone (counted when let in: asyncio connects them a moment later)
    refused: int = 0  # past the limit, every connection talking
    silent: int = 0  # closed for sending nothing in time
    evicted: int = 0  # silent, closed to let a newer one in


class Door:
    """A protocol factory in front of aiohttp's: counts connections and closes the excess and the silent."""

    def __init__(self, inner: Callable[[], asyncio.Protocol], max_connections: int, first_byte_timeout: float) -> None:
        self.inner = inner
        self.max_connections = max_connections
        self.first_byte_timeout = first_byte_timeout
        self.counts = DoorCounts()
        self.silent: OrderedDict[_Counted, None] = OrderedDict()  # let in, not a byte yet; oldest first

    def __call__(self) -> asyncio.Protocol:
        if self.counts.open >= self.max_connections:
            if not self.silent:
                self.counts.refused += 1
                log.warning("api_connection_refused", open=self.counts.open, limit=self.max_connections)
                return _Refused()
            oldest, _ = self.silent.popitem(last=False)
            self.counts.evicted += 1
            log.warning("api_silent_connection_dropped", open=self.counts.open, limit=self.max_connections)
            oldest.close()
        conn = _Counted(self, self.inner())
        self.counts.open += 1
        self.silent[conn] = None
        return conn


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_REFUSAL)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's protocol, with the door's count and first-byte timer around it."""

    def __init__(self, door: Door, inner: asyncio.Protocol) -> None:
        self.door, self.inner = door, inner
        # From the moment it is let in: one whose accept then fails is never connected, and must not stay counted.
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            door.first_byte_timeout, self._silent
        )
        self._transport: asyncio.BaseTransport | None = None
        self._closing = False
        self._gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.inner.connection_made(transport)
        if self._closing:  # evicted before it was even connected
            transport.close()

    def _silent(self) -> None:
        self.door.counts.silent += 1
        if self._transport is None and not self._gone:  # never connected: nothing else will uncount it
            self._gone = True
            self.door.counts.open -= 1
        self.close()

    def close(self) -> None:
        self._spoke()
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _spoke(self) -> None:
        self.door.silent.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._spoke()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._gone:
            self._gone = True
            self.door.counts.open -= 1
        self._spoke()
        self.inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections come in through a :class:`Door`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, max_connections: int, first_byte_timeout: float
    ) -> None:
        super().__init__(runner)
        self.host, self.port = host, port
        self.max_connections, self.first_byte_timeout = max_connections, first_byte_timeout
        self.door: Door | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self.door = Door(server, self.max_connections, self.first_byte_timeout)
        self._server = await asyncio.get_running_loop().create_server(self.door, self.host, self.port)
