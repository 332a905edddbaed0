"""``posgw-ledger staff …``: the mall's staff (``ledger/staff.py``) and the day by who did it
(``ledger/staff_report.py``).

A PIN is never an argument (it would sit in the shell's history and in ``ps``): it is read from standard
input, one line, or asked twice at a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from ledger import staff
from ledger.staff_report import staff_day
from ledger.store import LedgerStore
from protocols.business_day import business_day
from protocols.money import fen_from_yuan, format_cny
from protocols.staff import ROLES, Policy


def add_command(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("staff", help="the mall's staff (who signs in at a till, with what PIN) and the staff report")
    p.add_argument("action", choices=["add", "pin", "disable", "enable", "list", "policy", "report"])
    p.add_argument("staff_id", nargs="?", help="add, pin, disable, enable: the staff id")
    p.add_argument("--name", help="add: the name shown at the till")
    p.add_argument("--role", choices=ROLES, default="cashier", help="add: cashier (default) or supervisor")
    p.add_argument("--refund-above", help="policy: refunds above this many yuan need a supervisor (e.g. 500.00)")
    p.add_argument("--max-tries", type=int, help="policy: wrong PINs in a row that lock a staff id out of a till")
    p.add_argument("--lockout", type=int, help="policy: seconds a locked staff id waits")
    p.add_argument("--day", help="report: the mall's business day (default: today)")
    p.add_argument("--by", default=None, help="who makes the change (the audit trail; default: $USER)")
    p.add_argument("--json", action="store_true")
    return p  # type: ignore[no-any-return]


def _pin() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("PIN (4-8 digits): ")
        if getpass.getpass("PIN again: ") != first:
            raise staff.StaffError("the two PINs differ")
        return first
    return sys.stdin.readline().strip()


async def run(store: LedgerStore, args: argparse.Namespace) -> int:
    by = str(args.by or os.environ.get("USER") or "operator")
    if args.action == "list":
        everyone = await store.db.read(staff.everyone)
        rows = [
            {"staff_id": m.entry.staff_id, "name": m.entry.name, "role": m.entry.role, "active": m.active,
             "changed_at": m.changed_at, "changed_by": m.changed_by}
            for m in everyone
        ]  # fmt: skip
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        for row in [] if args.json else rows:
            state = "" if row["active"] else "  (disabled)"
            print(f"  {row['staff_id']:<12} {row['role']:<10} {row['name']}{state}")
        return 0
    if args.action == "policy":
        return await _policy(store, args)
    if args.action == "report":
        zone = store.rules.shelf.zone
        day = args.day or business_day(datetime.now(UTC), zone).isoformat()
        report = staff_day(await store.reports.records_of_day(day), day, zone)
        print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else _table(report))
        return 0
    if not args.staff_id:
        print(f"posgw-ledger: staff {args.action} needs the staff id", file=sys.stderr)
        return 2
    if args.action == "add":
        if not args.name:
            print("posgw-ledger: staff add needs --name", file=sys.stderr)
            return 2
        pin = _pin()
        version = await store.db.write(lambda tx: staff.add(tx, args.staff_id, args.name, args.role, pin, by))
    elif args.action == "pin":
        pin = _pin()
        version = await store.db.write(lambda tx: staff.set_pin(tx, args.staff_id, pin, by))
    else:
        active = args.action == "enable"
        version = await store.db.write(lambda tx: staff.set_active(tx, args.staff_id, active, by))
    print(f"staff {args.action}: {args.staff_id} (staff list v{version}; tills take it at their next refresh)")
    return 0


async def _policy(store: LedgerStore, args: argparse.Namespace) -> int:
    held = await store.db.read(staff.policy)
    if args.refund_above is None and args.max_tries is None and args.lockout is None:
        print(json.dumps(held.to_wire(), indent=2))
        return 0
    refund_above = fen_from_yuan(args.refund_above) if args.refund_above is not None else held.refund_above
    policy = Policy(
        refund_above,
        args.max_tries if args.max_tries is not None else held.max_tries,
        args.lockout if args.lockout is not None else held.lockout_seconds,
    )
    if not 1 <= policy.max_tries <= 100 or not 1 <= policy.lockout_seconds <= 86_400:
        raise staff.StaffError("--max-tries is 1..100 and --lockout 1..86400 seconds")
    version = await store.db.write(lambda tx: staff.set_policy(tx, policy))
    print(
        f"staff policy: refunds above {format_cny(policy.refund_above)} need a supervisor; {policy.max_tries} wrong "
        f"PINs lock for {policy.lockout_seconds} s (staff list v{version})"
    )
    return 0


def _table(report: dict[str, Any]) -> str:
    out = [f"staff report {report['day']} ({report['zone']})"]
    for title, key in (("by cashier", "cashiers"), ("by till", "tills")):
        out.append(f"  {title}:")
        for who, f in report[key].items():
            parts = [
                f"{f.get(k, 0)} {k} {format_cny(f.get(f'{k}_due', 0))}"
                for k in ("sales", "refunds", "voids")
                if f.get(k)
            ]
            if f.get("discounts"):
                parts.append(f"discounts {format_cny(f['discounts'])}")
            parts += [f"{f[k]} {k}" for k in ("no_sales", "approved", "joins", "topups", "quarantined") if f.get(k)]
            out.append(f"    {who:<20} " + ", ".join(parts))
    out.append("  shifts closed:")
    out.extend(_shift_line(s) for s in report["shifts"])
    return "\n".join(out)


def _shift_line(s: dict[str, Any]) -> str:
    held = "" if s["state"] == "applied" else f"  ({s['state']})"
    return (
        f"    {s['terminal_id']:<10} {s['shift'][:12]}  by {s['closed_by']:<10} "
        f"expected {format_cny(s['expected_cash'])} counted {format_cny(s['counted'])} "
        f"over/short {format_cny(s['over_short'])}{held}"
    )
