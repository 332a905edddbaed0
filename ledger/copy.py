"""A shop's ledger moved from its embedded SQLite file to PostgreSQL (it has grown into a group).

``posgw-ledger copy --data DIR --to postgresql://…`` copies every table in one
PostgreSQL transaction, row for row with its ids, so the copy is whole or
nothing: the terminals' records and chains, members with their identifiers
and change revisions (terminals' member caches go on with deltas), postings,
holds, coupons, conflicts, rulebook versions, tiers, terminals with their
chain epochs, records in quarantine, the audit trail, the sealed secrets and
the mall's phone salt (members' phone identifiers are hashed with it). The target must hold
no members, records or postings; the SQLite file is only read (after the
in-place upgrade every start makes). Afterwards each table's rows are
counted on both sides and the copy's books are checked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.database import SQLITE_FILE, Tx, marks
from ledger.engines import open_database
from ledger.store import LedgerStore
from protocols.errors import GatewayError

# Parents before children; member_rev and staff_rev (one row both sides start with) are carried over apart.
TABLES = (
    "meta",
    "secrets",
    "rulebooks",
    "members",
    "identifiers",
    "member_aliases",
    "terminals",
    "terminal_chains",
    "terminal_counters",
    "staff",
    "sale_lookups",
    "transactions",
    "postings",
    "holds",
    "unheld_spends",
    "quarantine",
    "coupon_redemptions",
    "revoked_coupons",
    "revocation_log",
    "used_codes",
    "wallet_grants",
    "grant_uses",
    "paid_tiers",
    "control_counters",
    "held_earnings",
    "surges",
    "adjustments",
    "catalogue",
    "mall_orders",
    "gift_cards",
    "gift_card_loads",
    "conflicts",
    "member_growth",
    "tier_changes",
    "tier_reviews",
    "audit",
)
# Ids PostgreSQL makes (table: its column): given here, then moved past.
IDENTITY = {
    "postings": "id",
    "conflicts": "id",
    "tier_changes": "id",
    "audit": "id",
    "revocation_log": "rev",
    "grant_uses": "id",
    "held_earnings": "id",
    "adjustments": "id",
}
CHUNK = 5_000


class CopyRefusedError(GatewayError):
    """The copy must not run: no SQLite ledger there, no PostgreSQL URL, or a target that holds a ledger."""

    code = "ledger-copy-refused"


class CopyCheckError(GatewayError):
    """The copy was made but does not match its source (counted and checked after the commit)."""

    code = "ledger-copy-differs"


async def copy_to_postgres(data_dir: Path, url: str, progress: Callable[[str], None] = print) -> dict[str, int]:
    """Copy the ledger in ``data_dir`` to the PostgreSQL at ``url``; rows copied per table."""
    path = data_dir / SQLITE_FILE
    if not path.is_file():
        raise CopyRefusedError(f"no SQLite ledger at {path}")
    if not url.startswith(("postgresql://", "postgres://")):
        raise CopyRefusedError("--to must be a postgresql:// URL")
    await (await LedgerStore.open(data_dir)).close()  # the in-place upgrade, so every column is there
    # Read where the copy runs, inside the PostgreSQL transaction (the command's own loop: nothing else waits).
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    target = await open_database(data_dir, url)
    try:
        copied = await target.write(lambda tx: _copy(tx, source, progress))
        counted = await target.read(lambda tx: _counts(tx, TABLES))
        store = LedgerStore(target)
        problems = await store.reports.check()
    finally:
        source.close()
        await target.close()
    if differing := [t for t in TABLES if counted[t] != copied[t]]:
        raise CopyCheckError(f"the copy's row counts differ from the source's in {', '.join(differing)}")
    if problems:
        raise CopyCheckError(f"the copy's books do not hold: {problems[0]}")
    return copied


async def _copy(tx: Tx, source: sqlite3.Connection, progress: Callable[[str], None]) -> dict[str, int]:
    held = await _counts(tx, ("members", "transactions", "postings"))
    if any(held.values()):
        taken = ", ".join(f"{n:,} {t}" for t, n in held.items() if n)
        raise CopyRefusedError(f"the target already holds a ledger ({taken}); copy into an empty database")
    copied: dict[str, int] = {}
    for table in TABLES:
        columns = [c for (c,) in await tx.all(_COLUMNS, table)]
        names = ", ".join(columns)
        overriding = " OVERRIDING SYSTEM VALUE" if table in IDENTITY else ""
        upsert = " ON CONFLICT (key) DO UPDATE SET value = excluded.value" if table == "meta" else ""
        insert = f"INSERT INTO {table} ({names}){overriding} VALUES ({marks(len(columns))}){upsert}"  # noqa: S608 - our names
        (total,) = source.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        done, last = 0, None
        while True:  # by rowid, a chunk at a time: a large ledger never sits in memory whole
            rows = source.execute(
                f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",  # noqa: S608
                (-1 if last is None else last, CHUNK),
            ).fetchall()
            if not rows:
                break
            await tx.many(insert, [row[1:] for row in rows])
            done, last = done + len(rows), rows[-1][0]
            progress(f"{table}: {done:,} / {total:,} ({done / max(total, 1):.0%})")
        copied[table] = done
    for table, column in IDENTITY.items():  # new rows get ids after the copied ones
        await tx.all(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE(MAX({column}), 0) + 1, false) "  # noqa: S608
            f"FROM {table}"
        )
    # The inserts moved the members' change revisions; put back the source's, so a terminal's
    # member cache, asking for what changed since its revision, gets exactly that.
    revs: list[Any] = source.execute("SELECT rev, member_id FROM members").fetchall()
    await tx.many("UPDATE members SET rev = $1 WHERE member_id = $2", revs)
    (n,) = source.execute("SELECT n FROM member_rev").fetchone()
    await tx.run("UPDATE member_rev SET n = $1", n)
    (n,) = source.execute("SELECT n FROM staff_rev").fetchone()  # a till refuses a staff list older than its own
    await tx.run("UPDATE staff_rev SET n = $1", n)
    return copied


async def _counts(tx: Tx, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int((await tx.all(f"SELECT count(*) FROM {t}"))[0][0]) for t in tables}  # noqa: S608


_COLUMNS = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
)
