"""The status page in headless Chromium (Debian's): live state, and the offline state visible on a screenshot."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import aiohttp
import pytest

from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.ledger]

OFFLINE_RED = (0xD0, 0x1F, 0x1F)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--window-size=900,600", "--virtual-time-budget=5000"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=60, check=False)


def pixels(png: bytes) -> list[tuple[int, ...]]:
    """Every pixel's RGB of an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, width, height, colour = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos : pos + 4]), png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert depth == 8
            assert colour in (2, 6)
        elif kind == b"IDAT":
            chunks += data
        pos += 12 + length
    step = 4 if colour == 6 else 3
    raw, stride, out = zlib.decompress(chunks), width * step, []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, step)
        out += [tuple(line[i : i + 3]) for i in range(0, stride, step)]
        previous = line
    return out


def _unfilter(kind: int, line: bytearray, previous: bytearray, step: int) -> bytearray:
    for x in range(len(line)):
        a = line[x - step] if x >= step else 0
        b, c = previous[x], previous[x - step] if x >= step else 0
        p = a + b - c
        nearest = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]  # Paeth, ties to a, b, c
        line[x] = (line[x] + (0, a, b, (a + b) // 2, nearest)[kind]) & 0xFF
    return line


async def test_the_status_page_shows_the_till_live_and_the_offline_state(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (gw, pos):
        await pos.wait_status(lambda s: s["ledger"]["online"])
        url = f"http://127.0.0.1:{gw.port}/status"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert '"terminal_id": "T-TEST-01"' in await r.text()  # it arrives showing the state, before the socket
        online = await asyncio.to_thread(chromium, "--dump-dom", url)
        assert "Ledger: online" in online.stdout, online.stderr[-2000:]
        assert "T-TEST-01" in online.stdout

        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])
        offline = await asyncio.to_thread(chromium, "--dump-dom", url)
        assert "Ledger: OFFLINE" in offline.stdout
        assert "unreachable" in offline.stdout  # the sync failure is among the recent errors
        shot = tmp_path / "offline.png"
        await asyncio.to_thread(chromium, f"--screenshot={shot}", url)
        red = sum(1 for p in pixels(shot.read_bytes()) if p == OFFLINE_RED)
        assert red > 10_000  # the red offline banner is really on screen
        await ledger.start()
