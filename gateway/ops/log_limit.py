"""Logs that cannot drown the till: a budget per event kind, and writes that never raise.

A fault that repeats (a flood of connections, a disk that refuses every
write, a device unplugged in a loop) would otherwise write the same line
thousands of times a second and fill the disk the journal needs. Each
event kind may write ``burst`` lines per ``window`` seconds; the rest are
counted, and the first line of the next window says how many were dropped
(``suppressed``). The same budget applies to the standard library's loggers
(asyncio, aiohttp), keyed by logger and message template.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

MAX_KINDS = 2_000  # event kinds remembered at once (the oldest are forgotten first)


@dataclass
class _Window:
    start: float
    lines: int = 0
    dropped: int = 0


class LogBudget:
    """``burst`` lines per event kind per ``window`` seconds."""

    def __init__(self, burst: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.window, self.clock = burst, window, clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.dropped_total = 0

    def admit(self, kind: str) -> int | None:
        """None: drop this line. Else how many lines of this kind were dropped just before it (often 0)."""
        now = self.clock()
        w = self._windows.get(kind)
        if w is None or now - w.start >= self.window:
            dropped = w.dropped if w is not None else 0
            self._windows[kind] = _Window(now, 1)
            self._windows.move_to_end(kind)
            while len(self._windows) > MAX_KINDS:
                self._windows.popitem(last=False)
            return dropped
        if w.lines < self.burst:
            w.lines += 1
            return 0
        w.dropped += 1
        self.dropped_total += 1
        return None

    def processor(self, _logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: drops a line over budget; notes ``suppressed`` on the next one let through."""
        dropped = self.admit(str(event.get("event", "")))
        if dropped is None:
            raise structlog.DropEvent
        if dropped:
            event["suppressed"] = dropped
        return event


class BudgetFilter(logging.Filter):
    """The same budget for the standard library's records."""

    def __init__(self, budget: LogBudget) -> None:
        super().__init__()
        self.budget = budget

    def filter(self, record: logging.LogRecord) -> bool:
        dropped = self.budget.admit(f"{record.name}:{record.msg}")
        if dropped:
            record.msg = f"{record.msg} ({dropped} like this suppressed)"
        return dropped is not None


class SafeStream:
    """A stream whose write errors (a full disk under the log file, a closed pipe) are counted, never raised:
    a log line that cannot be written must not fail the sale that logged it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lost = 0

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except (OSError, ValueError):
            self.lost += 1
            return 0

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.lost += 1

    def isatty(self) -> bool:
        return self.stream.isatty()
