"""A bad day on the network and the disk, during sales: then count, as ``simulators/chaos.py`` does.

The gateway process runs throughout (it must never exit) while producers
sell. Between it and the ledger sits a hostile network
(``simulators/ledger_proxy.py``) that, every fraction of a second, turns to
another fault: relaying, answering garbage, hanging, faking ``accepted``,
replaying an old answer. The MQTT broker is killed and started again; when
given a small file system for the till's state, it is filled up and freed.
At the end the network is healed and the journal drains: every sale the
till acknowledged must be at the ledger exactly once, nothing it refused
may be there, and the daemon must still be the process that started.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from simulators.chaos import Attempt, ChaosReport, _complete, _judge, _ledger_records, _producer
from simulators.ledger_proxy import LedgerProxy
from simulators.pos_client import PosClient
from simulators.processes import demo_env, enrol_gateway, gateway_proc, ledger_proc, stable_port, write_gateway_config
from simulators.scanner import PtyScanner

FAULTS = ("relay", "garbage", "hang", "fake-accept", "replay")


class Broker:
    """A mosquitto of this run's own on loopback, to kill and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = stable_port()  # the broker may be restarted on its port
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None


def fill(directory: Path) -> Path:
    """Write until the file system says no; the file to delete when space should come back."""
    filler = directory / "filler"
    # Unbuffered: a partial last write must not leave bytes behind for close() to fail on again.
    with filler.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while fh.write(b"\0" * 65536):
            pass
    return filler


async def run_network_chaos(
    workdir: Path, seconds: float = 20.0, producers: int = 3, seed: int | None = None, disk: Path | None = None
) -> ChaosReport:
    """Sell through ``seconds`` of network, broker (and, with ``disk``, disk) faults; the report as chaos's."""
    rng = random.Random(seed)
    started = time.monotonic()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    tokens = {name: secrets.token_urlsafe(24) for name in ("api", "operator", "app")}
    env = demo_env(tokens["api"], tokens["operator"], tokens["app"])
    ledger_port, api_port = stable_port(), stable_port()  # both come back on their port after a kill
    ledger = ledger_proc(workdir / "ledger", ledger_port, env, workdir / "ledger.log")
    proxy = LedgerProxy(f"http://127.0.0.1:{ledger_port}")
    broker = Broker(workdir)
    scanner = PtyScanner(workdir / "scanner")
    scanner.plug()
    state = (disk or workdir) / "state"
    attempts: list[Attempt] = []
    filler: Path | None = None
    gateway = None
    drops = fills = 0
    try:
        ledger.start()
        await ledger.wait_healthy()
        await proxy.start()
        broker.start()
        mqtt = f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nmall = "chaos"\nheartbeat = 1.0\n'
        config = write_gateway_config(
            workdir / "gateway.toml",
            api_port=api_port,
            ledger_port=proxy.port,
            state_dir=state,
            scanner=scanner.link,
            extra=mqtt,
        )
        await asyncio.to_thread(enrol_gateway, config, workdir / "ledger", "T-DEMO-01", "S-JOYCITY-B1", "M-BAKERY", env)
        gateway = gateway_proc(config, api_port, env, workdir / "gateway.log")
        gateway.start()
        await gateway.wait_healthy()
        async with PosClient(f"http://127.0.0.1:{api_port}", tokens["api"]) as pos:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_selling(pos, attempts, stop)) for _ in range(producers)]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                proxy.mode = rng.choice(FAULTS)
                if rng.random() < 0.2:
                    if broker.up:
                        broker.kill()
                        drops += 1
                    else:
                        broker.start()
                if disk is not None and rng.random() < 0.2:
                    if filler is None:
                        filler = await asyncio.to_thread(fill, disk)
                        fills += 1
                    else:
                        filler.unlink()
                        filler = None
                await asyncio.sleep(rng.uniform(0.1, 0.6))
            stop.set()
            await asyncio.gather(*tasks)
            # Healed: the network relays, the broker is up, the disk has room.
            proxy.mode = "relay"
            if not broker.up:
                broker.start()
            if filler is not None:
                filler.unlink()
            for attempt in [a for a in attempts if a.outcome == "unknown"]:
                await _complete(pos, attempt)
            await pos.wait_status(lambda s: s["journal"]["pending"] == 0, within=120)
        records = await _ledger_records(f"http://127.0.0.1:{ledger_port}", tokens["operator"])
        report = _judge(attempts, records, 0, time.monotonic() - started)
        report.faked, report.broker_drops, report.disk_fills = proxy.faked, drops, fills
        assert gateway.popen is not None
        if gateway.popen.poll() is not None:
            report.unexpected.append(f"the daemon exited ({gateway.popen.returncode}): it must never")
        return report
    finally:
        if gateway is not None:
            gateway.stop()
        await proxy.stop()
        broker.kill()
        ledger.stop()
        scanner.unplug()


async def _selling(pos: PosClient, attempts: list[Attempt], stop: asyncio.Event) -> None:
    """A producer that keeps going through refusals (a full disk answers 507 for a while)."""
    while not stop.is_set():
        await _producer(pos, attempts, stop)
        await asyncio.sleep(0.05)
