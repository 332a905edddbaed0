"""The points mall (Mallcoo's 积分商城): a catalogue of goods for points, and orders that hold then take them.

An operator keeps the catalogue (``posgw-ledger catalogue …``: an item, its
price in points, its stock). A member orders from the member app: the order
*holds* the points (the one hold primitive, ``ledger/holds.py``: they stop
counting toward what the member may spend, for ``ORDER_DAYS``) and takes the
item from stock. At a service desk the member shows their own code and the
till *fulfils* the order: the hold is posted, the points are taken (a
posting set ``order:<id>`` of kind ``exchange``, counted as points exchanged
on the day of fulfilment). Cancelled (by the member, or an operator) before
that, the hold is voided and the item goes back to stock: no point was ever
taken. Every step is kept on the order with who did it and when.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from ledger import holds, postings
from ledger.database import Tx
from ledger.identity import audit
from protocols.business_day import business_day
from protocols.errors import FinalError

ORDER_DAYS = 30  # an order's points stay held this long; after it, the order lapses unfulfilled
MAX_QUANTITY = 99


class PointsMallError(FinalError):
    """An order or catalogue change that cannot be made; ``status``: the HTTP answer."""

    code = "points-mall"
    status = 409

    def __init__(self, message: str, code: str = "points-mall", status: int = 409) -> None:
        super().__init__(message)
        self.code, self.status = code, status


_ITEM = ("item_id", "name", "points", "stock", "active")
_ORDER = ("order_id", "member_id", "item_id", "quantity", "points", "state", "placed_at", "decided_at",
          "decided_by", "terminal_id")  # fmt: skip


async def add_item(tx: Tx, item_id: str, name: str, points: int, stock: int, actor: str) -> None:
    if await tx.one("SELECT 1 FROM catalogue WHERE item_id = $1", item_id):
        raise PointsMallError(f"item {item_id} is in the catalogue already: change its stock instead")
    await tx.run(
        "INSERT INTO catalogue (item_id, name, points, stock, active, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
        item_id,
        name,
        points,
        stock,
        _now(),
    )
    await audit(tx, actor, "catalogue-add", item_id, {"name": name, "points": points, "stock": stock})


async def restock(tx: Tx, item_id: str, change: int, active: bool | None, actor: str) -> dict[str, Any]:
    """Stock added (or taken, never below zero), the item withdrawn or offered again; the item."""
    item = await get_item(tx, item_id)
    if item["stock"] + change < 0:
        raise PointsMallError(f"item {item_id} has {item['stock']} in stock: {change} would go below zero")
    await tx.run("UPDATE catalogue SET stock = stock + $1 WHERE item_id = $2", change, item_id)
    if active is not None:
        await tx.run("UPDATE catalogue SET active = $1 WHERE item_id = $2", int(active), item_id)
    await audit(tx, actor, "catalogue-stock", item_id, {"change": change, "active": active})
    return await get_item(tx, item_id)


async def get_item(tx: Tx, item_id: str) -> dict[str, Any]:
    row = await tx.one(f"SELECT {', '.join(_ITEM)} FROM catalogue WHERE item_id = $1", item_id)  # noqa: S608
    if row is None:
        raise PointsMallError(f"no item {item_id} in the catalogue", "unknown-item", 404)
    return {**dict(zip(_ITEM, row, strict=True)), "active": bool(row[4])}


async def catalogue(tx: Tx, offered_only: bool = False) -> list[dict[str, Any]]:
    where = "WHERE active = 1 AND stock > 0 " if offered_only else ""
    rows = await tx.all(f"SELECT {', '.join(_ITEM)} FROM catalogue {where}ORDER BY item_id")  # noqa: S608
    return [{**dict(zip(_ITEM, row, strict=True)), "active": bool(row[4])} for row in rows]


async def place(tx: Tx, member_id: str, item_id: str, quantity: int) -> dict[str, Any]:
    """A member's order: the points held, the item out of stock; the order."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise PointsMallError(f"order 1 to {MAX_QUANTITY} of an item", "bad-quantity", 422)
    item = await get_item(tx, item_id)
    if not item["active"] or item["stock"] < quantity:
        raise PointsMallError(f"{item['name']} is not to be had ({item['stock']} in stock)", "out-of-stock")
    points = item["points"] * quantity
    order_id = f"O{secrets.token_hex(8)}"
    now = time.time()
    held, left = await holds.place(
        tx, f"order:{order_id}", "points", member_id, points, "", now, order_id, ttl=ORDER_DAYS * 86_400
    )
    if not held:
        raise PointsMallError(f"{points:,} points are needed, the member may spend {left:,}", "points-refused", 422)
    await tx.run("UPDATE catalogue SET stock = stock - $1 WHERE item_id = $2", quantity, item_id)
    await tx.run(
        "INSERT INTO mall_orders (order_id, member_id, item_id, quantity, points, state, placed_at) "
        "VALUES ($1, $2, $3, $4, $5, 'placed', $6)",
        order_id,
        member_id,
        item_id,
        quantity,
        points,
        _now(),
    )
    return await get_order(tx, order_id)


