"""Scan → WebSocket latency, beside a raw pty round trip measured in the same run.

The gateway figure runs from the write of a frame (one ``write``, so its last
byte) to the scanner's pseudo-terminal until the classified ``scan`` event is
read off the WebSocket: kernel pty, serial driver, framing, classification,
event hub, WebSocket, across two processes. The peer is the floor of the
hardware path: the same frame written to a pty and read back from its other
side in this process, timed the same way.
"""

from __future__ import annotations

import os
import time
import tty
from typing import Any

from bench.environment import BenchRig
from bench.stats import summary


def raw_pty_round_trip(n: int, frame: bytes) -> list[float]:
    master, slave = os.openpty()
    tty.setraw(slave)
    samples = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(master, frame)
            got = b""
            while not got.endswith(b"\r\n"):
                got += os.read(slave, 256)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(master)
        os.close(slave)
    return samples


async def gateway_scan_to_ws(rig: BenchRig, n: int, code: str) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        rig.scanner.send(code, aim="]E0")
        event = await rig.pos.next_event("scan")
        samples.append(time.perf_counter() - t0)
        assert event["kind"] == "product"
    return samples


async def run(rig: BenchRig, n: int = 1000) -> dict[str, Any]:
    code = "6901234567892"
    frame = b"]E0" + code.encode() + b"\r\n"
    await rig.pos.connect_events()
    await gateway_scan_to_ws(rig, 50, code)  # warm up
    gateway = summary(await gateway_scan_to_ws(rig, n, code))
    raw = summary(raw_pty_round_trip(n, frame))
    return {"gateway_scan_to_ws": gateway, "raw_pty_round_trip": raw, "ratio_p50": gateway["p50_ms"] / raw["p50_ms"]}
