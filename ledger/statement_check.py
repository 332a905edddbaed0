"""A wallet's daily statement against the ledger's records: every order, to the fen.

The statement (``protocols/statements.py``) covers one calendar day in China
time. Each payment it lists must be a tender of a sale the ledger holds (the
tender's ``ref`` is the payment intent, whose order number is the intent id
without hyphens), for the same amount and, when the till recorded it, the same
wallet transaction id; each refund must be a refund or void tender of that
order for the same amount. The other way round, every tender of that wallet in
a sale or refund made on that China day must be on the statement. Sales are
looked up a day either side, so a payment taken just before midnight and a
sale completed just after still match; such a sale is then named on the next
day's check (its payment is on the earlier statement): reconcile both days.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocols.business_day import CHINA
from protocols.money import format_cny
from protocols.statements import Statement, StatementError, read_statement

if TYPE_CHECKING:
    from ledger.store import LedgerStore

WALLET_NAMES = {"wechat": "WeChat Pay", "alipay": "Alipay"}


@dataclass(frozen=True, slots=True)
class StatementDifference:
    order: str
    what: str
    statement: str
    ledger: str


@dataclass(frozen=True, slots=True)
class _Tender:
    order: str
    amount: int
    provider_txn: str
    txn_id: str
    terminal_id: str
    china_day: date
    state: str


def statement_window(day: date) -> tuple[str, str]:
    """The UTC span of records to look at: the China day and one either side (as ``day_bounds`` writes it)."""
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA).astimezone(UTC) - timedelta(days=1)
    end = start + timedelta(days=3)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")


def _china_day(created_at: str) -> date:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone(CHINA).date()


def _tenders(records: list[dict[str, Any]], wallet: str) -> tuple[list[_Tender], list[_Tender]]:
    """(sale tenders, refund and void tenders) of ``wallet`` in the ledger's records."""
    sales: list[_Tender] = []
    refunds: list[_Tender] = []
    for record in records:
        for tender in record.get("tenders", []):
            if tender.get("kind") != wallet or not tender.get("ref"):
                continue
            found = _Tender(
                str(tender["ref"]).replace("-", ""),
                int(tender["amount"]),
                str(tender.get("provider_txn") or ""),
                str(record["txn_id"]),
                str(record["terminal_id"]),
                _china_day(str(record["created_at"])),
                str(record.get("state", "applied")),
            )
            (sales if record.get("kind") == "sale" else refunds).append(found)
    return sales, refunds


def compare(statement: Statement, records: list[dict[str, Any]], day: date) -> list[StatementDifference]:
    """Every difference between the statement and the ledger's records (a day either side of ``day``)."""
    name = WALLET_NAMES[statement.provider]
    sales, refunds = _tenders(records, statement.provider)
    by_order = {t.order: t for t in sales}
    differences: list[StatementDifference] = []

    def differ(order: str, what: str, theirs: str, ours: str) -> None:
        differences.append(StatementDifference(order, what, theirs, ours))

    listed = set()
    for line in (line for line in statement.lines if line.kind == "pay"):
        listed.add(line.order)
        sale = by_order.get(line.order)
        theirs = f"{format_cny(line.amount)} at {line.at}, {name} {line.provider_txn}"
        if sale is None:
            differ(line.order, f"charged by {name}, no sale at the ledger", theirs, "none")
            continue
        ours = f"{format_cny(sale.amount)} in sale {sale.txn_id} ({sale.terminal_id})"
        if sale.state != "applied":
            differ(line.order, f"the sale is {sale.state} at the ledger", theirs, ours)
        if sale.amount != line.amount:
            differ(line.order, "amounts differ", theirs, ours)
        if sale.provider_txn and sale.provider_txn != line.provider_txn:
            differ(line.order, f"{name} transaction ids differ", theirs, f"{ours}, {name} {sale.provider_txn}")
    for sale in sales:
        if sale.china_day == day and sale.order not in listed:
            ours = f"{format_cny(sale.amount)} in sale {sale.txn_id} ({sale.terminal_id})"
            differ(sale.order, f"a sale's {name} payment the statement does not list", "none", ours)
    theirs_back = Counter((line.order, line.amount) for line in statement.lines if line.kind == "refund")
    ours_back = Counter((t.order, t.amount) for t in refunds if t.china_day == day)
    for (order, amount), n in sorted((theirs_back - ours_back).items()):
        differ(order, f"refunded by {name}, no refund at the ledger", f"{n} × {format_cny(amount)}", "none")
    for (order, amount), n in sorted((ours_back - theirs_back).items()):
        differ(order, f"a refund to {name} the statement does not list", "none", f"{n} × {format_cny(amount)}")
    return differences


async def reconcile_statement(store: LedgerStore, path: Path, day_text: str | None, *, as_json: bool) -> int:
    """A wallet's statement against the ledger, order by order; exit 1 on any difference, 65 if unreadable."""
    try:
        statement = read_statement(await asyncio.to_thread(path.read_bytes))
    except (OSError, StatementError) as err:
        print(f"posgw-ledger: {path} cannot be read as a statement: {err}", file=sys.stderr)
        return 65
    days = {line.at[:10] for line in statement.lines}
    if day_text is None and len(days) > 1:
        print(f"posgw-ledger: {path} spans {len(days)} days; name one with --day", file=sys.stderr)
        return 2
    day = date.fromisoformat(day_text or next(iter(days), datetime.now(CHINA).date().isoformat()))
    records = await store.reports.records_between(*statement_window(day))
    differences = compare(statement, records, day)
    if as_json:
        print(json.dumps([d.__dict__ for d in differences]))
        return 1 if differences else 0
    pays = [line for line in statement.lines if line.kind == "pay"]
    refunds = [line for line in statement.lines if line.kind == "refund"]
    print(
        f"{WALLET_NAMES[statement.provider]} statement for {day}: {len(pays)} payments "
        f"{format_cny(sum(p.amount for p in pays))}, {len(refunds)} refunds "
        f"{format_cny(sum(r.amount for r in refunds))}, {statement.reversed_orders} orders reversed"
    )
    for d in differences:
        print(f"  DIFFERENT order {d.order}: {d.what}: statement {d.statement}; ledger {d.ledger}")
    agreed = "reconciled: the statement and the ledger agree to the fen"
    print(agreed if not differences else f"{len(differences)} differences")
    return 1 if differences else 0
