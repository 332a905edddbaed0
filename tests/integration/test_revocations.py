"""Revocations that scale: 100,000 withdrawn copies, a delta for the next one, signed all the way.

Reproduced first: the list was one retained MQTT message of every copy;
past 256 KiB (about 8,300 copies) tills ignored it and took a newly
withdrawn coupon while their status said all was well; and an anonymous
retained message could un-revoke a copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.pos_client import ApiProblemError, PosClient
from tests.harness import LedgerHandle, gateway_config, running_gateway, until

pytestmark = [pytest.mark.ledger]

BULK = 100_000
FILL = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
    "INSERT INTO {table} (instance, revoked_at) "
    "SELECT 'C-BULK-' || (i % 40) || ':' || printf('%016x', i), '2026-12-01T00:00:00+00:00' FROM n"
)


async def coupon_refusal(pos: PosClient, token: str) -> str | None:
    """The problem type a coupon meets on a new basket (None: taken)."""
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, sku="A", unit_price=50_000)
    try:
        await pos.call("POST", f"/v1/baskets/{basket}/coupons", {"token": token})
    except ApiProblemError as err:
        return str(err.body["type"]).rsplit(":", 1)[-1]
    finally:
        await pos.cancel(basket)
    return None


async def test_a_hundred_thousand_revoked_copies_then_one_more_by_delta(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    for table in ("revoked_coupons", "revocation_log"):
        await ledger.tamper(FILL.format(count=BULK, table=table))
    token, key = await ledger.coupon("M0001", "C-20-OFF-200")
    config = gateway_config(tmp_path / "gw", ledger.url, tokens)
    async with running_gateway(config) as (gw, pos):
        directory = gw.services.directory
        await pos.wait_status(lambda s: bool(s["members_cached"]) and directory.revocations_version == BULK)
        assert len(directory.revoked_coupons) == BULK
        assert "C-BULK-7:0000000000000007" in directory.revoked_coupons
        assert await coupon_refusal(pos, token) is None
        await ledger.revoke_coupon(key)
        gw.services.refresher.kick_now()  # as the MQTT notice would (tests/integration/test_mqtt.py)
        await until(lambda: directory.revocations_version == BULK + 1)
        assert len(directory.revocations) == 2  # the snapshot, then a one-copy delta
        assert await coupon_refusal(pos, token) == "coupon-revoked"
        assert all(c["ok"] for c in (await pos.status())["checks"] if c["name"] == "revocations")
    # A restart with the ledger away: the signed list comes back from the cache, checked again.
    ledger.stop()
    async with running_gateway(config) as (gw, pos):
        assert gw.services.directory.revocations_version == BULK + 1
        assert await coupon_refusal(pos, token) == "coupon-revoked"
    # The cache with its last revocation delta cut out: behind what its own member list names, so the
    # till takes no coupon at all, and says why.
    cache = config.cache_path
    body = json.loads(cache.read_text())
    body["revocations"] = body["revocations"][:1]
    cache.write_text(json.dumps(body))
    async with running_gateway(config) as (gw, pos):
        assert gw.services.directory.revocations_version == BULK
        assert await coupon_refusal(pos, token) == "coupon-revoked"
        behind = {c["name"]: c["reason"] for c in (await pos.status())["checks"] if not c["ok"]}
        assert f"v{BULK}, the ledger's is v{BULK + 1}" in behind["revocations"]
    await ledger.start()
