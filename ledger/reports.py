"""Reports for the mall's operators, from the ledger's records (and a terminal's journal export).

All money is integer fen, summed exactly. A *day* is the mall's business day
(``protocols/business_day.py``): records keep UTC instants, the day is cut at
midnight in the rulebook's time zone.

Points are counted the same way in every report, from what the ledger
posted (``ledger/postings.py``), so the day report and the points books use
one set of definitions:

| figure | what it counts |
|---|---|
| issued | points earned by sales (``earn``) |
| clawed back | points refunds took back, as their units had earned them |
| redeemed | points spent: ``offset`` (as money) + ``exchanged`` (for items) (+ unsplit, records before v2) |
| returned | points refunds gave back, as their units had consumed them |
| expired | points that lapsed unspent (year-end clearing) |
| overdrawn | spent beyond a balance (two offline tills): the mall's loss, settled apart |
| netted | moved before postings said what moved, by no record the ledger holds (old files) |
| adjusted | an operator's adjustments, either way (``ledger/control_desk.py``), on the day they were made |
| outstanding | the members' balances |

and conservation holds: ``issued − clawed back − redeemed + returned − expired + overdrawn (+ netted)
+ adjusted = outstanding``,
checked by ``posgw-ledger check``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.database import Database, Tx, marks
from ledger.postings import CheckProblem
from ledger.postings import check as check_postings
from ledger.rulebooks import Shelf
from ledger.settlement import TenantDay, settle
from protocols.business_day import DEFAULT_ZONE, business_day, day_bounds
from protocols.records import TransactionRecord
from protocols.shifts import EVENT_KINDS
from protocols.stored_value import TOPUP_SKU

Record = dict[str, Any]


@dataclass
class Totals:
    """One terminal's day, to the fen."""

    sales: int = 0
    sales_due: int = 0
    refunds: int = 0
    refunds_due: int = 0
    by_tender: Counter[str] = field(default_factory=Counter)  # net of change, refunds negative
    txn_ids: set[str] = field(default_factory=set)
    joins: int = 0  # customers enrolled (no money moves)
    topups: int = 0  # stored value sold (money in, not a sale of goods)
    topups_due: int = 0

    def add(self, r: Record) -> None:
        self.txn_ids.add(r["txn_id"])
        if r["kind"] == "join":
            self.joins += 1
            return
        if r["kind"] in EVENT_KINDS:  # a shift's ends, a drawer opened: no money
            return
        sign = 1 if r["kind"] in ("sale", "topup") else -1
        if r["kind"] == "topup":
            self.topups += 1
            self.topups_due += r["total_due"]
        elif sign > 0:
            self.sales += 1
            self.sales_due += r["total_due"]
        else:
            self.refunds += 1
            self.refunds_due += r["total_due"]
        for t in r["tenders"]:
            self.by_tender[t["kind"]] += sign * t["amount"]
        self.by_tender["cash"] -= sign * r.get("change", 0)

    def figures(self) -> dict[str, int]:
        return {
            "sales": self.sales,
            "sales_due": self.sales_due,
            "refunds": self.refunds,
            "refunds_due": self.refunds_due,
            **({"joins": self.joins} if self.joins else {}),
            **({"topups": self.topups, "topups_due": self.topups_due} if self.topups else {}),
            **{f"tender:{k}": v for k, v in sorted(self.by_tender.items()) if v},
        }


def totals_by_terminal(records: Iterable[Record], day: str, zone: str = DEFAULT_ZONE) -> dict[str, Totals]:
    """Each terminal's records of the mall's ``day``: every record held, believed or in quarantine."""
    out: dict[str, Totals] = defaultdict(Totals)
    for r in records:
        if business_day(r["created_at"], zone).isoformat() == day:
            out[r["terminal_id"]].add(r)
    return dict(out)


@dataclass(frozen=True, slots=True)
class Difference:
    terminal_id: str
    what: str
    terminal: int | str
    ledger: int | str


