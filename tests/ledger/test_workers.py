"""``posgw-ledger serve --workers N``: several ledger processes on one port, watched by a supervisor."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ledger import secrets
from simulators.fleet import run_fleet
from tests.harness import LedgerHandle, fleet_differences, ledger_cli, until
from tests.pg import fresh_schema


def _workers(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split() if b"--worker-of" in Path(f"/proc/{p}/cmdline").read_bytes()]


async def _gone(pids: list[int], within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        await asyncio.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent to read its status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _started(data_dir: Path) -> int:
    return sum(e["event"] == "ledger_started" for e in _events(data_dir / "ledger.log"))


async def _serving(ledger: LedgerHandle) -> tuple[int, list[int]]:
    """Start ``ledger`` (``--workers 2``): its supervisor's pid and its two workers'."""
    await ledger.start()
    assert ledger.proc.popen is not None
    workers = _workers(ledger.proc.popen.pid)
    assert len(workers) == 2
    return ledger.proc.popen.pid, workers


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _key_of(data_dir: str, start: Any) -> bytes:  # a manager's Barrier: every process asks at once
    start.wait()
    return secrets.secrets_key(Path(data_dir), env={})


def test_a_secrets_key_made_by_many_processes_at_once_is_one_key(tmp_path: Path) -> None:
    """Workers (or nodes) starting on a fresh data directory together: each reads the one key, never half."""
    context = multiprocessing.get_context("forkserver")
    with context.Manager() as manager, context.Pool(8) as pool:
        start = manager.Barrier(8)  # the eight ask at once, round after round
        for round_ in range(5):
            data = tmp_path / f"d{round_}"
            keys = pool.starmap(_key_of, [(str(data), start)] * 8)
            assert len(set(keys)) == 1
            assert len(keys[0]) == 32
            assert sorted(p.name for p in data.iterdir()) == [secrets.KEY_FILE]  # nothing left aside


def test_workers_need_postgresql_and_lanes_are_bounded(tmp_path: Path) -> None:
    done = ledger_cli("serve", "--data", str(tmp_path), "--port", "0", "--workers", "2")
    assert done.returncode == 78
    assert "--workers needs PostgreSQL" in done.stderr
    done = ledger_cli("serve", "--data", str(tmp_path), "--port", "0", "--lanes", "4")
    assert done.returncode == 78
    assert "--lanes is 1 to 3" in done.stderr


def test_workers_on_a_port_taken_say_so(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = ledger_cli(
            "serve", "--data", str(tmp_path), "--port", str(port), "--workers", "2",
            "--database", "postgresql://posgw@127.0.0.1:5432/never-reached",
        )  # fmt: skip
    assert done.returncode == 69
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.ledger
@pytest.mark.postgres
async def test_workers_on_one_port_share_a_fleet_and_one_killed_is_started_again(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    """Two workers, two lanes each (groups of batches side by side in each process)."""
    async with fresh_schema() as url:
        ledger = LedgerHandle(
            tmp_path / "ledger", tokens, ("--workers", "2", "--lanes", "2", "--node", "tw"), database=url,
            env={secrets.KEY_ENV: secrets.new_secrets_key()},
        )  # fmt: skip
        supervisor, workers = await _serving(ledger)
        try:
            enrolled = asyncio.Event()
            codes = await ledger.fleet_codes(40)
            fleet_run = asyncio.create_task(run_fleet(ledger.url, codes, 20, pace_seconds=0.03, enrolled=enrolled))
            await enrolled.wait()
            await asyncio.sleep(0.3)
            os.kill(workers[0], signal.SIGKILL)  # mid-fleet, as the OOM killer would
            result, fleet = await fleet_run
            assert (result.accepted + result.duplicates, result.rejected, result.quarantined) == (800, 0, 0)
            assert await fleet_differences(ledger, [r for t in fleet for r in t.made]) == []
            assert await ledger.books_problems() == []
            events = _events(ledger.data_dir / "ledger.log")
            assert any(e["event"] == "ledger_worker_died" for e in events)
            served = {e.get("node") for e in events if e["event"] == "batch_ingested"}
            assert served == {"tw-w1", "tw-w2"}  # both served the fleet
            await until(lambda: len(_workers(supervisor)) == 2 and _started(ledger.data_dir) == 3)
            again = _workers(supervisor)
            assert workers[0] not in again
        finally:
            ledger.stop()  # SIGTERM: the supervisor stops its workers, then itself
        assert await _gone([supervisor, *again])


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """A GET on a connection of its own (so the kernel may give each to another worker)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, http.get(url, headers=headers) as r:
        return r.status, await r.text()


