"""Checking a journal file's chain: every record's hash, link, signature and number.

Works on the file alone (read-only), so a damaged journal can be examined and
its bad records named even when the daemon refuses to start on it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from offline_queue.errors import JournalCorruptError
from protocols.chain import GENESIS, ChainLink, ChainProblem, verify_chain


def verify_file(path: Path, public_key: Ed25519PublicKey) -> list[ChainProblem]:
    """Verify a journal file opened read-only, whatever state it is in (blocking)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise JournalCorruptError(f"cannot open {path}: {err}") from err
    try:
        return verify_conn(conn, public_key)
    except sqlite3.DatabaseError as err:
        raise JournalCorruptError(f"{path} is not a readable journal ({err})") from err
    finally:
        conn.close()


def verify_conn(conn: sqlite3.Connection, public_key: Ed25519PublicKey) -> list[ChainProblem]:
    start = conn.execute("SELECT seq, hash, signature FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
    start_seq, start_hash = 1, GENESIS
    problems = []
    if start is not None:
        start_seq, start_hash = start[0] + 1, start[1]
        try:
            public_key.verify(start[2], checkpoint_message(start[0], start[1]))
        except InvalidSignature:
            problems.append(ChainProblem(start[0], "forged", "checkpoint signature is not the terminal's"))
    rows = conn.execute("SELECT seq, body, prev_hash, hash, signature FROM journal ORDER BY seq")
    # A tampered row may hold text where bytes belong; it must fail the check, not the checker.
    links = (ChainLink(seq, *(_as_bytes(v) for v in rest)) for seq, *rest in rows)
    return problems + verify_chain(links, public_key, start_seq=start_seq, start_hash=start_hash)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def checkpoint_message(seq: int, digest: bytes) -> bytes:
    return b"posgw-checkpoint-v1" + seq.to_bytes(8, "big") + digest
