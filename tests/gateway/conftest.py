"""Fixtures for the gateway's in-process tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.journal import TransactionJournal


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[TransactionJournal]:
    """A journal file in ``tmp_path``, open, with a fresh key; closed after the test."""
    journal = TransactionJournal(tmp_path / "journal.db", Ed25519PrivateKey.generate())
    await journal.open()
    yield journal
    await journal.close()
