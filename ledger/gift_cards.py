"""Gift cards at the ledger (the rules: ``protocols/gift_cards.py``): stored-value accounts without a member.

Cards are issued as stock (``posgw-ledger giftcards issue``: each number with
its ``GC1.`` code, signed by the issuer key). A believed sale that loads a
card credits it (``gc-load``; the first load activates it until
``validity_days`` after that business day); a ``giftcard`` tender debits it
(``gc-pay``; spending beyond the balance, two offline tills, posts the
shortfall to ``mall:overdraft`` and records a conflict); a refund gives back
to the card (``gc-refund``) or takes back a load (``gc-unload``, no more than
the card holds: the re-check refuses more). Each card's balance is a cache
of its postings (``giftcard:<number>`` against ``mall:giftcards``), kept in
the same transaction and proved by ``posgw-ledger check``. A till may hold
what it is about to take (the one hold primitive, ``giftcard:<number>`` as
its holder). The expiry run ends cards past their day: what is left lapses
to the mall (``gc-expiry``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import holds
from ledger.database import Tx, marks
from protocols.gift_cards import GIFT_CARD_PREFIX, check_digit
from protocols.tokens import TokenClaims, key_id, sign_token

CARD_CODE_LIFETIME = 20 * 365 * 86_400  # the code printed on a card outlives the card
INSERT_POSTING = "INSERT INTO postings (txn_id, ref, account, unit, amount, kind) VALUES ($1, $2, $3, 'fen', $4, $5)"


def holder(number: str) -> str:
    """The account a card's holds and postings name."""
    return f"giftcard:{number}"


@dataclass
class Card:
    number: str
    state: str
    balance: int
    expires_on: str | None

    def refusal(self, day: date) -> str | None:
        """Why the card takes no money or payment on ``day``, or None."""
        if self.state == "expired" or (self.expires_on is not None and day.isoformat() >= self.expires_on):
            return f"gift card {self.number} expired on {self.expires_on}"
        return None


@dataclass
class CardBook:
    """The cards a group of records loads or spends, decided in memory, written at the end."""

    cards: dict[str, Card] = field(default_factory=dict)
    loaded: dict[tuple[str, str], int] = field(default_factory=dict)  # (terminal, day) -> fen loaded there
    rows: list[tuple[str, str | None, str, int, str]] = field(default_factory=list)  # postings
    loads: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    async def load(self, tx: Tx, numbers: list[str], days: set[tuple[str, str]]) -> None:
        if numbers:
            for number, state, balance, expires_on in await tx.all(
                "SELECT number, state, balance, expires_on FROM gift_cards "  # noqa: S608
                f"WHERE number IN ({marks(len(numbers))})",
                *numbers,
            ):
                self.cards[str(number)] = Card(str(number), str(state), int(balance), expires_on)
        for terminal_id, day in sorted(days):
            row = await tx.one(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM gift_card_loads "
                "WHERE terminal_id = $1 AND day = $2",
                terminal_id,
                day,
            )
            self.loaded[(terminal_id, day)] = int(row[0]) if row else 0

    def load_onto(self, txn_id: str, number: str, amount: int, terminal_id: str, day: date, valid_days: int) -> None:
        """A believed load (negative: given back): the card credited, activated at its first load."""
        card = self.cards[number]
        if card.state == "stock" and amount > 0:
            card.state, card.expires_on = "active", (day + timedelta(days=valid_days)).isoformat()
        taken = amount if amount > 0 else -min(-amount, card.balance)
        self._post(txn_id, None, card, taken, "gc-load" if amount > 0 else "gc-unload")
        self.loads.append((txn_id, number, amount, terminal_id, day.isoformat()))
        key = (terminal_id, day.isoformat())
        self.loaded[key] = self.loaded.get(key, 0) + amount

    def pay(self, txn_id: str, ref: str | None, number: str, amount: int) -> int:
        """A believed gift card tender (negative: a refund giving back to the card); the shortfall, if any."""
        card = self.cards[number]
        applied = max(-amount, -card.balance)
        self._post(txn_id, ref, card, applied, "gc-pay" if amount > 0 else "gc-refund")
        shortfall = applied + amount
        if shortfall:
            self.rows.append((txn_id, ref, "mall:overdraft", -shortfall, "overdraft"))
            self.rows.append((txn_id, ref, "mall:giftcards", shortfall, "overdraft"))
        return shortfall

    def _post(self, txn_id: str, ref: str | None, card: Card, delta: int, kind: str) -> None:
        card.balance += delta
        self.rows.append((txn_id, ref, holder(card.number), delta, kind))
        self.rows.append((txn_id, ref, "mall:giftcards", -delta, kind))
        self.changed.add(card.number)

    async def write(self, tx: Tx, now: str) -> None:
        await tx.many(INSERT_POSTING, self.rows)
        await tx.many(
            "INSERT INTO gift_card_loads (txn_id, number, amount, terminal_id, day) VALUES ($1, $2, $3, $4, $5)",
            self.loads,
        )
        await tx.many(
            "UPDATE gift_cards SET balance = $1, state = $2, expires_on = $3, "
            "activated_at = COALESCE(activated_at, $4) WHERE number = $5",
            [(c.balance, c.state, c.expires_on, now, c.number) for n in sorted(self.changed) if (c := self.cards[n])],
        )


