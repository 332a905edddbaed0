"""``posgw-ledger controls …`` and ``posgw-ledger member adjust|status``: the operator's side of the mall's
controls (``ledger/control_desk.py``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ledger import control_desk
from ledger.store import LedgerStore
from protocols.errors import FinalError


def add_command(sub: Any) -> argparse.ArgumentParser:
    controls = sub.add_parser("controls", help="earnings held for review (release, reject) and surges")
    controls.add_argument("action", choices=["held", "release", "reject", "surges"])
    controls.add_argument("held_id", nargs="?", type=int, help="release, reject: the hold's id (see `held`)")
    controls.add_argument("--state", default="held", choices=["held", "released", "rejected"])
    controls.add_argument("--day", help="surges: only this business day")
    controls.add_argument("--note", help="release, reject: why (kept in the audit trail)")
    controls.add_argument("--by", default=None, help="who does it (kept in the audit trail; default: $USER)")
    controls.add_argument("--json", action="store_true")
    return controls  # type: ignore[no-any-return]


def _actor(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or os.environ.get("USER") or "operator")


async def run(store: LedgerStore, args: argparse.Namespace) -> int:
    zone = store.rules.shelf.zone
    if args.action == "held":
        rows = await store.db.read(lambda tx: control_desk.held(tx, args.state))
        _print(rows, args.json, "{id:>5}  {member_id:<12} {points:>8,} points {growth:>8,} growth  {day}  {reason}")
        return 0
    if args.action == "surges":
        rows = await store.db.read(lambda tx: control_desk.surges(tx, args.day))
        _print(
            rows, args.json, "{day}  {subject:<24} {points:>10,} points  ({earlier_30_days:,} in the 30 days before)"
        )
        return 0
    if args.held_id is None or not args.note:
        print(f"posgw-ledger: controls {args.action} needs the hold's id and --note", file=sys.stderr)
        return 2
    release = args.action == "release"
    done = await store.db.write(
        lambda tx: control_desk.decide(tx, args.held_id, release, _actor(args), args.note, zone)
    )
    what = f"{done['points']:,} points, {done['growth']:,} growth"
    print(f"hold {done['id']} {done['state']}: {what} of {done['member_id']}")
    return 0


async def member_control(store: LedgerStore, args: argparse.Namespace) -> int:
    """``member adjust M --points N [--growth G] --reason R`` and ``member status M --to STATUS --reason R``."""
    if not args.reason:
        print(f"posgw-ledger: member {args.action} needs --reason (kept in the audit trail)", file=sys.stderr)
        return 2
    zone, actor = store.rules.shelf.zone, _actor(args)
    try:
        if args.action == "status":
            if args.to not in control_desk.STATUSES:
                print(f"posgw-ledger: member status needs --to {'|'.join(control_desk.STATUSES)}", file=sys.stderr)
                return 2
            was = await store.db.write(
                lambda tx: control_desk.set_status(tx, args.member_id, args.to, actor, args.reason)
            )
            print(f"{args.member_id}: {was} → {args.to} (every till hears of it with the member news)")
            return 0
        points, growth = args.points or 0, args.growth or 0
        made = await store.db.write(
            lambda tx: control_desk.adjust(tx, args.member_id, points, growth, actor, args.reason, zone)
        )
    except FinalError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 65
    print(f"adjustment {made}: {args.member_id} {points:+,} points, {growth:+,} growth ({args.reason})")
    return 0


def _print(rows: list[dict[str, Any]], as_json: bool, line: str) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print("  " + line.format(**row))
    print(f"{len(rows)} in all")
