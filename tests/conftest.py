"""Shared fixtures: real pseudo-terminals, real processes, throw-away tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.scanner import PtyScanner


@pytest.fixture
def pty_scanner(tmp_path: Path) -> Iterator[PtyScanner]:
    scanner = PtyScanner(tmp_path / "scanner")
    scanner.plug()
    yield scanner
    scanner.unplug()


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("api", "ledger", "app")}
