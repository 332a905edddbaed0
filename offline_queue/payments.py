"""Payment intents: every payment request is on disk before it leaves the terminal.

A scan-to-pay payment is written here (state ``pending``) and committed before
the provider is asked for anything, its outcome is written when it is known,
and the sale that uses it settles it (``txn_id``) in the sale's own commit. So
after a crash the journal names every payment that might have moved money and
was not settled by a sale: the gateway resolves each one on restart (query,
then reverse). Only a hint of the payment code is kept (its last four
characters): the code itself is a one-time bearer credential.

Mixed into :class:`offline_queue.journal.TransactionJournal`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from offline_queue.access import JournalAccess
from offline_queue.errors import IdempotencyConflictError
from protocols.errors import FinalError
from protocols.micropay import Outcome
from protocols.refund import RefundOutcome

T = TypeVar("T")
OPEN_STATES = ("pending", "paid")  # unsettled payments in these states may hold money
# A record may settle a paid payment (a sale) or a refund that has an outcome (a refund record).
SETTLEABLE = ("paid", "refunded", "refund_refused", "refund_unknown")
# Detail used while the basket is open and never written down: a wallet's payer id
# identifies a person, and is only needed to find the member before the sale.
TRANSIENT_DETAIL = ("payer",)


def _kept(detail: dict[str, str]) -> str:
    return json.dumps({k: v for k, v in detail.items() if k not in TRANSIENT_DETAIL})


_COLUMNS = (
    "payment_id, basket_id, idempotency_key, wallet, provider, code_hint, amount, currency, state, history,"
    " created_at, updated_at, txn_id, detail"
)


class PaymentNotSettleableError(FinalError):
    """A sale named a payment that is not paid, or already belongs to another sale."""

    code = "payment-not-settleable"


PaymentState = Outcome | RefundOutcome
_OUTCOMES = {o.value: o for o in Outcome}


def payment_state(value: str) -> PaymentState:
    """A stored state as its enum: the two sets of values do not overlap."""
    return _OUTCOMES.get(value) or RefundOutcome(value)


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    payment_id: str  # also the reference the provider knows the payment by
    basket_id: str
    idempotency_key: str
    wallet: str  # wechat | alipay | ...
    provider: str  # the configured provider's name
    code_hint: str  # last four characters of the payment code
    amount: int  # fen
    currency: str
    state: PaymentState  # a payments micropay outcome, or a refund parts
    history: tuple[str, ...]
    created_at: str
    updated_at: str
    txn_id: str | None = None  # the sale that used it
    detail: dict[str, str] = field(default_factory=dict)  # a card's scheme, masked PAN, authorisation


def _intent(row: Sequence[Any]) -> PaymentIntent:
    payment_id, basket_id, key, wallet, provider, hint, amount, currency, state, history, created, updated, *rest = row
    txn, detail = rest
    return PaymentIntent(
        payment_id, basket_id, key, wallet, provider, hint, amount, currency, payment_state(state),
        tuple(json.loads(history)), created, updated, txn, json.loads(detail),
    )  # fmt: skip


def _select(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[PaymentIntent]:
    """Payments matching ``where`` (a constant condition of this module; values go in ``params``)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM payments WHERE {where}", params).fetchall()  # noqa: S608
    return [_intent(r) for r in rows]


def _insert(conn: sqlite3.Connection, p: PaymentIntent) -> None:
    conn.execute(
        f"INSERT INTO payments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 constant
        (
            p.payment_id,
            p.basket_id,
            p.idempotency_key,
            p.wallet,
            p.provider,
            p.code_hint,
            p.amount,
            p.currency,
            p.state,
            json.dumps(list(p.history)),
            p.created_at,
            p.updated_at,
            p.txn_id,
            _kept(p.detail),
        ),
    )


def check_settleable(conn: sqlite3.Connection, payment_ids: Sequence[str]) -> None:
    """Before a record writes anything: every payment it names has its outcome and is not yet used."""
    for payment_id in payment_ids:
        row = conn.execute("SELECT state, txn_id FROM payments WHERE payment_id = ?", (payment_id,)).fetchone()
        if row is None or row[0] not in SETTLEABLE or row[1] is not None:
            found = "unknown" if row is None else (f"used by sale {row[1]}" if row[1] else row[0])
            raise PaymentNotSettleableError(f"payment {payment_id} cannot pay for this sale: it is {found}")


def settle(conn: sqlite3.Connection, payment_ids: Sequence[str], txn_id: str) -> None:
    conn.executemany(
        "UPDATE payments SET txn_id = ? WHERE payment_id = ?", [(txn_id, payment_id) for payment_id in payment_ids]
    )