def reconcile(terminal: dict[str, Totals], ledger: dict[str, Totals]) -> list[Difference]:
    """Every figure where a terminal's journal and the ledger disagree, and the records behind it."""
    found: list[Difference] = []
    for terminal_id in sorted(set(terminal) | set(ledger)):
        mine, theirs = terminal.get(terminal_id, Totals()), ledger.get(terminal_id, Totals())
        a, b = mine.figures(), theirs.figures()
        found += [
            Difference(terminal_id, key, a.get(key, 0), b.get(key, 0))
            for key in sorted(set(a) | set(b))
            if a.get(key, 0) != b.get(key, 0)
        ]
        found += [
            Difference(terminal_id, "not at the ledger (not synced, or rejected)", txn_id, "-")
            for txn_id in sorted(mine.txn_ids - theirs.txn_ids)
        ]
        found += [
            Difference(terminal_id, "at the ledger only (not in this journal)", "-", txn_id)
            for txn_id in sorted(theirs.txn_ids - mine.txn_ids)
        ]
    return found


def day_summary(
    records: Iterable[Record], day: str, points: dict[str, int], zone: str = DEFAULT_ZONE
) -> dict[str, Any]:
    """Member share of sales, points (``points``: :func:`points_posted` for the day), coupons redeemed,
    stored value; records in quarantine counted apart, never in the figures."""
    sales = member_sales = joins = topups = bonus = 0
    coupons: Counter[str] = Counter()
    wallet = 0
    held = Counter[str]()
    for r in records:
        if business_day(r["created_at"], zone).isoformat() != day:
            continue
        if r.get("state", "applied") != "applied":
            held[r.get("state", "")] += 1
            held["quarantined_due"] += r["total_due"] if r.get("state") == "quarantined" else 0
            continue
        if r["kind"] == "join":
            joins += 1
            continue
        if r["kind"] in EVENT_KINDS:
            continue
        if r["kind"] == "topup":  # stored value sold: a liability taken on, not a sale
            topups += r["total_due"]
            bonus += r.get("bonus", 0)
            continue
        if r["kind"] == "refund" and r.get("reservation") and all(x["sku"] == TOPUP_SKU for x in r["lines"]):
            topups -= r["total_due"]  # a top-up given back (on a stored-value hold, one line of stored value)
            continue
        sign = 1 if r["kind"] == "sale" else -1
        sales += sign * r["total_due"]
        if r.get("member_id"):
            member_sales += sign * r["total_due"]
        for c in r.get("coupons", []):
            coupons[c.partition(":")[0]] += 1
        wallet += sum(sign * t["amount"] for t in r["tenders"] if t["kind"] == "wallet")
    return {
        "day": day,
        "zone": zone,
        "sales_net": sales,
        "member_sales_net": member_sales,
        "member_share": member_sales / sales if sales else 0.0,
        "points": points,
        "coupons_redeemed": dict(sorted(coupons.items())),
        "wallet_paid_net": wallet,
        "joins": joins,
        "topups": topups,  # net of top-ups given back
        "topup_bonus": bonus,
        "quarantined": held.get("quarantined", 0),
        "quarantined_due": held.get("quarantined_due", 0),
    }


POINT_FIGURES = (
    "issued", "clawed_back", "redeemed", "offset", "exchanged", "unsplit", "returned", "netted", "adjusted"
)  # fmt: skip
# The mall's side of each kind of posting, and the sign that makes it the figure.
_MALL_KINDS = {"earn": ("issued", -1), "clawback": ("clawed_back", 1), "offset": ("offset", 1),
               "exchange": ("exchanged", 1), "spend": ("unsplit", 1), "return": ("returned", -1),
               "netted": ("netted", -1), "adjust": ("adjusted", -1)}  # fmt: skip


