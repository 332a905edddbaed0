"""The local API held to its OpenAPI 3.1 document: every route described, and schemathesis against a live daemon."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gateway.api.app import build_app
from gateway.api.openapi import DOCUMENT, NOT_DESCRIBED
from gateway.services import Services
from tests.harness import LedgerHandle, gateway_config, running_gateway, schemathesis_argv

pytestmark = [pytest.mark.ledger]


def test_every_route_is_described_and_every_description_is_served(tmp_path: Path, tokens: dict[str, str]) -> None:
    app = build_app(Services.build(gateway_config(tmp_path, "http://127.0.0.1:9", tokens)))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert {(m, p) for m, p in served if p not in NOT_DESCRIBED} == described


async def test_schemathesis_finds_nothing_against_a_live_daemon(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, max_body_bytes=64 * 1024)
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        url = f"http://127.0.0.1:{gw.port}"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/openapi.json") as r:
            assert (await r.json())["openapi"] == "3.1.0"
        argv = schemathesis_argv(f"{url}/openapi.json", tokens["api"])
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout
