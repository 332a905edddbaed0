"""``posgw-ledger`` operator commands: load members, show a member, the day's reports, reconciliation."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import control_cli, giftcard_cli, mall_cli, operations, rulebooks, secrets, staff_cli
from ledger.copy import CopyCheckError, CopyRefusedError, copy_to_postgres
from ledger.database import DATABASE_HELP, StorageError
from ledger.issuer import issue_coupon
from ledger.reports import Totals, day_summary, reconcile, totals_by_terminal
from ledger.rulebooks import RulebookRefusedError
from ledger.settlement import TenantDay
from ledger.statement_check import reconcile_statement
from ledger.store import LedgerStore
from ledger.tiers import AlreadyReviewedError, TierReviewError
from protocols.business_day import business_day
from protocols.errors import FinalError, SchemaError
from protocols.money import format_cny
from protocols.rulebook import MemberEntry, Rulebook
from protocols.schema import Fields, Problems
from protocols.untrusted_json import read_json

PROGRESS_EVERY = 5_000


def add_commands(sub: Any) -> None:
    members = sub.add_parser("members", help="load members from a CSV file")
    members.add_argument("action", choices=["load"])
    members.add_argument("file", type=Path, help="CSV: member_id,tier[,status][,wallet][,identifiers]")
    member = sub.add_parser(
        "member", help="a member's balances and history; move a card, merge two accounts, adjust, black-list"
    )
    member.add_argument("action", choices=["show", "move-identifier", "merge", "adjust", "status"])
    member.add_argument("member_id", help="the member (move-identifier: the identifier; merge: the one merged)")
    member.add_argument("--to", help="move-identifier, merge: the member it goes to; status: active|frozen|blacklisted")
    member.add_argument("--points", type=int, help="adjust: points to add (negative: to take away)")
    member.add_argument("--growth", type=int, help="adjust: growth to add to this year's")
    member.add_argument("--reason", help="move-identifier, merge, adjust, status: why (kept in the audit trail)")
    member.add_argument("--by", default=os.environ.get("USER", "operator"), help="who does it (the audit trail)")
    report = sub.add_parser("report", help="the day's figures, reconcile a journal export, or the points books")
    report.add_argument("kind", choices=["day", "reconcile", "points", "settlement"])
    report.add_argument("--day", help="the mall's business day, YYYY-MM-DD (default: today in the mall's zone)")
    report.add_argument("--journal", type=Path, help="reconcile: a terminal's `posgw journal export` (JSON lines)")
    report.add_argument(
        "--statement",
        type=Path,
        help="reconcile: a wallet's daily statement (`posgw payments statement`); --day is its China-time date",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    books = sub.add_parser("check", help="check the books: postings sum to zero, balances match their accounts")
    points = sub.add_parser("points", help="points jobs: expire what was earned before a date and not spent")
    points.add_argument("action", choices=["expire"])
    points.add_argument(
        "--before", help="the mall's day: points earned before its midnight lapse (default: 1 January of this year)"
    )
    wallet = sub.add_parser("wallet", help="stored-value jobs: top-up bonuses whose day has come lapse")
    wallet.add_argument("action", choices=["expire"])
    wallet.add_argument("--day", help="the mall's business day: bonuses lapsing on or before it go (default: today)")
    tier = sub.add_parser("tiers", help="tier jobs: the yearly review by growth value; paid tiers that have run out")
    tier.add_argument("action", choices=["review", "lapse"])
    tier.add_argument("--year", type=int, help="review: the calendar year (default: last year, in the mall's zone)")
    tier.add_argument("--day", help="lapse: paid tiers whose last day is before this business day end (default: today)")
    rules = sub.add_parser("rulebook", help="put a new rulebook version in force (JSON or TOML), or list versions")
    rules.add_argument("action", choices=["load", "show"])
    rules.add_argument("file", type=Path, nargs="?", help="load: the rulebook (its version newer than in force)")
    coupons = sub.add_parser("coupons", help="issue coupon copies (CP1. tokens) to a member")
    coupons.add_argument("action", choices=["issue"])
    coupons.add_argument("coupon_id", help="a coupon of the rulebook in force")
    coupons.add_argument("--member", required=True)
    coupons.add_argument("--count", type=int, default=1, choices=range(1, 1001), metavar="1..1000")
    copy = sub.add_parser("copy", help="copy this SQLite ledger into an empty PostgreSQL database (whole or nothing)")
    copy.add_argument("--data", type=Path, required=True, help="the ledger's data directory (its ledger.sqlite3)")
    copy.add_argument("--to", required=True, metavar="postgresql://…", help="the empty PostgreSQL database")
    controls = control_cli.add_command(sub)
    mall = mall_cli.add_commands(sub)
    cards = giftcard_cli.add_command(sub)
    staff = staff_cli.add_command(sub)
    for parser in (
        members,
        member,
        report,
        books,
        points,
        wallet,
        tier,
        rules,
        coupons,
        controls,
        *mall,
        cards,
        staff,
        *operations.add_commands(sub),
    ):
        parser.add_argument("--data", type=Path, required=True, help="the ledger's data directory")
        parser.add_argument("--database", default=os.environ.get("POSGW_LEDGER_DATABASE"), help=DATABASE_HELP)
        add_secrets_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except StorageError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 74  # EX_IOERR
    except secrets.SecretsError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 78  # EX_CONFIG


async def _data_errors(command: Coroutine[Any, Any, int]) -> int:
    """A command the ledger refuses (an unknown id, a bad PIN or amount) as a sentence and EX_DATAERR."""
    try:
        return await command
    except FinalError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65  # EX_DATAERR


async def _run(args: argparse.Namespace) -> int:
    if args.command == "copy":
        return await copy_ledger(args)
    store = await LedgerStore.open(args.data, args.database)
    try:
        store.rules.use(await rules_in_force(store, args))
        if args.command in operations.COMMANDS:
            return await operations.run(store, args)
        if args.command == "members":
            return await load_members(store, args.file)
        if args.command == "member" and args.action in ("adjust", "status"):
            return await control_cli.member_control(store, args)
        if args.command == "controls":
            return await _data_errors(control_cli.run(store, args))
        if args.command in ("catalogue", "orders"):
            return await mall_cli.run(store, args)
        if args.command == "staff":
            return await _data_errors(staff_cli.run(store, args))
        if args.command == "giftcards":
            return await giftcard_cli.run(store, args, lambda: issuer_of(store, args))
        if args.command == "member" and args.action != "show":
            return await operations.member_command(store, args)
        if args.command == "member":
            return await show_member(store, args.member_id)
        if args.command == "points":
            before = args.before or f"{business_day(datetime.now(UTC), store.rules.shelf.zone).year}-01-01"
            expired = await store.members.expire_points(before)
            for member_id, n in sorted(expired.items()):
                print(f"  {member_id}: {n:,} points expired")
            print(
                f"{sum(expired.values()):,} points expired for {len(expired)} members "
                f"(earned before {before}, {store.rules.shelf.zone})"
            )
            return 0
        if args.command == "wallet":
            day = args.day or business_day(datetime.now(UTC), store.rules.shelf.zone).isoformat()
            lapsed = await store.members.expire_bonuses(day)
            for member_id, fen in sorted(lapsed.items()):
                print(f"  {member_id}: {format_cny(fen)} of top-up bonus lapsed")
            print(f"{format_cny(sum(lapsed.values()))} of top-up bonus lapsed for {len(lapsed)} members (day {day})")
            return 0
        if args.command == "tiers" and args.action == "lapse":
            return await lapse_tiers(store, args)
        if args.command == "tiers":
            return await review_tiers(store, args)
        if args.command == "rulebook":
            return await rulebook_command(store, args)
        if args.command == "coupons":
            return await issue_coupons(store, args)
        if args.command == "check":
            problems = await store.reports.check()
            for p in problems:
                print(f"  {p}")
            print("books hold: every posting set sums to zero, every balance matches" if not problems else "BROKEN")
            return 1 if problems else 0
        if args.kind == "points":
            books = await store.reports.points_books()
            print(
                json.dumps(books, indent=2) if args.json else "\n".join(f"  {k:<12}{v:>14,}" for k, v in books.items())
            )
            return 0
        day = args.day or business_day(datetime.now(UTC), store.rules.shelf.zone).isoformat()
        if args.kind in ("day", "settlement"):
            records, points = await store.reports.records_of_day(day), await store.reports.points_of_day(day)
            summary = day_summary(records, day, points, store.rules.shelf.zone)
        if args.kind == "day":
            print(json.dumps(summary, indent=2) if args.json else _day_table(summary))
            return 0
        if args.kind == "settlement":
            return settlement_report(await store.reports.settlement_of_day(day), summary, as_json=args.json)
        if args.statement is not None:
            return await reconcile_statement(store, args.statement, args.day, as_json=args.json)
        if args.journal is None:
            print("posgw-ledger: report reconcile needs --journal EXPORT.jsonl or --statement FILE", file=sys.stderr)
            return 2
        return await reconcile_journal(store, args.journal, day, as_json=args.json)
    finally:
        await store.close()


def settlement_report(tenants: dict[str, TenantDay], day: dict[str, Any], *, as_json: bool) -> int:
    """The tenant settlement, and whether it comes to the day report's figures (exit 1 when it does not)."""
    wire = [t.to_wire() for t in tenants.values()]
    totals = {
        "sales_net": (sum(t["sales_net"] for t in wire), day["sales_net"]),
        "wallet_paid_net": (sum(t["tenders"].get("wallet", 0) for t in wire), day["wallet_paid_net"]),
        "topups": (sum(t["topups"] for t in wire), day["topups"]),
        "points_issued": (
            sum(t["points_issued"] for t in wire),
            day["points"]["issued"] - day["points"]["clawed_back"],
        ),
    }
    differ = {k: v for k, v in totals.items() if v[0] != v[1]}
    if as_json:
        print(json.dumps({"day": day["day"], "tenants": wire, "reconciles": not differ}, indent=2))
    else:
        print(f"tenant settlement, {day['day']} ({day['zone']}), in fen")
        for t in wire:
            tenders = ", ".join(f"{k} {v:,}" for k, v in t["tenders"].items() if v)
            print(
                f"  {t['merchant_id']:<14} sales {t['sales_net']:>12,}  [{tenders}]  offset {t['offset']:,}  "
                f"mall-funded {t['mall_funded_discounts']:,}  top-ups {t['topups']:,}  "
                f"points {t['points_issued']:,} (tenant bears {t['tenant_points_cost']:,})  "
                f"net due to tenant {t['net_due_to_tenant']:>12,}"
            )
        for name, (ours, theirs) in totals.items():
            print(f"  {name:<16} {ours:>14,}  day report {theirs:>14,}  {'ok' if ours == theirs else 'DIFFERS'}")
    return 1 if differ else 0


async def rulebook_command(store: LedgerStore, args: argparse.Namespace) -> int:
    if args.action == "show":
        for version, digest, loaded_at in await store.rules.versions():
            print(f"  version {version:<6} sha256 {digest}  loaded {loaded_at}")
        return 0
    if args.file is None:
        print("posgw-ledger: rulebook load needs a FILE", file=sys.stderr)
        return 2
    try:
        body = rulebooks.read_file(args.file)
        rulebooks.assemble(body, await store.rules.phone_salt(), await issuer_of(store, args))
        version, digest = await store.rules.add(body)
    except SchemaError as err:
        print(f"posgw-ledger: {args.file} is not a rulebook:", file=sys.stderr)
        for p in err.problems[:50]:
            print(f"  - {p}", file=sys.stderr)
        return 65  # EX_DATAERR
    except RulebookRefusedError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65
    print(f"rulebook version {version} in force (sha256 {digest}); running ledgers sign and serve it within seconds")
    return 0


async def copy_ledger(args: argparse.Namespace) -> int:
    try:
        copied = await copy_to_postgres(args.data, args.to, lambda line: print(f"  {line}", file=sys.stderr))
    except CopyRefusedError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65  # EX_DATAERR
    except CopyCheckError as err:
        print(f"posgw-ledger: {err}; the SQLite ledger is untouched: keep using it", file=sys.stderr)
        return 70  # EX_SOFTWARE
    print(", ".join(f"{table} {n:,}" for table, n in copied.items() if n))
    print(f"copied {sum(copied.values()):,} rows; the books hold. Start the ledger with --database (the same --data)")
    return 0


