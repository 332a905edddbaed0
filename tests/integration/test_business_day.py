"""The mall's business day, whatever the host's time zone: the same sale gives the same result.

The demo mall offsets points on Tuesdays and Fridays, Beijing time. At
2026-12-01 17:30 UTC it is still Tuesday in UTC but already Wednesday 01:30
in Shanghai: no offset, whether the till runs with TZ=UTC, Asia/Shanghai or
America/Los_Angeles. Eight hours earlier it is Tuesday everywhere that
counts: the offset is granted, again under every host zone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness import LedgerHandle, gateway_config, running_gateway

pytestmark = [pytest.mark.ledger]

TUESDAY_NIGHT_UTC = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)  # Wednesday 01:30 in the mall
TUESDAY_MORNING = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in the mall


@pytest.fixture(params=["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def host_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


async def test_an_offset_day_is_the_malls_day_not_the_hosts(
    host_zone: str, tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]))
        pricer = gw.services.pricer
        pricer.clock = lambda: TUESDAY_MORNING
        earn = (await pos.new_basket())["basket_id"]  # ¥1,000 at the bakery, classic 85 % → 8 points
        await pos.call("POST", f"/v1/baskets/{earn}/member", {"token": await ledger.member_qr("M0001")})
        await pos.add_line(earn, sku="BIG", category="bakery", unit_price=100_000)
        sale = (await pos.complete_cash(earn, 85_000))["record"]
        assert sale["created_at"] == "2026-12-01T02:00:00.000Z"  # records keep the UTC instant
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        await gw.services.refresher.refresh_once()

        results = {}
        for moment in (TUESDAY_NIGHT_UTC, TUESDAY_MORNING):
            pricer.clock = lambda moment=moment: moment  # type: ignore[misc]
            basket = (await pos.new_basket())["basket_id"]
            await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
            await pos.add_line(basket, sku="SMALL", category="bakery", unit_price=1_000)
            priced = await pos.call("POST", f"/v1/baskets/{basket}/points", {"points": 8})
            results[moment] = (priced["total_offset"], priced["notices"])
            await pos.cancel(basket)
    assert results[TUESDAY_NIGHT_UTC] == (0, ["points offset is only on Tue, Fri"]), host_zone
    assert results[TUESDAY_MORNING] == (8, []), host_zone
