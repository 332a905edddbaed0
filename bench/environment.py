"""A ledger process, a gateway process and a pty scanner, for benchmarks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.pos_client import PosClient
from simulators.processes import Stack, issuer_key
from simulators.scanner import PtyScanner


@dataclass
class BenchRig:
    workdir: Path
    scanner: PtyScanner
    pos: PosClient
    env: dict[str, str]

    def issuer_key(self) -> Ed25519PrivateKey:
        """The ledger's issuer key, as the card bureau gets it."""
        return issuer_key(self.workdir / "ledger", self.env)


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
        yield BenchRig(workdir, stack.scanner, pos, stack.ledger.env)
    finally:
        await pos.close()
        stack.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