async def issuer_of(store: LedgerStore, args: argparse.Namespace) -> Ed25519PrivateKey:
    """The ledger's issuer key, from its database (``ledger/secrets.py``)."""
    return await secrets.issuer_key(store.db, args.data, secrets.secrets_key(args.data, args.secrets_key_file))


async def rules_in_force(store: LedgerStore, args: argparse.Namespace) -> Rulebook:
    body = await store.get_meta("rulebook") or {"version": 0, "currency": "CNY", "tiers": {}}
    return rulebooks.assemble(body, await store.rules.phone_salt(), await issuer_of(store, args))


def add_secrets_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secrets-key-file",
        type=Path,
        help=f"the key sealing the ledger's secrets (default: ${secrets.KEY_ENV}, else DATA/secrets.key)",
    )


async def review_tiers(store: LedgerStore, args: argparse.Namespace) -> int:
    """The yearly review (``ledger/tiers.py``): each member on the ladder to the tier the year's growth reached."""
    rules = store.rules.shelf.in_force
    year = args.year or business_day(datetime.now(UTC), rules.zone).year - 1
    try:
        moves = await store.members.review_tiers(year)
    except AlreadyReviewedError as err:  # a timer that caught up twice: nothing to do, not a failure
        print(f"posgw-ledger: {err}")
        return 0
    except TierReviewError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65  # EX_DATAERR
    for member_id, old, new, growth in moves:
        print(f"  {member_id}: {old} → {new} (growth {growth:,} in {year})")
    print(f"tiers reviewed for {year} under rulebook version {rules.version}: {len(moves)} members moved")
    return 0


