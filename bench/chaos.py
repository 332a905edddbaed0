"""``python -m bench.chaos [--kills 1000] [--network 300] [--disk DIR]``: the long chaos runs (CI runs short ones).

Kills the gateway process with SIGKILL at random moments during a stream of
sales and drains (``simulators/chaos.py``); then, for ``--network`` seconds,
sells through a hostile network to the ledger (garbage, hangs, faked and
replayed answers), a broker that drops, and with ``--disk`` (a small file
system for the till's state) a disk that fills up (``simulators/network_chaos.py``).
Each checks lost = duplicated = unexpected = 0 at the ledger; exits 1 if any is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from simulators.chaos import ChaosReport, run_chaos
from simulators.network_chaos import run_network_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--network", type=float, default=0.0, help="seconds of network, broker and disk faults")
    parser.add_argument("--disk", type=Path, default=None, help="a small file system (tmpfs) to fill during --network")
    args = parser.parse_args()
    ok = True
    runs: list[tuple[str, Callable[[Path], Coroutine[Any, Any, ChaosReport]]]] = []
    if args.kills:
        runs.append(("kills", lambda work: run_chaos(work, args.kills, args.producers, args.seed)))
    if args.network:
        runs.append(
            ("network", lambda work: run_network_chaos(work, args.network, args.producers, args.seed, args.disk))
        )
    for name, run in runs:
        work = Path(tempfile.mkdtemp(prefix=f"posgw-chaos-{name}-"))
        try:
            report = asyncio.run(run(work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{name}: {report.summary()}")
        for kind in ("lost", "duplicated", "unexpected"):
            for sku in getattr(report, kind)[:20]:
                print(f"  {kind}: {sku}")
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
