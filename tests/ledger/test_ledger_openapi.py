"""The ledger's API held to its OpenAPI 3.1 document: every route described, schemathesis against a live ledger."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.app import build_app
from ledger.openapi import DOCUMENT, NOT_DESCRIBED
from ledger.service import LedgerService
from ledger.store import LedgerStore
from protocols.rulebook import Rulebook
from tests.harness import LedgerHandle, schemathesis_argv

pytestmark = [pytest.mark.ledger]


async def test_every_route_is_described_and_every_description_is_served(tmp_path: Path) -> None:
    store = await LedgerStore.open(tmp_path)
    rules = Rulebook.from_wire({"version": 0, "currency": "CNY", "tiers": {}})
    app = build_app(LedgerService(store, Ed25519PrivateKey.generate(), rules, app_token="t" * 16))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    await store.close()
    described = {(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert {(m, p) for m, p in served if p not in NOT_DESCRIBED} == described


@pytest.mark.parametrize("role", ["operator", "app"])  # terminals sign (schemathesis cannot): their routes say 401
async def test_schemathesis_finds_nothing_against_a_live_ledger(ledger: LedgerHandle, role: str) -> None:
    argv = schemathesis_argv(f"{ledger.url}/openapi.json", ledger.tokens[role])
    result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:]
