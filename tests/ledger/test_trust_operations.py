"""Operating the ledger's trust: HTTPS, one issuer key for many nodes, health and metrics, a till replaced.

Each through the real processes and commands an operator uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from gateway.config import load_config
from gateway.ledger_link import enrolment
from ledger import secrets
from protocols.chain import ChainLink, canonical, verify_chain
from protocols.rulebook import open_rulebook
from protocols.tokens import public_key_from_text
from simulators.fleet import run_fleet
from tests.brokers import make_tls
from tests.gateway.records import draft
from tests.harness import (
    LedgerHandle,
    TestTerminal,
    fleet_differences,
    gateway_config,
    ledger_cli,
    running_gateway,
)
from tests.pg import fresh_schema

pytestmark = [pytest.mark.ledger]


async def test_a_till_syncs_over_https_and_refuses_a_ledger_its_ca_did_not_sign(
    tmp_path: Path, tokens: dict[str, str], ledger_database: str | None
) -> None:
    tls = make_tls(tmp_path / "tls")
    ca = tls / "ca.pem"
    ledger = LedgerHandle(
        tmp_path / "ledger",
        tokens,
        database=ledger_database,
        tls=(ca, tls / "server.pem", tls / "server.key"),
    )
    await ledger.start()
    try:
        config = gateway_config(tmp_path / "gw", ledger.url, tokens, ca_file=str(ca))
        assert config.ledger.url.startswith("https://")
        async with running_gateway(config) as (_gw, pos):
            await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="X", unit_price=1_000)
            await pos.complete_cash(basket, 1_000)
            await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        # Plain HTTP to an HTTPS ledger, and a CA that did not sign its certificate: nothing believed.
        stranger = make_tls(tmp_path / "other") / "ca.pem"
        other = gateway_config(tmp_path / "gw2", ledger.url, tokens, ca_file=str(stranger), terminal_id="T-TEST-02")
        with pytest.raises(Exception, match="certificate verify failed"):
            await ledger.enrol_gateway(other)
    finally:
        ledger.stop()


@pytest.mark.postgres
async def test_two_nodes_on_one_database_come_up_together_with_one_issuer_key(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    shared = {secrets.KEY_ENV: secrets.new_secrets_key()}
    async with fresh_schema() as url:
        nodes = [LedgerHandle(tmp_path / f"node{i}", tokens, database=url, env=shared) for i in range(2)]
        try:  # a node that came up is stopped even when the other did not
            await asyncio.gather(*(node.start() for node in nodes))  # both at once, on an empty database
            first = await nodes[0].rulebook()
            # The same terminal asks the other node: the same rulebook, signed by the same key.
            observer = await nodes[0].observer()
            status, envelope = await TestTerminal(nodes[1].url, observer.terminal_id, observer.key).call(
                "GET", "/v1/rulebook"
            )
            assert status == 200
            second, _ = open_rulebook(envelope, nodes[0].issuer_key().public_key())  # refused were it another key
            assert first.issuer_keys == second.issuer_keys
            assert len(first.issuer_keys) == 1
            # A node given another secrets key cannot open the ledger's: one clear line, not a traceback.
            other = {secrets.KEY_ENV: secrets.new_secrets_key()}
            stray = LedgerHandle(tmp_path / "node-stray", tokens, database=url, env=other)
            stray.proc.start()
            assert stray.proc.popen is not None
            code = await asyncio.to_thread(stray.proc.popen.wait, 30)
            assert code == 78
            log = (tmp_path / "node-stray" / "ledger.log").read_text()
            assert "cannot be opened with this node's secrets key" in log
            assert "Traceback" not in log
            # A fleet spread over both nodes: every record once, nothing doubled, the books hold.
            result, fleet = await run_fleet([n.url for n in nodes], await nodes[0].fleet_codes(20), 15)
            assert (result.accepted, result.rejected, result.quarantined) == (300, 0, 0)
            assert await fleet_differences(nodes[1], [r for t in fleet for r in t.made]) == []
            assert await nodes[0].books_problems() == []
            # A record sent to one node is a duplicate at the other: one ledger.
            till = await nodes[0].terminal("T-TWO")
            (record,) = till.seal([draft("T-TWO", 1_000)])
            assert (await till.post_batch([record]))[1]["results"][0]["status"] == "accepted"
            till.url = nodes[1].url
            assert (await till.post_batch([record]))[1]["results"][0]["status"] == "duplicate"
        finally:
            for node in nodes:
                node.stop()


async def test_health_and_metrics_say_what_is_wrong(ledger: LedgerHandle) -> None:
    till = await ledger.terminal("T-METRICS")
    status, _ = await till.post_batch(till.seal([draft("T-METRICS", 10_000, "M0001")]))
    assert status == 200
    bad = till.seal([dataclasses.replace(draft("T-METRICS", 100, "M0001"), points_earned=50)])
    await till.post_batch(bad)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ledger.url}/readyz") as r:
            ready = await r.json()
            assert r.status == 200
            checks = {c["name"]: c for c in ready["checks"]}
            assert checks["quarantine"]["held"] == 1
            assert "1 records wait for an operator" in checks["quarantine"]["reason"]
        async with http.get(f"{ledger.url}/metrics") as r:
            assert r.status == 401
        operator = {"Authorization": f"Bearer {ledger.tokens['operator']}"}
        async with http.get(f"{ledger.url}/metrics", headers=operator) as r:
            text = await r.text()
    assert 'posgw_ledger_records_total{status="accepted"} 1.0' in text
    assert 'posgw_ledger_records_total{status="quarantined"} 1.0' in text
    assert "posgw_ledger_quarantine 1.0" in text
    assert 'posgw_ledger_refused_total{reason="unauthorized"} 1.0' in text


async def test_a_broken_till_is_replaced_its_history_kept_and_its_last_records_recovered(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    """The documented procedure (docs/operator-guide.md): replace, enrol the new till, import what the old one
    never sent from its recovered journal, retire when the shop closes."""
    old_file = toml_config(tmp_path / "old", ledger.url, "T-SHOP")
    config = load_config(old_file, env=ENV | {"POSGW_API_TOKEN": tokens["api"]})
    added = ledger_cli("terminal", "add", "T-SHOP", "--store", "S-1", "--merchant", "M-BAKERY", *ledger.store_args())
    assert added.returncode == 0, added.stderr
    code = added.stdout.strip()
    enrolled = await _posgw(tokens, "enroll", "-c", old_file, "--code", code)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "T-SHOP enrolled" in enrolled.stdout
    assert (tmp_path / "old" / "enrolment.json").stat().st_mode & 0o777 == 0o600
    async with running_gateway(config) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        for price in (1_000, 2_000):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, sku="X", unit_price=price)
            await pos.complete_cash(basket, price)
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        # The till's network card dies: its last sale never leaves.
        gw.services.sync.client.base_url = "http://127.0.0.1:9"
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="X", unit_price=3_000)
        await pos.complete_cash(basket, 3_000)
    exported = await _posgw(tokens, "journal", "export", "-c", old_file)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "old.jsonl").write_text(exported.stdout)

    replaced = ledger_cli("terminal", "replace", "T-SHOP", *ledger.store_args())
    assert replaced.returncode == 0, replaced.stderr
    new_code = replaced.stdout.strip().splitlines()[-1]
    new_file = toml_config(tmp_path / "new", ledger.url, "T-SHOP")
    new = load_config(new_file, env=ENV | {"POSGW_API_TOKEN": tokens["api"]})
    assert (await _posgw(tokens, "enroll", "-c", new_file, "--code", code)).returncode != 0  # the old code is spent
    assert (await _posgw(tokens, "enroll", "-c", new_file, "--code", new_code)).returncode == 0
    assert enrolment.load(new) is not None
    async with running_gateway(new) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, sku="X", unit_price=4_000)
        sale = (await pos.complete_cash(basket, 4_000))["record"]
        assert (sale["seq"], sale["epoch"]) == (1, 2)  # a new chain
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    # The old till's last sale, from its recovered journal, checked against the old chain's key.
    imported = ledger_cli(
        "terminal", "import", "T-SHOP", "--epoch", "1", "--journal", str(tmp_path / "old.jsonl"), *ledger.store_args()
    )
    assert imported.returncode == 0, imported.stderr
    assert "1 accepted, 2 duplicate" in imported.stdout
    shown = json.loads(ledger_cli("terminal", "show", "T-SHOP", *ledger.store_args()).stdout)
    assert [(c["epoch"], c["high_seq"], c["closed_at"] is None) for c in shown["chains"]] == [
        (1, 3, False),
        (2, 1, True),
    ]
    # The old chain still verifies, record by record, with the old key.
    store = await ledger.open_store()
    try:
        old_key = public_key_from_text(await store.terminals.chain_key("T-SHOP", 1) or "")
        rows = await store.db.read(
            lambda tx: tx.all(
                "SELECT seq, body, prev_hash, hash FROM transactions "
                "WHERE terminal_id = 'T-SHOP' AND epoch = 1 ORDER BY seq"
            )
        )
    finally:
        await store.close()
    links = []
    for seq, body, prev, digest in rows:
        wire = json.loads(body)
        links.append(
            ChainLink(
                int(seq), canonical(wire), bytes.fromhex(prev), bytes.fromhex(digest), bytes.fromhex(wire["signature"])
            )
        )
    assert verify_chain(links, old_key) == []
    # The shop closes: the terminal is retired, and its key refused.
    assert ledger_cli("terminal", "retire", "T-SHOP", *ledger.store_args()).returncode == 0
    listed = ledger_cli("terminal", "list", *ledger.store_args())
    assert "T-SHOP" in listed.stdout
    assert "retired" in listed.stdout
    async with running_gateway(new) as (_gw, pos):
        status = await pos.wait_status(lambda s: s["ledger"]["last_error"] is not None, within=10)
        assert "terminal-unknown" in status["ledger"]["last_error"]


ENV = dict(os.environ)


def toml_config(state_dir: Path, ledger_url: str, terminal_id: str) -> Path:
    """A till's config file, as an installer writes it."""
    path = state_dir.parent / f"{state_dir.name}.toml"
    path.write_text(
        f'state_dir = "{state_dir}"\n[terminal]\nid = "{terminal_id}"\nstore_id = "S-1"\nmerchant_id = "M-BAKERY"\n'
        f'[api]\nport = 0\n[ledger]\nurl = "{ledger_url}"\ntimeout = 1.0\nsync_interval = 0.2\n'
        '[logging]\nlevel = "warning"\n'
    )
    return path


async def _posgw(tokens: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    """``posgw …`` as a process."""
    env = ENV | {"POSGW_API_TOKEN": tokens["api"]}
    argv = [sys.executable, "-m", "gateway.cli", *map(str, args)]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, env=env)