async def get_order(tx: Tx, order_id: str) -> dict[str, Any]:
    row = await tx.one(f"SELECT {', '.join(_ORDER)} FROM mall_orders WHERE order_id = $1", order_id)  # noqa: S608
    if row is None:
        raise PointsMallError(f"no order {order_id}", "unknown-order", 404)
    return dict(zip(_ORDER, row, strict=True))


async def orders_of(tx: Tx, member_id: str) -> list[dict[str, Any]]:
    rows = await tx.all(
        f"SELECT {', '.join(_ORDER)} FROM mall_orders WHERE member_id = $1 ORDER BY placed_at",  # noqa: S608
        member_id,
    )
    return [dict(zip(_ORDER, row, strict=True)) for row in rows]


async def fulfil(tx: Tx, order_id: str, member_id: str, terminal_id: str, zone: str, code: str) -> dict[str, Any]:
    """The member collects the order at ``terminal_id``'s desk, showing their code (its ``kid:nonce``: one code
    hands over one order, so a till that once saw it cannot collect the member's other orders); the held
    points are taken; the order."""
    order = await _placed(tx, order_id, member_id)
    if earlier := await holds.use_code(tx, f"order:{code}", member_id, terminal_id, order_id, None, time.time()):
        raise PointsMallError(
            f"this member code already handed over an order ({earlier}): ask for a fresh code", "code-used"
        )
    hold = await holds.get(tx, f"order:{order_id}")
    if hold is None or hold.state != "pending" or hold.expires_at < time.time():
        raise PointsMallError(f"order {order_id} has lapsed: its points are no longer held; the member orders again")
    row = await tx.one("SELECT points FROM members WHERE member_id = $1", member_id)
    assert row is not None
    txn = f"order:{order_id}"
    applied, shortfall, rows = postings.plan(txn, member_id, "points", int(row[0]), -order["points"], "exchange", txn)
    await tx.many(postings.INSERT, rows)
    await tx.run("UPDATE members SET points = points + $1 WHERE member_id = $2", applied, member_id)
    await tx.run(holds.POST, txn, txn)
    now = _now()
    await tx.run(
        "UPDATE mall_orders SET state = 'fulfilled', decided_at = $1, decided_by = $2, terminal_id = $2, day = $3 "
        "WHERE order_id = $4",
        now,
        terminal_id,
        business_day(now, zone).isoformat(),
        order_id,
    )
    if shortfall:  # spent at an offline till meanwhile: the mall's loss, noted like any overdraft
        await tx.run(
            "INSERT INTO conflicts (txn_id, terminal_id, detail) VALUES ($1, $2, $3)",
            txn,
            terminal_id,
            f"points overdrawn by {shortfall} (spent offline while held for order {order_id})",
        )
    return await get_order(tx, order_id)


async def cancel(tx: Tx, order_id: str, member_id: str | None, actor: str) -> dict[str, Any]:
    """Cancelled before it was collected: the hold voided (nothing was taken), the item back in stock."""
    order = await _placed(tx, order_id, member_id)
    await tx.run("UPDATE holds SET state = 'voided' WHERE ref = $1 AND state = 'pending'", f"order:{order_id}")
    await tx.run("UPDATE catalogue SET stock = stock + $1 WHERE item_id = $2", order["quantity"], order["item_id"])
    await tx.run(
        "UPDATE mall_orders SET state = 'cancelled', decided_at = $1, decided_by = $2 WHERE order_id = $3",
        _now(),
        actor,
        order_id,
    )
    await audit(tx, actor, "order-cancelled", order["member_id"], {"order_id": order_id, "points": order["points"]})
    return await get_order(tx, order_id)


async def _placed(tx: Tx, order_id: str, member_id: str | None) -> dict[str, Any]:
    order = await get_order(tx, order_id)
    if member_id is not None and order["member_id"] != member_id:
        raise PointsMallError(f"order {order_id} is another member's", "unknown-order", 404)
    if order["state"] != "placed":
        raise PointsMallError(f"order {order_id} was {order['state']} already", "order-closed")
    return order


def _now() -> str:
    return datetime.now(UTC).isoformat()
