from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import LedgerHandle


@pytest.fixture
async def ledger(tmp_path: Path, tokens: dict[str, str]) -> AsyncIterator[LedgerHandle]:
    handle = LedgerHandle(tmp_path / "ledger", tokens)
    await handle.start()
    yield handle
    handle.stop()