async def lapse_tiers(store: LedgerStore, args: argparse.Namespace) -> int:
    """Paid tiers past their last day end (``ledger/paid_tiers.py``); run daily, as often as you like."""
    zone = store.rules.shelf.zone
    try:
        day = date.fromisoformat(args.day) if args.day else business_day(datetime.now(UTC), zone)
    except ValueError:
        print(f"posgw-ledger: --day {args.day!r} is not a YYYY-MM-DD day", file=sys.stderr)
        return 64  # EX_USAGE
    moves = await store.members.lapse_paid_tiers(day)
    for member_id, old, new in moves:
        print(f"  {member_id}: {old} → {new} (paid tier ran out)")
    print(f"paid tiers lapsed before {day} ({zone}): {len(moves)} members moved")
    return 0


async def issue_coupons(store: LedgerStore, args: argparse.Namespace) -> int:
    """Print ``--count`` coupon tokens, one a line (to hand to a campaign's sender)."""
    rules = store.rules.shelf.in_force
    if args.coupon_id not in rules.coupons:
        print(f"posgw-ledger: no coupon {args.coupon_id} in rulebook version {rules.version}", file=sys.stderr)
        return 65
    if await store.members.account(args.member) is None:
        print(f"posgw-ledger: no member {args.member}", file=sys.stderr)
        return 1
    key, now = await issuer_of(store, args), int(time.time())
    for _ in range(args.count):
        print(issue_coupon(key, rules, args.coupon_id, args.member, now)["token"])
    return 0


async def load_members(store: LedgerStore, path: Path) -> int:
    """Read and check every row first (all problems at once), then load in one transaction per 5,000."""
    problems = Problems(str(path))
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    entries = [_member_row(row, Fields(_typed(row), problems, path=f"line {n}")) for n, row in enumerate(rows, 2)]
    try:
        problems.raise_if_any()
    except SchemaError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        for p in err.problems[:50]:
            print(f"  - {p}", file=sys.stderr)
        return 65
    differing: list[tuple[str, int, int]] = []
    for start in range(0, len(entries), PROGRESS_EVERY):
        differing += await store.members.upsert(entries[start : start + PROGRESS_EVERY])
        done = min(start + PROGRESS_EVERY, len(entries))
        print(f"loaded {done:,} / {len(entries):,} members ({done / len(entries):.0%})", file=sys.stderr)
    if differing:
        print(
            f"posgw-ledger: the wallet column was not applied to {len(differing):,} existing member(s): stored value "
            "moves only by top-ups at a till, payments and refunds, never from a file",
            file=sys.stderr,
        )
        for member_id, wanted, held in differing[:20]:
            print(
                f"  - {member_id}: the file says {format_cny(wanted)}, the ledger holds {format_cny(held)}",
                file=sys.stderr,
            )
    return 0


def _typed(row: dict[str, str]) -> dict[str, object]:
    """A CSV row as the schema reader expects it: empty cells absent, the wallet a number when it is one."""
    data: dict[str, object] = {k: v for k, v in row.items() if k and v not in (None, "")}
    if isinstance(wallet := data.get("wallet"), str) and wallet.isdigit():
        data["wallet"] = int(wallet)
    return data


