"""``posgw-sim card`` as a process, read through the real pcscd by the real driver."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from drivers.events import CardEvent, CardEventKind
from drivers.pcsc_reader import PcscCardReader, PcscOptions
from tests.pcsc import READER_0, wait_readers_empty

pytestmark = [pytest.mark.pcsc, pytest.mark.usefixtures("pcscd")]


async def test_card_simulator_inserts_and_removes_on_command(tmp_path: Path, issuer_key: Ed25519PrivateKey) -> None:
    key_file = tmp_path / "issuer.key"
    key_file.write_bytes(issuer_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.cli",
        "card",
        "--issuer-key",
        str(key_file),
        "--number",
        "8600000555",
        "--stdin",
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        async with PcscCardReader("cards", PcscOptions(readers=(READER_0,), wait_timeout=0.3)) as reader:
            events = reader.events()
            await asyncio.wait_for(anext(events), 5)  # the reader
            proc.stdin.write(b"insert\n")
            await proc.stdin.drain()
            inserted = await asyncio.wait_for(anext(events), 10)
            assert isinstance(inserted, CardEvent)
            assert inserted.reading is not None
            assert inserted.reading.identifier == "card:8600000555"
            proc.stdin.write(b"remove\n")
            await proc.stdin.drain()
            removed = await asyncio.wait_for(anext(events), 10)
            assert isinstance(removed, CardEvent)
            assert removed.kind is CardEventKind.REMOVED
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        wait_readers_empty()


async def test_card_simulator_explains_a_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "issuer.key"
    bad.write_text("not a key")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.cli", "card", "--issuer-key", str(bad), stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"cannot use issuer key" in err
