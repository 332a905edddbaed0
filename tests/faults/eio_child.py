"""Run in a child process with the fsync fault loaded: append, fail, recover.

Prints one JSON object: the txn_ids acknowledged, and the error the failed
append raised (type and message). The parent checks the file afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.journal import TransactionJournal
from protocols.errors import GatewayError
from tests.gateway.records import draft


def set_disk_failing(flag: Path, failing: bool) -> None:
    if failing:
        flag.touch()
    else:
        flag.unlink()


async def main(path: Path, key_hex: str, flag: Path) -> dict[str, object]:
    journal = TransactionJournal(path, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_hex)))
    await journal.open()
    acknowledged = [(await journal.append(draft()))[0].txn_id for _ in range(3)]
    set_disk_failing(flag, True)
    failed: dict[str, str] = {}
    refused = draft()
    try:
        await journal.append(refused)
    except GatewayError as err:
        failed = {"type": type(err).__name__, "message": str(err), "txn_id": refused.txn_id}
    set_disk_failing(flag, False)
    acknowledged += [(await journal.append(draft()))[0].txn_id for _ in range(2)]
    await journal.close()
    return {"acknowledged": acknowledged, "failed": failed, "pid": os.getpid()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))))
