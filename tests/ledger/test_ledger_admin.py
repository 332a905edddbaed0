"""``posgw-ledger`` operator commands: loading members, a member's history, the day's reports, reconciliation."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from protocols.business_day import business_day
from protocols.tokens import key_id, verify_token
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}


def test_members_load_from_csv_with_every_problem_named(tmp_path: Path, ledger_database: str | None) -> None:
    data = ["--data", str(tmp_path / "ledger"), *(["--database", ledger_database] if ledger_database else [])]
    good = tmp_path / "members.csv"
    rows = ["member_id,tier,status,wallet,identifiers"] + [f"N{i:05d},classic,,{i},card:86{i:08d}" for i in range(12)]
    good.write_text("\n".join(rows) + "\n")
    done = ledger_cli("members", "load", str(good), *data)
    assert done.returncode == 0, done.stderr
    assert "loaded 12 / 12 members (100%)" in done.stderr
    shown = ledger_cli("member", "show", "N00007", *data)
    assert "tier classic" in shown.stdout
    assert "wallet ¥0.07" in shown.stdout
    # Loaded again with other wallets: an existing member's stored value is never set from a file, and it says so.
    again = tmp_path / "again.csv"
    again.write_text("member_id,tier,status,wallet\nN00007,classic,,60000\nN00008,classic,,8\n")
    loaded = ledger_cli("members", "load", str(again), *data)
    assert loaded.returncode == 0, loaded.stderr
    assert "the wallet column was not applied to 1 existing member(s)" in loaded.stderr
    assert "N00007: the file says ¥600.00, the ledger holds ¥0.07" in loaded.stderr
    assert "wallet ¥0.07" in ledger_cli("member", "show", "N00007", *data).stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("member_id,tier,status,wallet\nX1,classic,gone,5\nX2,,active,-3\n")
    refused = ledger_cli("members", "load", str(bad), *data)
    assert refused.returncode == 65
    assert "line 2.status" in refused.stderr
    assert "line 3.tier" in refused.stderr
    assert "line 3.wallet" in refused.stderr
    assert ledger_cli("member", "show", "X1", *data).returncode == 1  # nothing of it was loaded


async def test_reconciliation_agrees_to_the_fen_then_names_what_the_ledger_lacks(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    today = business_day(datetime.now(UTC)).isoformat()
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        for quantity in (1, 3):
            basket = (await pos.new_basket())["basket_id"]
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
            await pos.add_line(basket, quantity=quantity, **TART)
            sale = (await pos.complete_cash(basket, 20_000))["record"]
        body = {"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": "refund-admin-1"})
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
    export = export_journal(config.journal_path, config.key_path, tmp_path / "day.jsonl")
    agreed = ledger_cli("report", "reconcile", *ledger.store_args(), "--journal", str(export), "--day", today)
    assert agreed.returncode == 0, agreed.stdout
    assert "agree to the fen" in agreed.stdout
    assert "2 sales ¥144.51, 1 refunds ¥36.13" in agreed.stdout  # classic at the bakery: 85 %, half up

    day = json.loads(ledger_cli("report", "day", *ledger.store_args(), "--day", today, "--json").stdout)
    assert day["sales_net"] == 14_451 - 3_613
    assert day["member_share"] == 1.0
    history = ledger_cli("member", "show", "M0001", *ledger.store_args()).stdout
    # Postings only: the first sale (¥36.13) earned no point; the second earned 1, its refund took it back.
    assert history.count(" sale ") == 1
    assert "+1 points" in history
    assert " refund " in history
    assert "-1 points" in history

    ledger.stop()  # a sale the ledger never hears of
    async with running_gateway(config) as (_gw, pos):
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        late = (await pos.complete_cash(basket, 5000))["record"]
    export = export_journal(config.journal_path, config.key_path, tmp_path / "day2.jsonl")
    differs = ledger_cli("report", "reconcile", *ledger.store_args(), "--journal", str(export), "--day", today)
    assert differs.returncode == 1
    assert f"not at the ledger (not synced, or rejected): terminal {late['txn_id']}" in differs.stdout
    assert "sales_due: terminal 18701, ledger 14451" in differs.stdout


def export_journal(path: Path, key_path: Path, out: Path) -> Path:
    journal = TransactionJournal(path, load_or_create_signing_key(key_path))
    out.write_text("".join(line + "\n" for line in journal.export_lines()))
    return out


async def test_a_new_rulebook_version_is_loaded_then_signed_and_served(tmp_path: Path, ledger: LedgerHandle) -> None:
    body = (await ledger.rulebook()).to_wire()
    for own in ("phone_salt", "issuer_keys"):
        del body[own]
    body |= {"version": 2, "excluded_categories": [*body["excluded_categories"], "lottery"]}
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(body))
    loaded = ledger_cli("rulebook", "load", str(rules), *ledger.store_args())
    assert loaded.returncode == 0, loaded.stderr
    assert "rulebook version 2 in force" in loaded.stdout
    book = await ledger.wait_rulebook(2)  # the running ledger picks it up within seconds
    assert "lottery" in book.excluded_categories

    again = ledger_cli("rulebook", "load", str(rules), *ledger.store_args())
    assert again.returncode == 65
    assert "version 2 is not newer than version 2, in force" in again.stderr
    rules.write_text(json.dumps({**body, "version": 3, "tiers": "gold", "currency": 7}))
    broken = ledger_cli("rulebook", "load", str(rules), *ledger.store_args())
    assert broken.returncode == 65
    assert "tiers" in broken.stderr
    assert "currency" in broken.stderr
    rules.write_text(json.dumps({**body, "version": 3, "phone_salt": "AAAA"}))
    assert "the ledger's own" in ledger_cli("rulebook", "load", str(rules), *ledger.store_args()).stderr
    shown = ledger_cli("rulebook", "show", *ledger.store_args()).stdout
    assert "version 1 " in shown
    assert "version 2 " in shown
    assert "version 3" not in shown


def test_coupons_are_issued_as_signed_tokens_for_a_member(ledger_database: str | None, tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "ledger"), *(["--database", ledger_database] if ledger_database else [])]
    members = tmp_path / "members.csv"
    members.write_text("member_id,tier\nN1,classic\n")
    assert ledger_cli("members", "load", str(members), *data).returncode == 0
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'version = 1\ncurrency = "CNY"\n[tiers.classic]\ndefault_rate = 9500\n'
        '[[coupons]]\nid = "C-5-OFF"\nname = "5 off"\nkind = "amount"\namount = 500\nmin_spend = 5000\n'
    )
    loaded = ledger_cli("rulebook", "load", str(rules), *data)
    assert loaded.returncode == 0, loaded.stderr
    issued = ledger_cli("coupons", "issue", "C-5-OFF", "--member", "N1", "--count", "3", *data)
    assert issued.returncode == 0, issued.stderr
    pem = ledger_cli("secrets", "issuer-pem", *data)  # what a card bureau is given by the operator
    assert pem.returncode == 0, pem.stderr
    private = load_pem_private_key(pem.stdout.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    key = private.public_key()
    claims = [verify_token(t, "CP1.", {key_id(key): key}, now=int(time.time())) for t in issued.stdout.split()]
    assert len({c.subject for c in claims}) == 3  # three distinct copies
    assert all(c.subject.startswith("C-5-OFF:") and c.subject.endswith(":N1") for c in claims)
    unknown = ledger_cli("coupons", "issue", "C-NOPE", "--member", "N1", *data)
    assert unknown.returncode == 65
    assert "no coupon C-NOPE" in unknown.stderr
