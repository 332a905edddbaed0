"""The daemon as a process: clean exits, config errors, a ledger that answers garbage."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from simulators.pos_client import PosClient
from simulators.processes import demo_env, free_port, gateway_proc, write_gateway_config
from simulators.scanner import PtyScanner
from tests.harness import gateway_config, running_gateway

pytestmark = pytest.mark.pty


async def test_sigterm_finishes_and_exits_zero(tmp_path: Path, tokens: dict[str, str], pty_scanner: PtyScanner) -> None:
    port = free_port()
    config = write_gateway_config(
        tmp_path / "gw.toml", api_port=port, ledger_port=9, state_dir=tmp_path / "state", scanner=pty_scanner.link
    )
    proc = gateway_proc(config, port, demo_env(tokens["api"], tokens["operator"], tokens["app"]), tmp_path / "gw.log")
    proc.start()
    await proc.wait_healthy()
    pos = PosClient(f"http://127.0.0.1:{port}", tokens["api"])
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, sku="A", unit_price=100)
    await pos.complete_cash(basket, 100)
    await pos.close()
    assert proc.stop(signal.SIGTERM) == 0
    log = (tmp_path / "gw.log").read_text()
    assert '"event": "gateway_stopped"' in log
    assert tokens["api"] not in log
    assert tokens["operator"] not in log


def test_bad_config_exits_78_and_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[terminal]\nid = "T 1"\n[ledger]\nurl = 5\n')
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 78
    for expected in ("terminal.id", "terminal.store_id", "ledger.url: expected a string", "api.token"):
        assert expected in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[terminal\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 78
    assert "not valid TOML" in result.stderr


@pytest.mark.parametrize(
    "reply",
    [
        lambda: web.Response(text="<html>proxy error</html>", content_type="text/html"),
        lambda: web.json_response({"results": "nope", "high_seq": -3}),
        lambda: web.Response(status=502, text="bad gateway"),
        lambda: web.Response(status=401, text="who are you"),
    ],
    ids=["html", "wrong-schema", "502", "401"],
)
async def test_a_ledger_answering_garbage_loses_nothing(
    tmp_path: Path, tokens: dict[str, str], reply: Callable[[], web.Response]
) -> None:
    async def garbage(request: web.Request) -> web.StreamResponse:
        return reply()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        config = gateway_config(tmp_path / "gw", f"http://127.0.0.1:{port}", tokens)
        async with running_gateway(config) as (_gw, pos):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="A", unit_price=100)
            await pos.complete_cash(basket, 100)
            await asyncio.sleep(0.5)
            status = await pos.status()
            assert status["journal"]["pending"] == 1
            assert status["ledger"]["online"] is False
            assert status["ledger"]["last_error"]
    finally:
        await runner.cleanup()


def test_a_taken_port_and_an_unmakeable_state_dir_are_one_line_and_a_code_systemd_will_not_retry(
    tmp_path: Path,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    cases = [(tmp_path / "gw", port, 69, "already in use"), (blocker / "state", 0, 73, "cannot be made or written")]
    unit = (Path(__file__).resolve().parents[2] / "config" / "posgw.service").read_text()
    prevented = next(line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus=")).split("=")[1]
    try:
        for state_dir, api_port, code, said in cases:
            config = tmp_path / f"gw-{code}.toml"
            config.write_text(
                f'state_dir = "{state_dir}"\n[terminal]\nid = "T-1"\nstore_id = "S-1"\nmerchant_id = "M-1"\n'
                f'[api]\nport = {api_port}\ntoken_env = "POSGW_API_TOKEN"\n[ledger]\nurl = "http://127.0.0.1:9"\n'
            )
            env = {**os.environ, "POSGW_API_TOKEN": "t" * 32}
            result = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "run", "-c", str(config)],
                capture_output=True, text=True, check=False, env=env, timeout=60,
            )  # fmt: skip
            assert result.returncode == code, result.stderr
            lines = [line for line in result.stderr.splitlines() if line.startswith("posgw:")]
            assert len(lines) == 1, result.stderr
            assert said in lines[0]
            assert "Traceback" not in result.stderr
            assert str(code) in prevented.split()
    finally:
        taken.close()
