"""Whether the till takes new work, and the completions under way (drained at shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.errors import DrainingError


class Intake:
    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Refuses work while the till needs a cashier signed in and a shift open and lacks one (``gateway/staff``).
        self.on_duty: Callable[[], None] = lambda: None

    def refuse_if_draining(self, what: str) -> None:
        """``what``: the refusal's end, e.g. "starts no new baskets"."""
        if self.draining:
            raise DrainingError(f"the gateway is shutting down and {what}")

    @contextmanager
    def working(self) -> Iterator[None]:
        """A completion under way: shutdown waits for it."""
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no completion is in progress."""
        await self._idle.wait()