def _member_row(row: dict[str, str], f: Fields) -> MemberEntry:
    return MemberEntry(
        f.text("member_id", pattern=r"[A-Za-z0-9_.:-]{1,64}"),
        f.text("tier", pattern=r"[a-z0-9_-]{1,32}"),
        f.text("status", "active", choices=("active", "frozen", "blacklisted")),
        tuple(f.text("identifiers", "").split()),
        0,
        f.integer("wallet", 0, minimum=0, maximum=10**12),
    )


async def show_member(store: LedgerStore, member_id: str) -> int:
    account = await store.members.account(member_id)
    if account is None:
        print(f"posgw-ledger: no member {member_id}", file=sys.stderr)
        return 1
    print(f"{account['member_id']}  tier {account['tier']}  {account['status']}")
    print(f"  points {account['points']:,}   wallet {format_cny(account['wallet'])}   growth {account['growth']:,}")
    if by_year := await store.members.growth(member_id):
        print("  growth by year  " + ", ".join(f"{year} {growth:,}" for year, growth in by_year.items()))
    for c in await store.members.tier_changes(member_id):
        print(f"  {c['changed_at']}  tier   {c['from_tier']} → {c['to_tier']} ({c['reason']}, growth {c['growth']:,})")
    for h in await store.members.history(member_id):
        amount = f"{h['amount']:+,} points" if h["account"] == "points" else format_cny(h["amount"])
        print(f"  {h['created_at']}  {h['kind']:<6} {h['terminal_id']:<12} {amount:>14}  {h['txn_id']}")
    return 0


async def reconcile_journal(store: LedgerStore, journal: Path, day: str, *, as_json: bool) -> int:
    """The terminal's totals (from its journal export) against the ledger's, to the fen; exit 1 on any difference."""
    with journal.open(encoding="utf-8") as fh:
        theirs = [read_json(line, f"{journal} line", max_bytes=1024 * 1024) for line in fh if line.strip()]
    zone = store.rules.shelf.zone
    mine = totals_by_terminal(theirs, day, zone)
    held = totals_by_terminal(await store.reports.records_of_day(day), day, zone)
    ledger = {t: held.get(t, Totals()) for t in mine}  # only the terminals this export is from
    differences = reconcile(mine, ledger)
    if as_json:
        print(json.dumps([d.__dict__ for d in differences] if differences else [], default=str))
    else:
        for terminal_id, totals in sorted(mine.items()):
            figures = totals.figures()
            sales, refunds = format_cny(figures["sales_due"]), format_cny(figures["refunds_due"])
            print(f"{terminal_id} {day}: {figures['sales']} sales {sales}, {figures['refunds']} refunds {refunds}")
        for d in differences:
            print(f"  DIFFERENT {d.terminal_id} {d.what}: terminal {d.terminal}, ledger {d.ledger}")
        agreed = "reconciled: terminal and ledger agree to the fen"
        print(agreed if not differences else f"{len(differences)} differences")
    return 1 if differences else 0


def _day_table(s: dict[str, Any]) -> str:
    points = s["points"]
    lines = [
        f"day {s['day']} ({s['zone']})",
        f"  sales (net of refunds)  {format_cny(s['sales_net'])}",
        f"  by members              {format_cny(s['member_sales_net'])} ({s['member_share']:.1%})",
        f"  points issued {points['issued']:,}, redeemed {points['redeemed']:,} (offset {points['offset']:,}, "
        f"exchanged {points['exchanged']:,}), clawed back {points['clawed_back']:,}, returned {points['returned']:,}",
        f"  stored value paid (net) {format_cny(s['wallet_paid_net'])}",
        f"  stored value sold (top-ups) {format_cny(s['topups'])}, bonus given {format_cny(s['topup_bonus'])}",
        f"  customers who joined at a till {s['joins']:,}",
    ]
    if s["quarantined"]:
        lines.append(f"  in quarantine: {s['quarantined']} records, {format_cny(s['quarantined_due'])} (not counted)")
    lines += [f"  coupon {cid}: {n} redeemed" for cid, n in s["coupons_redeemed"].items()]
    return "\n".join(lines)