def new_number() -> str:
    body = "".join(secrets.choice("0123456789") for _ in range(11))
    return f"GC{body}{check_digit(body)}"


async def issue(tx: Tx, key: Ed25519PrivateKey, count: int) -> list[tuple[str, str]]:
    """``count`` new cards as stock: (number, its ``GC1.`` code), to print on the cards."""
    now, kid = int(time.time()), key_id(key.public_key())
    made: list[tuple[str, str]] = []
    while len(made) < count:
        number = new_number()
        if await tx.one("SELECT 1 FROM gift_cards WHERE number = $1", number):
            continue
        await tx.run(
            "INSERT INTO gift_cards (number, state, balance, issued_at) VALUES ($1, 'stock', 0, $2)",
            number,
            datetime.now(UTC).isoformat(),
        )
        claims = TokenClaims(GIFT_CARD_PREFIX, number, now, now + CARD_CODE_LIFETIME, secrets.token_urlsafe(9), kid)
        made.append((number, sign_token(GIFT_CARD_PREFIX, claims, key)))
    return made


async def show(tx: Tx, number: str) -> dict[str, Any] | None:
    row = await tx.one("SELECT number, state, balance, expires_on FROM gift_cards WHERE number = $1", number)
    if row is None:
        return None
    held = await tx.one(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM holds WHERE member_id = $1 AND unit = 'fen' "
        "AND state = 'pending' AND expires_at >= $2",
        holder(number),
        time.time(),
    )
    balance = int(row[2])
    return {
        "number": row[0],
        "state": row[1],
        "balance": balance,
        "available": balance - (int(held[0]) if held else 0),
        "expires_on": row[3],
    }


async def hold(tx: Tx, number: str, amount: int, ref: str, terminal_id: str, day: date) -> tuple[bool, str]:
    """Hold ``amount`` of a card for payment ``ref`` of ``terminal_id`` (the one hold primitive, the card its
    holder): (held, why not). The same ref again is the same hold."""
    card = await show(tx, number)
    if card is None:
        return False, f"no gift card {number}"
    found = Card(number, card["state"], card["balance"], card["expires_on"])
    if why := found.refusal(day):
        return False, why
    if card["state"] != "active":
        return False, f"gift card {number} was never loaded: it pays nothing"
    earlier = await holds.get(tx, ref)
    if earlier is not None:
        same = (earlier.member_id, earlier.amount, earlier.terminal_id) == (holder(number), amount, terminal_id)
        return same and earlier.state == "pending", "another payment holds by this reference"
    if card["available"] < amount:
        return False, f"gift card {number} has {card['available']} fen to spend"
    await holds.insert(tx, ref, "fen", holder(number), amount, terminal_id, time.time())
    return True, ""


async def expire(tx: Tx, day: date) -> dict[str, int]:
    """Cards whose day has come end: what is left on each lapses to the mall; by card. Again: nothing more."""
    rows = await tx.all(
        "SELECT number, balance FROM gift_cards WHERE state = 'active' AND expires_on <= $1", day.isoformat()
    )
    lapsed = {}
    for number, balance in rows:
        if int(balance):
            txn = f"gc-expiry:{number}"
            await tx.many(
                INSERT_POSTING,
                [(txn, None, holder(str(number)), -int(balance), "gc-expiry"),
                 (txn, None, "mall:giftcards", int(balance), "gc-expiry")],
            )  # fmt: skip
        lapsed[str(number)] = int(balance)
    await tx.run(
        "UPDATE gift_cards SET state = 'expired', balance = 0 WHERE state = 'active' AND expires_on <= $1",
        day.isoformat(),
    )
    return lapsed
