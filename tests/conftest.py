"""Shared fixtures: real pseudo-terminals, real processes, throw-away tokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simulators.scanner import PtyScanner
from tests.harness import LedgerHandle


@pytest.fixture
def pty_scanner(tmp_path: Path) -> Iterator[PtyScanner]:
    scanner = PtyScanner(tmp_path / "scanner")
    scanner.plug()
    yield scanner
    scanner.unplug()


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("api", "ledger", "app")}


@pytest.fixture
async def ledger(tmp_path: Path, tokens: dict[str, str]) -> AsyncIterator[LedgerHandle]:
    """A real ``posgw-ledger`` process with the demo mall, on a free port."""
    handle = LedgerHandle(tmp_path / "ledger", tokens)
    await handle.start()
    yield handle
    handle.stop()
