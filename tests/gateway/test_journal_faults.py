"""A real full file system under the journal.

A small tmpfs is mounted for each test (root, or passwordless sudo, as on CI).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.errors import JournalFullError
from offline_queue.journal import TransactionJournal
from tests.gateway.records import draft

KEY = Ed25519PrivateKey.generate()


def _mount(*argv: str) -> None:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"cannot {' '.join(argv)}: {result.stderr.strip()} (these tests need root or sudo -n)")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    _mount("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount))
    try:
        yield mount
    finally:
        _mount("umount", "-l", str(mount))


async def test_a_really_full_disk_refuses_the_sale_and_keeps_the_rest(small_fs: Path) -> None:
    journal = TransactionJournal(small_fs / "journal.sqlite3", KEY)
    await journal.open()
    kept = []

    async def fill() -> None:
        for _ in range(100_000):  # until the file system says no
            record, _ = await journal.append(draft())
            kept.append(record)

    with pytest.raises(JournalFullError, match="storage is full"):
        await fill()
    assert len(kept) > 10
    assert [r.seq for r in await journal.pending(100_000)] == [r.seq for r in kept]
    assert await journal.verify() == []
    await journal.close()
    # After a restart (space still short), every acknowledged record is there.
    again = TransactionJournal(small_fs / "journal.sqlite3", KEY)
    await again.open()
    assert (await again.stats()).total == len(kept)
    await again.close()
