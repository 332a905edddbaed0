"""A ledger process, a gateway process and a pty scanner, for benchmarks."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from simulators.pos_client import PosClient
from simulators.processes import demo_env, free_port, gateway_proc, ledger_proc, write_gateway_config
from simulators.scanner import PtyScanner


@dataclass
class BenchRig:
    workdir: Path
    scanner: PtyScanner
    pos: PosClient

    @property
    def issuer_key_path(self) -> Path:
        return self.workdir / "ledger" / "issuer.key"


@asynccontextmanager
async def rig() -> AsyncIterator[BenchRig]:
    workdir = Path(tempfile.mkdtemp(prefix="posgw-bench-"))
    tokens = [secrets.token_urlsafe(24) for _ in range(3)]
    env = demo_env(*tokens)
    ledger_port, api_port = free_port(), free_port()
    scanner = PtyScanner(workdir / "scanner")
    scanner.plug()
    config = write_gateway_config(
        workdir / "gateway.toml",
        api_port=api_port,
        ledger_port=ledger_port,
        state_dir=workdir / "state",
        scanner=scanner.link,
        card_reader=True,
    )
    ledger = ledger_proc(workdir / "ledger", ledger_port, env, workdir / "ledger.log")
    gateway = gateway_proc(config, api_port, env, workdir / "gateway.log")
    pos = PosClient(f"http://127.0.0.1:{api_port}", tokens[0])
    try:
        ledger.start()
        await ledger.wait_healthy()
        gateway.start()
        await gateway.wait_healthy()
        await pos.wait_status(lambda s: all(d["state"] == "idle" for d in s["devices"]) and s["ledger"]["online"])
        yield BenchRig(workdir, scanner, pos)
    finally:
        await pos.close()
        gateway.stop()
        ledger.stop()
        scanner.unplug()
        shutil.rmtree(workdir, ignore_errors=True)
