"""How a SQLite ledger file made before versioned migrations comes up to the baseline, in place.

Frozen: these are the idempotent steps such files were always upgraded by.
A new file gets the baseline (``migrations.py``, version 4) in one step, and
every later change is a migration there, written once for both engines.
``tests/ledger/test_migrations.py`` holds this path to the baseline.
"""

from __future__ import annotations

import sqlite3


def upgrade_in_place(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    upgrade_members(conn)
    upgrade_postings(conn)
    upgrade_transactions(conn)
    upgrade_trust(conn)


SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY,
    tier      TEXT NOT NULL,
    status    TEXT NOT NULL DEFAULT 'active',
    points    INTEGER NOT NULL DEFAULT 0 CHECK (points >= 0),
    rev       INTEGER NOT NULL DEFAULT 0  -- the change counter when this member last changed (for deltas)
);
CREATE INDEX IF NOT EXISTS members_rev ON members(rev);
CREATE TABLE IF NOT EXISTS member_rev (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO member_rev VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS members_rev_ins AFTER INSERT ON members BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TABLE IF NOT EXISTS identifiers (
    identifier TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members(member_id)
);
CREATE TRIGGER IF NOT EXISTS identifiers_rev AFTER INSERT ON identifiers BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER IF NOT EXISTS identifiers_rev_upd AFTER UPDATE OF member_id ON identifiers BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TABLE IF NOT EXISTS transactions (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL DEFAULT 1,
    seq         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    prev_hash   TEXT,
    hash        TEXT,
    created_at  TEXT,
    kind        TEXT,
    state       TEXT NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'quarantined', 'rejected')),
    refund_of   TEXT,
    member_id   TEXT,
    offline     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (terminal_id, epoch, seq)
);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id     TEXT PRIMARY KEY,
    high_seq        INTEGER NOT NULL DEFAULT 0,  -- before chain epochs; terminal_chains holds each epoch's
    store_id        TEXT,
    merchant_id     TEXT,
    status          TEXT NOT NULL DEFAULT 'legacy',  -- pending (a code issued) | active | retired | legacy
    epoch           INTEGER NOT NULL DEFAULT 1,      -- the chain epoch its enrolled key signs
    code_hash       TEXT,                            -- SHA-256 of the one-time enrolment code
    code_expires_at REAL,
    failed_codes    INTEGER NOT NULL DEFAULT 0,      -- wrong codes tried since the last was issued
    enrolled_at     TEXT,
    retired_at      TEXT
);
CREATE TABLE IF NOT EXISTS coupon_redemptions (
    instance    TEXT PRIMARY KEY,
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_coupons (
    instance   TEXT PRIMARY KEY,  -- <coupon id>:<instance>
    revoked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    id          INTEGER PRIMARY KEY,
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS postings (
    id      INTEGER PRIMARY KEY,
    txn_id  TEXT NOT NULL,      -- the record (or "opening:<member>") the set belongs to
    ref     TEXT,               -- for stored value: the payment it settles
    account TEXT NOT NULL,
    unit    TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
    amount  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS postings_account ON postings(account);
CREATE INDEX IF NOT EXISTS postings_txn ON postings(txn_id);
CREATE INDEX IF NOT EXISTS postings_ref ON postings(ref) WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS rulebooks (
    version   INTEGER PRIMARY KEY,
    body      TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS member_growth (
    member_id TEXT NOT NULL,
    year      TEXT NOT NULL,  -- the calendar year of the records that earned it
    growth    INTEGER NOT NULL CHECK (growth >= 0),
    PRIMARY KEY (member_id, year)
);
CREATE TABLE IF NOT EXISTS tier_changes (
    id         INTEGER PRIMARY KEY,
    member_id  TEXT NOT NULL,
    from_tier  TEXT NOT NULL,
    to_tier    TEXT NOT NULL,
    growth     INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tier_changes_member ON tier_changes(member_id);
CREATE TABLE IF NOT EXISTS tier_reviews (
    year        TEXT PRIMARY KEY,
    reviewed_at TEXT NOT NULL,
    moved       INTEGER NOT NULL
);
"""


def upgrade_members(conn: sqlite3.Connection) -> None:
    """A file made before wallets gets its wallet column (and the revision trigger that sees it), and
    one made before growth value its growth column."""
    columns = _columns(conn, "members")
    if "wallet" not in columns:
        conn.execute("ALTER TABLE members ADD COLUMN wallet INTEGER NOT NULL DEFAULT 0 CHECK (wallet >= 0)")
    if "growth" not in columns:
        conn.execute("ALTER TABLE members ADD COLUMN growth INTEGER NOT NULL DEFAULT 0 CHECK (growth >= 0)")
    conn.executescript(
        """
        DROP TRIGGER IF EXISTS members_rev_upd;
        CREATE TRIGGER members_rev_upd AFTER UPDATE OF tier, status, points, wallet ON members BEGIN
            UPDATE member_rev SET n = n + 1;
            UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
        END;
        """
    )


def upgrade_postings(conn: sqlite3.Connection) -> None:
    """A file from before double entry gets its point postings paired with the mall's side."""
    old = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'point_postings'").fetchone()
    if old and not conn.execute("SELECT 1 FROM postings LIMIT 1").fetchone():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO postings (txn_id, account, unit, amount) "
            "SELECT txn_id, 'member:' || member_id || ':points', 'points', points FROM point_postings"
        )
        conn.execute(
            "INSERT INTO postings (txn_id, account, unit, amount) "
            "SELECT txn_id, 'mall:points', 'points', -points FROM point_postings"
        )
        conn.execute("COMMIT")


def upgrade_transactions(conn: sqlite3.Connection) -> None:
    """Each record's links (chain checks), and its day and kind as columns (reports), filled in for old rows."""
    columns = _columns(conn, "transactions")
    for name in ("prev_hash", "hash", "created_at", "kind"):
        if name not in columns:
            conn.execute(f"ALTER TABLE transactions ADD COLUMN {name} TEXT")
    if "created_at" not in columns:
        conn.execute(
            "UPDATE transactions SET created_at = json_extract(body, '$.created_at'), "
            "kind = json_extract(body, '$.kind')"
        )
    conn.execute("CREATE INDEX IF NOT EXISTS transactions_created ON transactions(created_at)")


TRUST_TABLES = """
CREATE TABLE IF NOT EXISTS holds (
    ref         TEXT PRIMARY KEY,  -- points: the ledger's reservation id; stored value: the terminal's payment id
    unit        TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
    member_id   TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    terminal_id TEXT NOT NULL,
    txn_id      TEXT,              -- points: the sale the hold is for
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided')),
    expires_at  REAL NOT NULL,
    posted_by   TEXT               -- the record that consumed it
);
CREATE INDEX IF NOT EXISTS holds_member ON holds(member_id, unit) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS terminal_chains (
    terminal_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    public_key  TEXT NOT NULL,
    high_seq    INTEGER NOT NULL DEFAULT 0,
    opened_at   TEXT NOT NULL,
    closed_at   TEXT,
    PRIMARY KEY (terminal_id, epoch)
);
CREATE TABLE IF NOT EXISTS quarantine (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'rejected')),
    held_at     TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  TEXT,
    note        TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unheld_spends (  -- points and stored value spent without a hold (offline limits)
    terminal_id TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    unit        TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    made_at     REAL NOT NULL,  -- the record's time (the terminal's clock), Unix seconds
    received_at REAL NOT NULL   -- when the ledger applied it
);
CREATE INDEX IF NOT EXISTS unheld_spends_pair ON unheld_spends(terminal_id, member_id, received_at);
CREATE TABLE IF NOT EXISTS secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,  -- sealed with the ledger's secrets key (ledger/secrets.py)
    created_at TEXT NOT NULL
);
"""

_TRANSACTIONS = """
CREATE TABLE transactions_v2 (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL DEFAULT 1,
    seq         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    prev_hash   TEXT,
    hash        TEXT,
    created_at  TEXT,
    kind        TEXT,
    state       TEXT NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'quarantined', 'rejected')),
    refund_of   TEXT,
    member_id   TEXT,
    offline     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (terminal_id, epoch, seq)
);
INSERT INTO transactions_v2 (txn_id, terminal_id, epoch, seq, body, received_at, prev_hash, hash, created_at, kind,
                             refund_of, member_id, offline)
    SELECT txn_id, terminal_id, 1, seq, body, received_at, prev_hash, hash, created_at, kind,
           json_extract(body, '$.refund_of'), json_extract(body, '$.member_id'),
           CASE WHEN json_extract(body, '$.offline') THEN 1 ELSE 0 END
    FROM transactions;
DROP TABLE transactions;
ALTER TABLE transactions_v2 RENAME TO transactions;
CREATE INDEX transactions_created ON transactions(created_at)
"""
_TRANSACTION_INDEXES = (
    "CREATE INDEX IF NOT EXISTS transactions_refund_of ON transactions(refund_of) WHERE refund_of IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS transactions_member ON transactions(member_id, terminal_id) "
    "WHERE member_id IS NOT NULL",
)


def upgrade_trust(conn: sqlite3.Connection) -> None:
    """Terminal enrolment and chain epochs, one hold primitive, quarantine, the audit trail, postings by kind:
    a file from before gets them, its holds and terminals carried over (``database.py`` moves the books)."""
    conn.executescript(TRUST_TABLES)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "epoch" not in _columns(conn, "transactions"):
            for statement in _TRANSACTIONS.split(";\n"):  # not executescript: it would commit first
                if statement.strip():
                    conn.execute(statement)
        for statement in _TRANSACTION_INDEXES:
            conn.execute(statement)
        for name, kind in (
            ("store_id", "TEXT"),
            ("merchant_id", "TEXT"),
            ("status", "TEXT NOT NULL DEFAULT 'legacy'"),
            ("epoch", "INTEGER NOT NULL DEFAULT 1"),
            ("code_hash", "TEXT"),
            ("code_expires_at", "REAL"),
            ("failed_codes", "INTEGER NOT NULL DEFAULT 0"),
            ("enrolled_at", "TEXT"),
            ("retired_at", "TEXT"),
        ):
            if name not in _columns(conn, "terminals"):
                conn.execute(f"ALTER TABLE terminals ADD COLUMN {name} {kind}")
        if "kind" not in _columns(conn, "postings"):
            conn.execute("ALTER TABLE postings ADD COLUMN kind TEXT")
        _carry_over(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _carry_over(conn: sqlite3.Connection) -> None:
    """Holds and terminal keys from the tables before (dropped once carried over)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "reservations" in tables:
        conn.execute(
            "INSERT OR IGNORE INTO holds (ref, unit, member_id, amount, terminal_id, txn_id, expires_at) "
            "SELECT reservation, 'points', member_id, points, terminal_id, txn_id, expires_at FROM reservations"
        )
        conn.execute("DROP TABLE reservations")
    if "wallet_holds" in tables:
        conn.execute(
            "INSERT OR IGNORE INTO holds (ref, unit, member_id, amount, terminal_id, expires_at) "
            "SELECT ref, 'fen', member_id, amount, terminal_id, expires_at FROM wallet_holds"
        )
        conn.execute("DROP TABLE wallet_holds")
    if "public_key" in _columns(conn, "terminals"):
        conn.execute(
            "INSERT OR IGNORE INTO terminal_chains (terminal_id, epoch, public_key, high_seq, opened_at) "
            "SELECT terminal_id, 1, public_key, high_seq, datetime('now') FROM terminals WHERE public_key IS NOT NULL"
        )
        conn.execute("UPDATE terminals SET status = 'active' WHERE public_key IS NOT NULL AND status = 'legacy'")
        conn.execute("ALTER TABLE terminals DROP COLUMN public_key")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
