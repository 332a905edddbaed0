"""A ledger process, a gateway process and a pty scanner, for benchmarks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from simulators.pos_client import PosClient
from simulators.processes import Stack
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
    stack = Stack.create(workdir, card_reader=True)
    pos = stack.pos()
    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        stack.gateway.start()
        await stack.gateway.wait_healthy()
        await pos.wait_status(lambda s: all(d["state"] == "idle" for d in s["devices"]) and s["ledger"]["online"])
        yield BenchRig(workdir, stack.scanner, pos)
    finally:
        await pos.close()
        stack.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
