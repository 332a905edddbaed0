"""The verifier against hundreds of random tamperings of a real journal file."""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from offline_queue.journal import TransactionJournal
from offline_queue.verify import verify_file
from tests.gateway.records import draft

KEY = Ed25519PrivateKey.generate()
RECORDS = 30


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("journal") / "journal.sqlite3"

    async def build() -> None:
        j = TransactionJournal(path, KEY)
        await j.open()
        for i in range(RECORDS):
            await j.append(draft(amount=100 + i))
        await j.close()

    asyncio.run(build())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def tamper(path: Path, rng: random.Random) -> tuple[str, int]:
    """One random tampering; returns what was done and the first seq it should be caught at."""
    conn = sqlite3.connect(path, isolation_level=None)
    seq = rng.randint(1, RECORDS)
    kind = rng.choice(["edit", "delete", "swap", "insert", "relink", "resign", "edit-amount"])
    if kind == "edit":
        (body,) = conn.execute("SELECT body FROM journal WHERE seq = ?", (seq,)).fetchone()
        pos = rng.randrange(len(body))
        edited = body[:pos] + bytes([body[pos] ^ (1 << rng.randrange(7))]) + body[pos + 1 :]
        conn.execute("UPDATE journal SET body = ? WHERE seq = ?", (edited, seq))
    elif kind == "edit-amount":
        conn.execute(
            "UPDATE journal SET body = replace(body, '\"total_due\":', '\"total_due\":1') WHERE seq = ?", (seq,)
        )
    elif kind == "delete":
        conn.execute("DELETE FROM journal WHERE seq = ?", (seq,))
        if seq == RECORDS:
            seq = 0  # deleting the newest leaves no trace in the chain itself; see below
    elif kind == "swap":
        other = seq % RECORDS + 1
        a, b = sorted((seq, other))
        conn.execute("UPDATE journal SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE journal SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE journal SET seq = ? WHERE seq = -1", (b,))
        seq = a
    elif kind == "insert":
        row = conn.execute("SELECT * FROM journal WHERE seq = ?", (seq,)).fetchone()
        conn.execute("UPDATE journal SET seq = seq + 1000 WHERE seq >= ?", (seq,))
        conn.execute("UPDATE journal SET seq = seq - 999 WHERE seq >= 1000")
        forged = list(row)
        forged[1] = f"forged-{rng.random()}"
        conn.execute(f"INSERT INTO journal VALUES ({', '.join('?' * len(forged))})", forged)
    elif kind == "relink":
        conn.execute("UPDATE journal SET prev_hash = randomblob(32) WHERE seq = ?", (seq,))
    else:
        conn.execute("UPDATE journal SET signature = randomblob(64) WHERE seq = ?", (seq,))
    conn.close()
    return kind, seq


def test_hundreds_of_random_tamperings_are_all_named(pristine: Path, tmp_path: Path) -> None:
    assert verify_file(pristine, KEY.public_key()) == []
    rng = random.Random(20261124)
    caught = 0
    for i in range(300):
        copy = tmp_path / f"t{i % 4}.sqlite3"
        shutil.copyfile(pristine, copy)
        kind, seq = tamper(copy, rng)
        problems = verify_file(copy, KEY.public_key())
        if seq == 0:
            # Truncating the newest record is caught by the ledger's high-water mark, not the chain.
            continue
        assert problems, f"{kind} at seq {seq} went unnoticed"
        assert problems[0].seq in (seq, seq + 1), f"{kind} at {seq} reported at {problems[0]}"
        caught += 1
    assert caught > 250


def test_cli_verify_names_the_record(pristine: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(pristine, state / "journal.sqlite3")
    key_file = state / "terminal.key"
    key_file.write_bytes(KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    key_file.chmod(0o600)
    config = tmp_path / "gw.toml"
    config.write_text(
        f'state_dir = "{state}"\n[terminal]\nid = "T-1"\nstore_id = "S-1"\nmerchant_id = "M-1"\n'
        '[ledger]\nurl = "http://127.0.0.1:9"\n'
    )
    env = {"POSGW_API_TOKEN": "a" * 20, "POSGW_LEDGER_TOKEN": "b" * 20, "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "journal", *args, "-c", str(config)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    ok = cli("verify")
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    status = cli("status")
    assert "pending" in status.stdout
    assert f"{RECORDS} records" in status.stdout
    exported = cli("export")
    assert len(exported.stdout.splitlines()) == RECORDS
    conn = sqlite3.connect(state / "journal.sqlite3")
    conn.execute("UPDATE journal SET body = replace(body, 'Egg tart', 'Egg tarts') WHERE seq = 7")
    conn.commit()
    conn.close()
    bad = cli("verify")
    assert bad.returncode == 1
    assert "seq 7: edited" in bad.stdout
