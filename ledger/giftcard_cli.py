"""``posgw-ledger giftcards issue|show|expire``: the operator's side of gift cards (``ledger/gift_cards.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import gift_cards
from ledger.store import LedgerStore
from protocols.business_day import business_day
from protocols.gift_cards import is_number
from protocols.money import format_cny


def add_command(sub: Any) -> argparse.ArgumentParser:
    cards = sub.add_parser("giftcards", help="gift cards: issue stock (numbers and GC1. codes), show one, expire")
    cards.add_argument("action", choices=["issue", "show", "expire"])
    cards.add_argument("number", nargs="?", help="show: the card's number (GC + 12 digits)")
    cards.add_argument("--count", type=int, default=1, choices=range(1, 10_001), metavar="1..10000")
    cards.add_argument("--day", help="expire: cards whose last day is before this business day end (default: today)")
    cards.add_argument("--json", action="store_true")
    return cards  # type: ignore[no-any-return]


async def run(store: LedgerStore, args: argparse.Namespace, issuer: Callable[[], Awaitable[Ed25519PrivateKey]]) -> int:
    zone = store.rules.shelf.zone
    if args.action == "issue":
        key = await issuer()
        made = await store.db.write(lambda tx: gift_cards.issue(tx, key, args.count))
        for number, code in made:  # to the card printer: the number on the card, the code as its QR
            print(json.dumps({"number": number, "code": code}) if args.json else f"{number}\t{code}")
        return 0
    if args.action == "show":
        if not args.number or not is_number(args.number):
            print(
                "posgw-ledger: giftcards show needs a card number (GC + 12 digits, check digit last)", file=sys.stderr
            )
            return 2
        card = await store.db.read(lambda tx: gift_cards.show(tx, args.number))
        if card is None:
            print(f"posgw-ledger: no gift card {args.number}", file=sys.stderr)
            return 1
        print(json.dumps(card, indent=2))
        return 0
    try:
        day = date.fromisoformat(args.day) if args.day else business_day(datetime.now(UTC), zone)
    except ValueError:
        print(f"posgw-ledger: --day {args.day!r} is not a YYYY-MM-DD day", file=sys.stderr)
        return 64
    lapsed = await store.db.write(lambda tx: gift_cards.expire(tx, day))
    for number, fen in sorted(lapsed.items()):
        print(f"  {number}: {format_cny(fen)} lapsed")
    print(f"{len(lapsed)} gift cards expired on {day}, {format_cny(sum(lapsed.values()))} in all")
    return 0
