"""What a journal facet needs of the journal: a read on the reader thread, a write on the writer's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class JournalAccess(Protocol):
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the read connection (a snapshot; never blocks a write)."""
        ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next group commit (durable when it returns)."""
        ...