async def _refusals(ledger: LedgerHandle) -> list[float]:
    """What three scrapes of ``/metrics`` say of refused requests."""
    said = []
    for _ in range(3):
        _, text = await _get(f"{ledger.url}/metrics", {"Authorization": f"Bearer {ledger.tokens['operator']}"})
        line = next(x for x in text.splitlines() if x.startswith('posgw_ledger_refused_total{reason="unauthorized"}'))
        said.append(float(line.rsplit(" ", 1)[1]))
    return said


def _metrics_dir(worker: int) -> Path:
    """Where a worker keeps its metrics: what its supervisor gave it."""
    env = dict(v.split("=", 1) for v in Path(f"/proc/{worker}/environ").read_text().split("\0") if "=" in v)
    return Path(env["PROMETHEUS_MULTIPROC_DIR"])


def _exists(path: Path) -> bool:
    return path.exists()


@pytest.mark.ledger
@pytest.mark.postgres
async def test_a_scrape_counts_every_worker_and_a_dead_ones_counts_stay(tmp_path: Path, tokens: dict[str, str]) -> None:
    """Whichever worker answers ``/metrics`` counts for the node: a counter never goes back between scrapes."""
    async with fresh_schema() as url:
        ledger = LedgerHandle(tmp_path / "ledger", tokens, ("--workers", "2"), database=url)
        supervisor, workers = await _serving(ledger)
        shared = _metrics_dir(workers[0])
        try:
            for _ in range(24):  # refused (no token), each on a new connection: both workers refuse some
                assert (await _get(f"{ledger.url}/metrics"))[0] == 401
            assert await _refusals(ledger) == [24.0] * 3
            os.kill(workers[0], signal.SIGKILL)
            await until(lambda: len(_workers(supervisor)) == 2 and workers[0] not in _workers(supervisor))
            await ledger.proc.wait_healthy()
            assert await _refusals(ledger) == [24.0] * 3  # what the dead worker counted is still counted
            assert _exists(shared)
        finally:
            ledger.stop()
        assert await _gone([supervisor])
        assert not _exists(shared)  # the supervisor's directory goes with it


@pytest.mark.ledger
@pytest.mark.postgres
async def test_workers_of_a_supervisor_killed_outright_stop_by_themselves(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with fresh_schema() as url:
        ledger = LedgerHandle(tmp_path / "ledger", tokens, ("--workers", "2"), database=url)
        _, workers = await _serving(ledger)
        ledger.proc.stop(signal.SIGKILL)
        assert await _gone(workers)
        assert any(e["event"] == "ledger_worker_orphaned" for e in _events(ledger.data_dir / "ledger.log"))


@pytest.mark.ledger
@pytest.mark.postgres
async def test_workers_that_all_fail_to_start_end_the_supervisor(tmp_path: Path) -> None:
    """A fault every worker meets (here an unreadable secrets key file): the supervisor says so and stops."""
    bad = tmp_path / "missing.key"
    async with fresh_schema() as url:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ledger.cli", "serve", "--data", str(tmp_path), "--port", "0", "--workers", "2",
             "--database", url, "--secrets-key-file", str(bad)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 78  # the workers' own status: EX_CONFIG
    assert "ledger_workers_failed" in done.stderr
    assert "cannot read the secrets key" in done.stderr
