"""What store IT sees of a till: Prometheus metrics and readiness with reasons."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from simulators.scanner import PtyScanner
from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in the metrics")


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.text()


async def test_metrics_count_what_the_till_does(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], pty_scanner: PtyScanner
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, scanner=pty_scanner.link)
    async with running_gateway(config) as (gw, pos):
        await pos.connect_events()
        await pos.wait_status(lambda s: s["devices"][0]["state"] == "idle" and s["ledger"]["online"])
        pty_scanner.send("6901234567892", aim="]E0")
        await pos.next_event("scan")
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="6901234567892", unit_price=1000)
        await pos.complete_cash(basket, 1000)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        await pos.next_event("journal")
        status, text = await get(f"http://127.0.0.1:{gw.port}/metrics")  # no token: loopback, like /healthz
    assert status == 200
    assert sample(text, "posgw_scans_total", kind="product") == 1
    assert sample(text, "posgw_records_total", kind="sale") == 1
    assert sample(text, "posgw_baskets_total") == 1
    assert sample(text, "posgw_last_sync_timestamp_seconds") > 1.7e9  # the sale reached the ledger
    assert sample(text, "posgw_device_state", device="scanner", state="idle") == 1
    assert sample(text, "posgw_journal_pending") == 0
    assert sample(text, "posgw_ledger_online") == 1
    route = "/v1/baskets/{basket_id}/complete"
    assert sample(text, "posgw_api_request_seconds_count", method="POST", route=route, status="201") == 1
    assert tokens["api"] not in text


async def test_readiness_says_what_is_degraded_and_why(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (gw, pos):
        await pos.wait_status(lambda s: s["ledger"]["online"])
        status, _ = await get(f"http://127.0.0.1:{gw.port}/readyz")
        assert status == 200
        ledger.stop()
        await pos.wait_status(lambda s: not s["ledger"]["online"])
        status, _ = await get(f"http://127.0.0.1:{gw.port}/readyz")
        assert status == 200  # offline sales go on: degraded, not down
        checks = {c["name"]: c for c in (await pos.call("GET", "/readyz"))["checks"]}
        assert checks["journal"]["ok"] is True
        assert checks["ledger"]["ok"] is False
        assert "unreachable" in checks["ledger"]["reason"]
        await ledger.start()


@pytest.mark.parametrize(("program", "name"), [("gateway.cli", "posgw"), ("ledger.cli", "posgw-ledger")])
def test_both_programs_say_their_version(program: str, name: str) -> None:
    shown = subprocess.run([sys.executable, "-m", program, "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [name, importlib.metadata.version("posgw")]


async def test_every_surface_names_the_version_that_is_running(tmp_path: Path, tokens: dict[str, str]) -> None:
    installed = importlib.metadata.version("posgw")
    async with running_gateway(gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)) as (gw, pos):
        assert (await pos.call("GET", "/v1/status"))["version"] == installed
        _, text = await get(f"http://127.0.0.1:{gw.port}/metrics")
        assert sample(text, "posgw_build_info", version=installed) == 1
        _, document = await get(f"http://127.0.0.1:{gw.port}/openapi.json")
        assert json.loads(document)["info"]["version"] == installed
        _, page = await get(f"http://127.0.0.1:{gw.port}/status")
        assert 'id="version"' in page
