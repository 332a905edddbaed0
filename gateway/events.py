"""Fan-out of events to the POS application's WebSocket connections.

Each subscriber has a bounded queue. A subscriber that stops reading is cut
off (its queue closed with an ``overflow`` event) rather than letting memory
grow or slowing the till; the POS app reconnects and re-reads the basket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from protocols.errors import RetryableError

QUEUE_SIZE = 1000
MAX_SUBSCRIBERS = 32  # event streams at once: a flood of connections gets a clear refusal, memory stays bounded
Event = dict[str, Any]


class TooManySubscribersError(RetryableError):
    """Every event stream slot is taken."""

    code = "too-many-streams"


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        # Called with every event, in the publisher's call (metrics): must be quick and never raise.
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event_type: str, **fields: Any) -> None:
        event: Event = {"type": event_type, "at": time.time(), **fields}
        for listener in self.listeners:
            listener(event)
        for queue in list(self._subscribers):
            if queue.qsize() >= QUEUE_SIZE:
                self._subscribers.discard(queue)
                queue.put_nowait({"type": "overflow", "at": time.time()})
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def check_room(self) -> None:
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise TooManySubscribersError(
                f"{MAX_SUBSCRIBERS} event streams are open already; close one (or reconnect later)"
            )

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event | None]]:
        self.check_room()
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE + 2)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """Tell every subscriber the stream has ended."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()
