"""Real disk faults under the journal.

A full disk: a small tmpfs is mounted for each test (root, or passwordless
sudo, as on CI). An I/O error: fsync made to fail with EIO by a small
LD_PRELOAD library (tests/faults/fail_fsync.c, built with gcc here), in a
child process, while a flag file exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.errors import JournalFullError
from offline_queue.journal import TransactionJournal
from tests.gateway.records import draft

KEY = Ed25519PrivateKey.generate()
FAULTS = Path(__file__).resolve().parents[1] / "faults"
ROOT = FAULTS.parents[1]


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
    assert [r.seq for r in await journal.outbox.pending(100_000)] == [r.seq for r in kept]
    assert await journal.verify() == []
    await journal.close()
    # After a restart (space still short), every acknowledged record is there.
    again = TransactionJournal(small_fs / "journal.sqlite3", KEY)
    await again.open()
    assert (await again.stats()).total == len(kept)
    await again.close()


@pytest.fixture(scope="module")
def fail_fsync(tmp_path_factory: pytest.TempPathFactory) -> Path:
    library = tmp_path_factory.mktemp("faults") / "fail_fsync.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(FAULTS / "fail_fsync.c"), "-ldl"], check=True
    )
    return library


def _run_with_failing_fsync(path: Path, flag: Path, library: Path) -> dict[str, Any]:
    env = {**os.environ, "LD_PRELOAD": str(library), "POSGW_FAIL_FSYNC": str(flag), "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-m", "tests.faults.eio_child", str(path), KEY.private_bytes_raw().hex(), str(flag)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    outcome: dict[str, Any] = json.loads(child.stdout)
    return outcome


async def test_an_io_error_refuses_that_sale_alone_and_the_journal_carries_on(tmp_path: Path, fail_fsync: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    outcome = _run_with_failing_fsync(path, tmp_path / "disk-failing", fail_fsync)
    # The cashier was told, in words, that this sale is not recorded.
    assert outcome["failed"]["type"] == "JournalError", outcome
    assert "could not be recorded" in outcome["failed"]["message"]
    assert "disk I/O error" in outcome["failed"]["message"]
    # Every acknowledged sale is on disk, in order, chained; the refused one is not.
    journal = TransactionJournal(path, KEY)
    await journal.open()
    kept = await journal.outbox.pending(100)
    assert [r.txn_id for r in kept] == outcome["acknowledged"]
    assert [r.seq for r in kept] == [1, 2, 3, 4, 5]
    assert await journal.get(outcome["failed"]["txn_id"]) is None
    assert await journal.verify() == []
    await journal.close()


def test_the_fault_library_really_fails_fsync(tmp_path: Path, fail_fsync: Path) -> None:
    """The fault is real at the system-call boundary, not a Python stand-in."""
    flag = tmp_path / "on"
    flag.touch()
    probe = "import os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); os.fsync(fd)"
    env = {**os.environ, "LD_PRELOAD": str(fail_fsync), "POSGW_FAIL_FSYNC": str(flag)}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "f")], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode != 0
    assert "Input/output error" in result.stderr
    flag.unlink()
    healthy = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "f")], env=env, check=False)
    assert healthy.returncode == 0
