"""``posgw-ledger catalogue …`` and ``posgw-ledger orders …``: the operator's side of the points mall
(``ledger/points_mall.py``), each change in the audit trail."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from ledger import points_mall
from ledger.points_mall import PointsMallError
from ledger.store import LedgerStore

ITEM_ID = r"[A-Za-z0-9_.-]{1,64}"


def add_commands(sub: Any) -> list[argparse.ArgumentParser]:
    catalogue = sub.add_parser("catalogue", help="the points mall's catalogue: add an item, list, change stock")
    catalogue.add_argument("action", choices=["add", "list", "stock"])
    catalogue.add_argument("item_id", nargs="?")
    catalogue.add_argument("--name", help="add: what the member sees")
    catalogue.add_argument("--points", type=int, help="add: its price in points")
    catalogue.add_argument("--stock", type=int, default=0, help="add: how many; stock: how many more (negative: fewer)")
    catalogue.add_argument("--withdraw", action="store_true", help="stock: no longer offered")
    catalogue.add_argument("--offer", action="store_true", help="stock: offered again")
    orders = sub.add_parser("orders", help="the points mall's orders: a member's, or cancel one (points never taken)")
    orders.add_argument("action", choices=["list", "cancel"])
    orders.add_argument("subject", help="list: the member; cancel: the order")
    orders.add_argument("--reason", help="cancel: why (kept in the audit trail)")
    for parser in (catalogue, orders):
        parser.add_argument("--by", default=None, help="who does it (kept in the audit trail; default: $USER)")
        parser.add_argument("--json", action="store_true")
    return [catalogue, orders]


def _actor(args: argparse.Namespace) -> str:
    return str(args.by or os.environ.get("USER") or "operator")


async def run(store: LedgerStore, args: argparse.Namespace) -> int:
    try:
        return await (_catalogue(store, args) if args.command == "catalogue" else _orders(store, args))
    except PointsMallError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65  # EX_DATAERR


async def _catalogue(store: LedgerStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        items = await store.db.read(points_mall.catalogue)
        if args.json:
            print(json.dumps(items, indent=2))
        for item in [] if args.json else items:
            offered = "" if item["active"] else "  (withdrawn)"
            price = f"{item['points']:>8,} points  {item['stock']:>6} in stock"
            print(f"  {item['item_id']:<16} {price}  {item['name']}{offered}")
        return 0
    if not args.item_id or not _is_item(args.item_id):
        print(f"posgw-ledger: catalogue {args.action} needs an item id ({ITEM_ID})", file=sys.stderr)
        return 2
    actor = _actor(args)
    if args.action == "add":
        if not args.name or not args.points or args.points < 1 or args.stock < 0:
            print("posgw-ledger: catalogue add needs --name, --points (at least 1) and --stock", file=sys.stderr)
            return 2
        await store.db.write(
            lambda tx: points_mall.add_item(tx, args.item_id, args.name, args.points, args.stock, actor)
        )
        print(f"{args.item_id}: {args.name}, {args.points:,} points, {args.stock} in stock")
        return 0
    active = False if args.withdraw else (True if args.offer else None)
    item = await store.db.write(lambda tx: points_mall.restock(tx, args.item_id, args.stock, active, actor))
    print(f"{item['item_id']}: {item['stock']} in stock{'' if item['active'] else ', withdrawn'}")
    return 0


async def _orders(store: LedgerStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        orders = await store.db.read(lambda tx: points_mall.orders_of(tx, args.subject))
        if args.json:
            print(json.dumps(orders, indent=2))
        for o in [] if args.json else orders:
            print(f"  {o['order_id']}  {o['item_id']:<16} ×{o['quantity']}  {o['points']:>8,} points  {o['state']}")
        return 0
    if not args.reason:
        print("posgw-ledger: orders cancel needs --reason (kept in the audit trail)", file=sys.stderr)
        return 2
    order = await store.db.write(lambda tx: points_mall.cancel(tx, args.subject, None, _actor(args)))
    print(f"order {order['order_id']} cancelled: {order['points']:,} points no longer held, the item back in stock")
    return 0


def _is_item(text: str) -> bool:
    return re.fullmatch(ITEM_ID, text) is not None
