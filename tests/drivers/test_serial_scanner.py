"""The serial scanner driver against a scanner on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import random
from importlib.metadata import EntryPoint

import pytest

from drivers.errors import DeviceLostError, DeviceUnavailableError, DriverLoadError, DriverNotFoundError
from drivers.events import DeviceState, DeviceStatus, DriverEvent, ScanEvent, ScanRejected
from drivers.registry import DriverRegistry
from drivers.serial_scanner import SerialScanner, SerialScannerOptions
from drivers.supervisor import DeviceSupervisor
from protocols.backoff import Backoff
from protocols.schema import Fields, Problems
from simulators.scanner import PtyScanner

pytestmark = pytest.mark.pty


def scanner_for(pty: PtyScanner, **opts: object) -> SerialScanner:
    return SerialScanner("scanner", SerialScannerOptions(port=str(pty.link), **opts))  # type: ignore[arg-type]


async def collect(it: object, n: int, within: float = 5.0) -> list[DriverEvent]:
    out: list[DriverEvent] = []

    async def take() -> None:
        async for ev in it:  # type: ignore[attr-defined]
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(take(), within)
    return out


async def test_codes_arrive_as_scan_events(pty_scanner: PtyScanner) -> None:
    async with scanner_for(pty_scanner, aim=True) as dev:
        pty_scanner.send("6901234567892", aim="]E0")
        pty_scanner.send("PM1.a.b", aim="]Q1")
        events = await collect(dev.events(), 2)
    assert [(e.data, e.symbology) for e in events if isinstance(e, ScanEvent)] == [
        ("6901234567892", "ean-upc"),
        ("PM1.a.b", "qr"),
    ]


async def test_one_byte_at_a_time(pty_scanner: PtyScanner) -> None:
    async with scanner_for(pty_scanner) as dev:
        await asyncio.to_thread(pty_scanner.send, "96385074", chunk=1, gap=0.002)
        (event,) = await collect(dev.events(), 1)
    assert isinstance(event, ScanEvent)
    assert event.data == "96385074"


async def test_garbage_is_rejected_and_the_next_code_still_arrives(pty_scanner: PtyScanner) -> None:
    async with scanner_for(pty_scanner) as dev:
        pty_scanner.send_raw(b"\x00\x13\xfe\xff\r\n")
        pty_scanner.send("6901234567892")
        rejected, scanned = await collect(dev.events(), 2)
    assert isinstance(rejected, ScanRejected)
    assert rejected.reason == "non-printable bytes in frame"
    assert isinstance(scanned, ScanEvent)
    assert scanned.data == "6901234567892"


async def test_a_partial_frame_left_idle_is_discarded(pty_scanner: PtyScanner) -> None:
    async with scanner_for(pty_scanner, idle_flush=0.1) as dev:
        pty_scanner.send_raw(b"690123")
        await asyncio.sleep(0.3)
        pty_scanner.send("OK")
        rejected, scanned = await collect(dev.events(), 2)
    assert isinstance(rejected, ScanRejected)
    assert rejected.reason.startswith("incomplete frame")
    assert isinstance(scanned, ScanEvent)
    assert scanned.data == "OK"


async def test_scanner_vanishing_mid_frame_reports_the_loss(pty_scanner: PtyScanner) -> None:
    async with scanner_for(pty_scanner) as dev:
        pty_scanner.send_raw(b"6901")
        await asyncio.sleep(0.05)
        pty_scanner.unplug()
        seen: list[DriverEvent] = []

        async def drain() -> None:
            async for ev in dev.events():
                seen.append(ev)  # noqa: PERF401 - keep what came before the loss

        with pytest.raises(DeviceLostError, match="went away"):
            await drain()
    assert [type(e) for e in seen] == [ScanRejected]


async def test_opening_a_missing_port_is_a_typed_error(tmp_path: object) -> None:
    dev = SerialScanner("scanner", SerialScannerOptions(port="/nonexistent/tty"))
    with pytest.raises(DeviceUnavailableError, match="cannot open /nonexistent/tty"):
        async with dev:
            pass


async def test_supervisor_recovers_from_unplug_and_replug(pty_scanner: PtyScanner) -> None:
    seen: list[DriverEvent | DeviceStatus] = []
    got = asyncio.Event()

    def publish(ev: DriverEvent | DeviceStatus) -> None:
        seen.append(ev)
        got.set()

    async def wait_for(pred: object, within: float = 5.0) -> None:
        async def loop() -> None:
            while not any(pred(e) for e in seen):  # type: ignore[operator]
                got.clear()
                await got.wait()

        await asyncio.wait_for(loop(), within)

    sup = DeviceSupervisor(scanner_for(pty_scanner), publish, Backoff(base=0.05, cap=0.2, rng=random.Random(0)))
    task = asyncio.create_task(sup.run())
    try:
        await wait_for(lambda e: isinstance(e, DeviceStatus) and e.state is DeviceState.IDLE)
        pty_scanner.send("FIRST")
        await wait_for(lambda e: isinstance(e, ScanEvent) and e.data == "FIRST")
        pty_scanner.unplug()
        await wait_for(lambda e: isinstance(e, DeviceStatus) and e.state is DeviceState.RETRYING)
        assert sup.status.state in (DeviceState.RETRYING, DeviceState.OPENING)
        await asyncio.sleep(0.3)  # several failed reopen attempts while unplugged
        seen.clear()
        pty_scanner.plug()
        await wait_for(lambda e: isinstance(e, DeviceStatus) and e.state is DeviceState.IDLE)
        pty_scanner.send("SECOND")
        await wait_for(lambda e: isinstance(e, ScanEvent) and e.data == "SECOND")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_options_are_validated_together() -> None:
    problems = Problems("cfg")
    SerialScanner.from_options("s", Fields({"baudrate": 1234, "suffix": "", "idle_flush": 0}, problems, "opts"))
    assert problems.items == [
        "opts.port: is required (a string)",
        "opts.idle_flush: must be at least 0.05, got 0",
        "opts.baudrate: expected one of (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)",
        "opts.suffix: must not be empty: it ends each frame",
    ]


def test_registry_finds_builtins_and_refuses_shadowing() -> None:
    fake = EntryPoint("serial-scanner", "evil.module:Scanner", "posgw.drivers")
    extra = EntryPoint("acme-scanner", "json:loads", "posgw.drivers")
    missing = EntryPoint("ghost", "no_such_module_xyz:Driver", "posgw.drivers")
    registry = DriverRegistry.discover([fake, extra, missing])
    assert registry.load("serial-scanner") is SerialScanner
    assert "serial-scanner" in registry.refused
    with pytest.raises(DriverNotFoundError, match="no driver named 'nope'"):
        registry.load("nope")
    with pytest.raises(DriverLoadError, match="could not be loaded"):
        registry.load("ghost")
    with pytest.raises(DriverLoadError, match="not a posgw driver"):
        registry.load("acme-scanner")
