"""Returns at any till: a till asks for a sale of another till of the mall, to refund it (``gateway/sale/refunds.py``).

The answer is the sale as its till signed it and every refund of it the
ledger has applied, from any till: what the asking till plans its refund on,
and what the ledger re-checks the refund against when it comes back
(``ledger/recheck.py``: refundable amounts across all tills). Only a sale the
ledger believed is given; look-ups are paced per terminal like identifier
look-ups, and a sale is found only by its ``txn_id`` (on its receipt's return
code), so no till can walk another's sales. Each look-up is kept
(``sale_lookups``): a refund of another till's sale is believed only from a
till that asked for it, so a return is never made offline, or blind.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

from aiohttp import web

from ledger.database import Tx
from ledger.http import SERVICE, me, problem

_TXN = re.compile(r"[0-9a-f-]{36}")


async def sale_for_return(request: web.Request) -> web.Response:
    """``GET /v1/sales/{txn_id}``: ``{"sale", "refunds"}``; 404 unknown, 409 not believed (in quarantine)."""
    svc = request.app[SERVICE]
    txn_id = request.match_info["txn_id"]
    if not _TXN.fullmatch(txn_id):
        return problem(422, "bad-txn-id", "a sale's txn_id is 36 characters of hex and dashes")
    if (wait := svc.lookups.take(me(request).name, time.monotonic())) > 0:
        response = problem(429, "too-many-lookups", f"sale look-ups are paced; try again in {wait:.1f} s")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response

    async def read(tx: Tx) -> tuple[str, str, list[str]] | None:
        row = await tx.one("SELECT body, state FROM transactions WHERE txn_id = $1", txn_id)
        if row is None:
            return None
        await tx.run(  # the refund this till makes of it must have asked first (``ledger/recheck.py``)
            "INSERT INTO sale_lookups VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            txn_id,
            me(request).name,
            datetime.now(UTC).isoformat(),
        )
        refunds = await tx.all(
            "SELECT body FROM transactions WHERE refund_of = $1 AND state = 'applied' ORDER BY received_at, epoch, seq",
            txn_id,
        )
        return str(row[0]), str(row[1]), [str(b) for (b,) in refunds]

    found = await svc.store.db.write(read)
    if found is None:
        return problem(404, "unknown-sale", f"the ledger holds no sale {txn_id}")
    body, state, refunds = found
    sale = json.loads(body)
    if sale.get("kind") != "sale":
        return problem(409, "not-a-sale", f"{txn_id} is a {sale.get('kind')}, not a sale: only a sale is returned")
    if state != "applied":
        return problem(409, "sale-not-believed", f"sale {txn_id} is {state} at the ledger: it cannot be returned")
    return web.json_response({"sale": sale, "refunds": [json.loads(b) for b in refunds]})
