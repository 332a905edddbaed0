"""``posgw-sim scanner`` as a process, read by the real serial driver."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from drivers.events import ScanEvent
from drivers.serial_scanner import SerialScanner, SerialScannerOptions

pytestmark = pytest.mark.pty


async def test_simulator_sends_codes_from_arguments_file_and_stdin(tmp_path: Path) -> None:
    link = tmp_path / "scanner"
    codes = tmp_path / "codes.txt"
    codes.write_text("96385074\n\n036000291452\n")
    argv = ["-m", "simulators.cli", "scanner", "--link", str(link), "--aim", "]E0", "--delay", "0.5"]
    argv += ["--interval", "0.01", "--file", str(codes), "--stdin", "6901234567892"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        assert (await proc.stderr.readline()).startswith(b"scanner plugged in at")
        async with SerialScanner("s", SerialScannerOptions(port=str(link), aim=True)) as dev:
            proc.stdin.write(b"PM1.x.y\n")
            await proc.stdin.drain()
            got: list[str] = []

            async def take() -> None:
                async for ev in dev.events():
                    assert isinstance(ev, ScanEvent)
                    got.append(ev.data)
                    if len(got) == 4:
                        return

            await asyncio.wait_for(take(), 10)
        assert got == ["6901234567892", "96385074", "036000291452", "PM1.x.y"]
    finally:
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert not link.exists()  # unplugged on exit