class JournalPayments:
    """Writes and reads of payment intents: a facet of the journal (``journal.payments``)."""

    def __init__(self, access: JournalAccess) -> None:
        self._read = access.read
        self._write = access.write

    async def begin_refunds(self, intents: Sequence[PaymentIntent]) -> None:
        """Commit the parts of one refund together, before any of them is asked of a provider."""

        def begin(conn: sqlite3.Connection) -> None:
            for intent in intents:
                if conn.execute(
                    "SELECT 1 FROM payments WHERE idempotency_key = ?", (intent.idempotency_key,)
                ).fetchone():
                    raise IdempotencyConflictError("this Idempotency-Key was already used for another refund")
            for intent in intents:
                _insert(conn, intent)

        await self._write(begin)

    async def open_refunds(self) -> list[PaymentIntent]:
        """Refund parts whose refund record is not written yet, oldest first."""
        return await self._read(
            lambda conn: _select(conn, "txn_id IS NULL AND state LIKE 'refund%' ORDER BY created_at", ())
        )

    async def begin_payment(self, intent: PaymentIntent) -> None:
        """Commit ``intent`` before its request leaves; an ``Idempotency-Key`` seen before is refused."""

        def begin(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM payments WHERE idempotency_key = ?", (intent.idempotency_key,)).fetchone():
                raise IdempotencyConflictError("this Idempotency-Key was already used for another payment")
            _insert(conn, intent)

        await self._write(begin)

    async def claim_code(self, nonce: str, payment_id: str) -> str | None:
        """A wallet code (its ``kid:nonce``) used by this payment: recorded whatever attached the member,
        whatever the payment's outcome. What used it before, when that was not this payment."""
        use = f"payment:{payment_id}"

        def claim(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT txn_id FROM used_member_codes WHERE nonce = ?", (nonce,)).fetchone()
            if row is not None:
                return None if row[0] == use else str(row[0])
            conn.execute("INSERT INTO used_member_codes (nonce, txn_id) VALUES (?, ?)", (nonce, use))
            return None

        return await self._write(claim)

    async def payment_by_key(self, idempotency_key: str) -> PaymentIntent | None:
        def get(conn: sqlite3.Connection) -> PaymentIntent | None:
            return next(iter(_select(conn, "idempotency_key = ?", (idempotency_key,))), None)

        return await self._read(get)

    async def payment_outcome(self, p: PaymentIntent) -> None:
        """Record where a payment stands (durably: the cashier is told only after this)."""

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE payments SET state = ?, history = ?, updated_at = ?, detail = ? WHERE payment_id = ?",
                (p.state, json.dumps(list(p.history)), p.updated_at, _kept(p.detail), p.payment_id),
            )

        await self._write(update)

    async def open_payments(self) -> list[PaymentIntent]:
        """Payments that may hold money with no sale to show for it, oldest first."""

        def find(conn: sqlite3.Connection) -> list[PaymentIntent]:
            return _select(conn, "txn_id IS NULL AND state IN (?, ?) ORDER BY created_at", OPEN_STATES)

        return await self._read(find)

    async def wallet_spending(self, member_id: str, since: str) -> tuple[int, int]:
        """A member's stored value spent here that the ledger's figures may miss, in fen.

        First: spent since a snapshot asked for at ``since`` (sales the ledger has
        not acknowledged or acknowledged after it, and paid payments not yet in a
        sale). Second: of that, what was spent offline and is not yet synced.
        """

        def spent(conn: sqlite3.Connection) -> tuple[int, int]:
            # A refund's wallet tender gives stored value back: it counts against what was spent.
            signed = (
                "CASE WHEN json_extract(j.body, '$.kind') = 'sale' THEN json_extract(t.value, '$.amount') "
                "ELSE -json_extract(t.value, '$.amount') END"
            )
            since_snapshot, offline = conn.execute(
                f"SELECT COALESCE(SUM({signed}), 0), "  # noqa: S608 constant
                f"COALESCE(SUM(CASE WHEN j.sync_status IS NULL AND json_extract(j.body, '$.offline') "
                f"THEN {signed} ELSE 0 END), 0) "
                "FROM journal j, json_each(j.body, '$.tenders') t "
                "WHERE json_extract(j.body, '$.member_id') = ? AND json_extract(t.value, '$.kind') = 'wallet' "
                "AND (j.sync_status IS NULL OR j.synced_at >= ?)",
                (member_id, since),
            ).fetchone()
            held, held_offline = conn.execute(
                "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(CASE WHEN json_extract(detail, '$.offline') "
                "THEN amount ELSE 0 END), 0) FROM payments WHERE wallet = 'wallet' AND state = 'paid' "
                "AND txn_id IS NULL AND json_extract(detail, '$.member_id') = ?",
                (member_id,),
            ).fetchone()
            return int(since_snapshot) + int(held), int(offline) + int(held_offline)

        return await self._read(spent)

    async def every(self) -> list[PaymentIntent]:
        """Every payment intent on file, oldest first (for audits and tests)."""
        return await self._read(lambda conn: _select(conn, "1 ORDER BY created_at", ()))

    async def needing_attention(self) -> list[PaymentIntent]:
        def find(conn: sqlite3.Connection) -> list[PaymentIntent]:
            return _select(conn, "state IN ('attention', 'refund_unknown') ORDER BY created_at", ())

        return await self._read(find)
