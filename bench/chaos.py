"""``python -m bench.chaos [--kills 1000]``: the long SIGKILL run (CI runs 50).

Kills the gateway process with SIGKILL at random moments during a stream of
sales and drains, then checks lost = duplicated = unexpected = 0 at the ledger
(see ``simulators/chaos.py``). Exits 1 if any is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from simulators.chaos import run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posgw-chaos-"))
    try:
        report = asyncio.run(run_chaos(work, args.kills, args.producers, args.seed))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report.summary())
    for name in ("lost", "duplicated", "unexpected"):
        for sku in getattr(report, name)[:20]:
            print(f"  {name}: {sku}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
