"""Member cards on PC/SC readers (contact or contactless), through pcscd and pyscard.

pyscard blocks, so every PC/SC call runs on this device's own worker thread;
the event loop only awaits it. One ``SCardGetStatusChange`` watches every
reader plus the PnP pseudo-reader, so cards, readers appearing and vanishing,
and pcscd itself going away are all noticed. When a card arrives the driver
reads it at once (SELECT, record, INTERNAL AUTHENTICATE with a fresh random
challenge, or the UID as a fallback) and emits a :class:`CardEvent`. The
gateway verifies the reading; a driver never decides who a member is.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from drivers.errors import DeviceUnavailableError
from drivers.events import CardEvent, CardEventKind, DriverEvent, ReaderEvent
from drivers.pcsc_api import PNP_READER, STATE_PRESENT, STATE_UNAWARE, PcscContext, ReaderState
from protocols.errors import GatewayError
from protocols.member_card import CHALLENGE_LENGTH, read_card
from protocols.schema import Fields

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PcscOptions:
    readers: tuple[str, ...] = ()  # substrings of reader names to use; empty: every reader
    wait_timeout: float = 1.0  # seconds per blocking wait; bounds how fast a stop is noticed


class PcscCardReader:
    kind = "card-reader"

    def __init__(self, name: str, options: PcscOptions) -> None:
        self.name = name
        self.options = options
        self._executor: ThreadPoolExecutor | None = None
        self._ctx: PcscContext | None = None

    @classmethod
    def from_options(cls, name: str, options: Fields) -> PcscCardReader:
        return cls(
            name,
            PcscOptions(
                readers=tuple(options.texts("readers")),
                wait_timeout=options.number("wait_timeout", 1.0, minimum=0.05, maximum=30),
            ),
        )

    async def _call(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None, "device not opened"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pcsc-{self.name}")
        try:
            self._ctx = await self._call(PcscContext)
        except GatewayError:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ctx, executor = self._ctx, self._executor
        self._ctx = self._executor = None
        if ctx is not None:
            ctx.cancel()  # wake the worker if it is blocked waiting for a card
        if executor is not None:
            if ctx is not None:
                executor.submit(ctx.release)
            executor.shutdown(wait=False)

    def _wanted(self, reader: str) -> bool:
        return reader != PNP_READER and (not self.options.readers or any(f in reader for f in self.options.readers))

    async def events(self) -> AsyncIterator[DriverEvent]:
        ctx = self._ctx
        if ctx is None:
            raise DeviceUnavailableError("card reader not opened")
        timeout_ms = int(self.options.wait_timeout * 1000)
        known: dict[str, ReaderState] = {}
        pnp = ReaderState(PNP_READER, STATE_UNAWARE, b"")
        refresh = True
        while True:
            if refresh:
                names = [r for r in await self._call(ctx.readers) if self._wanted(r)]
                for gone in [r for r in known if r not in names]:
                    del known[gone]
                    yield ReaderEvent(self.name, gone, present=False)
                for new in [r for r in names if r not in known]:
                    known[new] = ReaderState(new, STATE_UNAWARE, b"")
                    yield ReaderEvent(self.name, new, present=True)
                refresh = False
            changed = await self._call(functools.partial(ctx.wait, [pnp, *known.values()], timeout_ms))
            if changed is None:
                continue
            for state in changed:
                if state.reader == PNP_READER:
                    refresh = refresh or (state.state >> 16) != (pnp.state >> 16)
                    pnp = state
                    continue
                before = known.get(state.reader)
                if before is None:
                    continue
                known[state.reader] = state
                was, now = bool(before.state & STATE_PRESENT), bool(state.state & STATE_PRESENT)
                if now and not was:
                    yield await self._read(ctx, state)
                elif was and not now:
                    yield CardEvent(self.name, state.reader, CardEventKind.REMOVED, time.time())

    async def _read(self, ctx: PcscContext, state: ReaderState) -> CardEvent:
        challenge = os.urandom(CHALLENGE_LENGTH)
        spent = 0.0

        def read() -> CardEvent:
            nonlocal spent
            t0 = time.perf_counter()
            card = ctx.connect(state.reader)
            spent += time.perf_counter() - t0

            def send(command: bytes) -> bytes:
                nonlocal spent
                t = time.perf_counter()
                try:
                    return card.transmit(command)
                finally:
                    spent += time.perf_counter() - t

            try:
                reading = read_card(send, challenge)
            finally:
                t = time.perf_counter()
                card.disconnect()
                spent += time.perf_counter() - t
            return CardEvent(
                self.name, state.reader, CardEventKind.INSERTED, time.time(), state.atr, reading, pcsc_seconds=spent
            )

        try:
            return await self._call(read)
        except GatewayError as err:
            if err.code == "pcsc-service-lost":
                raise
            return CardEvent(
                self.name,
                state.reader,
                CardEventKind.ERROR,
                time.time(),
                state.atr,
                error=str(err),
                error_code=err.code,
                pcsc_seconds=spent,
            )