def _figures(rows: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    out = dict.fromkeys(POINT_FIGURES, 0)
    for kind, total in rows:
        if kind in _MALL_KINDS:
            name, sign = _MALL_KINDS[kind]
            out[name] += sign * int(total)
    out["redeemed"] = out["offset"] + out["exchanged"] + out["unsplit"]
    return out


async def points_posted(tx: Tx, start: str, end: str, day: str) -> dict[str, int]:
    """The points figures of the records made in ``[start, end)`` (UTC text, ``day_bounds``), and what the
    year-end clearing run for ``day`` (its cutoff) let lapse."""
    rows = await tx.all(
        "SELECT p.kind, CAST(SUM(p.amount) AS BIGINT) FROM postings p JOIN transactions t USING (txn_id) "
        "WHERE t.created_at >= $1 AND t.created_at < $2 AND p.unit = 'points' AND p.account = 'mall:points' "
        "GROUP BY p.kind",
        start,
        end,
    )
    expired = await tx.one(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM postings WHERE account = 'mall:expired' "
        "AND txn_id LIKE $1",
        f"expiry:{day}:%",
    )
    adjusted = await tx.one(
        "SELECT CAST(COALESCE(-SUM(p.amount), 0) AS BIGINT) FROM postings p JOIN adjustments a "
        "ON p.txn_id = 'adjust:' || CAST(a.id AS TEXT) WHERE a.day = $1 AND p.account = 'mall:points'",
        day,
    )
    ordered = await tx.one(
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM mall_orders WHERE state = 'fulfilled' AND day = $1", day
    )
    figures = _figures((k, v) for k, v in rows)
    figures["orders"] = int(ordered[0]) if ordered else 0  # the points mall's orders collected that day
    figures["exchanged"] += figures["orders"]
    figures["redeemed"] += figures["orders"]
    return {**figures, "expired": int(expired[0]) if expired else 0, "adjusted": int(adjusted[0]) if adjusted else 0}


async def points_books(tx: Tx) -> dict[str, int]:
    """Every points figure since the books began, and the balances they come to."""
    rows = await tx.all(
        "SELECT kind, CAST(SUM(amount) AS BIGINT) FROM postings WHERE unit = 'points' AND account = 'mall:points' "
        "GROUP BY kind"
    )
    books = _figures((k, v) for k, v in rows)
    other = await tx.one(
        "SELECT CAST(COALESCE(SUM(CASE WHEN account = 'mall:expired' THEN amount END), 0) AS BIGINT), "
        "CAST(COALESCE(-SUM(CASE WHEN account = 'mall:overdraft' THEN amount END), 0) AS BIGINT), "
        "CAST(COALESCE(SUM(CASE WHEN account LIKE 'member:%' THEN amount END), 0) AS BIGINT) "
        "FROM postings WHERE unit = 'points'"
    )
    expired, overdrawn, outstanding = (int(v) for v in other) if other else (0, 0, 0)
    return {**books, "expired": expired, "overdrawn": overdrawn, "outstanding": outstanding}


def conserved(books: dict[str, int]) -> int:
    """What the flows say the members hold: issued − clawed back − redeemed + returned − expired + overdrawn."""
    return (
        books["issued"] - books["clawed_back"] - books["redeemed"] + books["returned"]
        - books["expired"] + books["overdrawn"] + books["netted"] + books["adjusted"]
    )  # fmt: skip


async def conservation(tx: Tx) -> list[CheckProblem]:
    """Points conservation: the flows the books record come to the balances members hold."""
    books = await points_books(tx)
    if conserved(books) != books["outstanding"]:
        return [
            CheckProblem(
                f"points do not add up: the flows come to {conserved(books)}, members hold {books['outstanding']}"
            )
        ]
    return []


class ReportBook:
    """The store's facet for reports and checks (``store.reports``), by the mall's business day."""

    def __init__(self, db: Database, shelf: Callable[[], Shelf]) -> None:
        self.db = db
        self.shelf = shelf

    async def conflicts(self) -> list[dict[str, str]]:
        rows = await self.db.read(lambda tx: tx.all("SELECT txn_id, terminal_id, detail FROM conflicts ORDER BY id"))
        return [{"txn_id": t, "terminal_id": term, "detail": d} for t, term, d in rows]

    async def records_of_day(self, day: str) -> list[dict[str, Any]]:
        """Every record the ledger holds that a terminal made on the mall's business ``day`` (YYYY-MM-DD),
        each with ``"state"`` beside it (applied, quarantined, rejected)."""
        start, end = day_bounds(day, self.shelf().zone)
        return await self.records_between(start, end)

    async def records_between(self, start: str, end: str) -> list[dict[str, Any]]:
        """Every record made in ``[start, end)`` (UTC text as :func:`day_bounds` writes it), with its state."""
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT body, state FROM transactions WHERE created_at >= $1 AND created_at < $2 "
                "ORDER BY terminal_id, epoch, seq",
                start,
                end,
            )
        )
        return [{**json.loads(body), "state": str(state)} for body, state in rows]

    async def settlement_of_day(self, day: str) -> dict[str, TenantDay]:
        """The tenant settlement of ``day`` (``ledger/settlement.py``)."""
        start, end = day_bounds(day, self.shelf().zone)

        async def read(tx: Tx) -> dict[str, TenantDay]:
            bodies = await tx.all(
                "SELECT body FROM transactions WHERE created_at >= $1 AND created_at < $2 AND state = 'applied' "
                "ORDER BY created_at, terminal_id, epoch, seq",
                start,
                end,
            )
            records = [TransactionRecord.from_wire(json.loads(b)) for (b,) in bodies]
            refunded = sorted({str(r.refund_of) for r in records if r.refund_of})
            sales: dict[str, TransactionRecord] = {}
            refunds_of: dict[str, list[TransactionRecord]] = {}
            if refunded:
                ids = marks(len(refunded))
                for (b,) in await tx.all(f"SELECT body FROM transactions WHERE txn_id IN ({ids})", *refunded):  # noqa: S608
                    sale = TransactionRecord.from_wire(json.loads(b))
                    sales[sale.txn_id] = sale
                for (b,) in await tx.all(
                    f"SELECT body FROM transactions WHERE refund_of IN ({ids}) AND state = 'applied' "  # noqa: S608
                    "ORDER BY created_at, terminal_id, epoch, seq",
                    *refunded,
                ):
                    refund = TransactionRecord.from_wire(json.loads(b))
                    refunds_of.setdefault(str(refund.refund_of), []).append(refund)
            points = {
                str(t): int(n)
                for t, n in await tx.all(
                    "SELECT p.txn_id, CAST(-SUM(p.amount) AS BIGINT) FROM postings p "
                    "JOIN transactions t USING (txn_id) WHERE t.created_at >= $1 AND t.created_at < $2 "
                    "AND p.account = 'mall:points' "
                    "AND p.kind IN ('earn', 'clawback') GROUP BY p.txn_id",
                    start,
                    end,
                )
            }
            shelf = self.shelf()
            await shelf.load(tx, {r.rulebook_version for r in [*records, *sales.values()]})
            return settle(records, sales, refunds_of, points, shelf.get, shelf.in_force)

        return await self.db.read(read)

    async def points_of_day(self, day: str) -> dict[str, int]:
        """The points the mall's side posted for records of ``day``, by kind (``ledger/reports.py``)."""
        start, end = day_bounds(day, self.shelf().zone)
        return await self.db.read(lambda tx: points_posted(tx, start, end, day))

    async def points_books(self) -> dict[str, int]:
        """Points issued, redeemed, clawed back, returned, expired, overdrawn, outstanding (``ledger/reports.py``)."""
        return await self.db.read(points_books)

    async def check(self) -> list[CheckProblem]:
        """The double-entry invariants (``ledger/postings.py``) and points conservation: empty when the books hold."""

        async def check(tx: Tx) -> list[CheckProblem]:
            return [*await check_postings(tx), *await conservation(tx)]

        return await self.db.read(check)

    async def terminal_records(self, terminal_id: str) -> list[dict[str, Any]]:
        rows = await self.db.read(
            lambda tx: tx.all("SELECT body FROM transactions WHERE terminal_id = $1 ORDER BY epoch, seq", terminal_id)
        )
        return [json.loads(body) for (body,) in rows]
