"""The ledger's schema: one versioned list of migrations for both engines, with small dialect parts.

Each :class:`Migration` is written once: its ``sql`` runs on SQLite and on
PostgreSQL alike, with ``{INT}``, ``{REAL}`` and ``{ID}`` rendered for each
(``INTEGER`` / ``BIGINT``, ``REAL`` / ``DOUBLE PRECISION``, an integer key
that numbers itself); what only one engine can say (triggers, a backfill in
its own JSON functions) goes in ``sqlite`` or ``postgres``. Both engines
record what they applied in ``schema_migrations`` and apply each missing
migration in one transaction; a database a newer ledger migrated is refused.

Version 4 is the baseline: the whole schema as of the trust round, which a new
database gets in one step. Databases made before it come up to version 4 the
way they always did (``postgres_legacy.py``'s steps 1-4 on PostgreSQL, the
idempotent upgrades in ``sqlite_legacy.py`` on SQLite), and
``tests/ledger/test_migrations.py`` holds the three paths to the same tables,
columns and indexes. Add a migration here, never there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"INT": "INTEGER", "REAL": "REAL", "ID": "INTEGER PRIMARY KEY"},
    "postgres": {"INT": "BIGINT", "REAL": "DOUBLE PRECISION", "ID": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str  # both engines
    sqlite: str = ""  # SQLite only, after ``sql``
    postgres: str = ""  # PostgreSQL only, after ``sql``

    def render(self, dialect: Dialect) -> str:
        own = self.sqlite if dialect == "sqlite" else self.postgres
        return (self.sql + own).format(**_TYPES[dialect])


BASELINE = Migration(
    4,
    "the ledger's tables as of the trust round: members, records, terminals and their chains, postings, holds, "
    "quarantine, audit, rulebooks, growth and tiers, secrets",
    """
CREATE TABLE member_rev (id INTEGER PRIMARY KEY CHECK (id = 1), n {INT} NOT NULL);
INSERT INTO member_rev VALUES (1, 0);
CREATE TABLE members (
    member_id TEXT PRIMARY KEY,
    tier      TEXT NOT NULL,
    status    TEXT NOT NULL DEFAULT 'active',
    points    {INT} NOT NULL DEFAULT 0 CHECK (points >= 0),
    wallet    {INT} NOT NULL DEFAULT 0 CHECK (wallet >= 0),
    growth    {INT} NOT NULL DEFAULT 0 CHECK (growth >= 0),
    rev       {INT} NOT NULL DEFAULT 0  -- the change counter when this member last changed (for deltas)
);
CREATE INDEX members_rev ON members(rev);
CREATE TABLE identifiers (
    identifier TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members(member_id)
);
CREATE TABLE transactions (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    epoch       {INT} NOT NULL DEFAULT 1,
    seq         {INT} NOT NULL,
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
    CONSTRAINT transactions_chain_key UNIQUE (terminal_id, epoch, seq)
);
CREATE INDEX transactions_created ON transactions(created_at);
CREATE INDEX transactions_refund_of ON transactions(refund_of) WHERE refund_of IS NOT NULL;
CREATE INDEX transactions_member ON transactions(member_id, terminal_id) WHERE member_id IS NOT NULL;
CREATE TABLE terminals (
    terminal_id     TEXT PRIMARY KEY,
    high_seq        {INT} NOT NULL DEFAULT 0,  -- before chain epochs; terminal_chains holds each epoch's
    store_id        TEXT,
    merchant_id     TEXT,
    status          TEXT NOT NULL DEFAULT 'legacy',  -- pending (a code issued) | active | retired | legacy
    epoch           {INT} NOT NULL DEFAULT 1,        -- the chain epoch its enrolled key signs
    code_hash       TEXT,                            -- SHA-256 of the one-time enrolment code
    code_expires_at {REAL},
    failed_codes    INTEGER NOT NULL DEFAULT 0,      -- wrong codes tried since the last was issued
    enrolled_at     TEXT,
    retired_at      TEXT
);
CREATE TABLE terminal_chains (
    terminal_id TEXT NOT NULL,
    epoch       {INT} NOT NULL,
    public_key  TEXT NOT NULL,
    high_seq    {INT} NOT NULL DEFAULT 0,
    opened_at   TEXT NOT NULL,
    closed_at   TEXT,
    PRIMARY KEY (terminal_id, epoch)
);
CREATE TABLE coupon_redemptions (
    instance    TEXT PRIMARY KEY,
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL
);
CREATE TABLE revoked_coupons (
    instance   TEXT PRIMARY KEY,  -- <coupon id>:<instance>
    revoked_at TEXT NOT NULL
);
CREATE TABLE conflicts (
    id          {ID},
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE postings (
    id      {ID},
    txn_id  TEXT NOT NULL,      -- the record (or "opening:<member>") the set belongs to
    ref     TEXT,               -- for stored value: the payment it settles
    account TEXT NOT NULL,
    unit    TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
    amount  {INT} NOT NULL,
    kind    TEXT
);
CREATE INDEX postings_account ON postings(account);
CREATE INDEX postings_txn ON postings(txn_id);
CREATE INDEX postings_ref ON postings(ref) WHERE ref IS NOT NULL;
CREATE TABLE holds (
    ref         TEXT PRIMARY KEY,  -- points: the ledger's reservation id; stored value: the terminal's payment id
    unit        TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
    member_id   TEXT NOT NULL,
    amount      {INT} NOT NULL CHECK (amount > 0),
    terminal_id TEXT NOT NULL,
    txn_id      TEXT,              -- points: the sale the hold is for
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided')),
    expires_at  {REAL} NOT NULL,
    posted_by   TEXT               -- the record that consumed it
);
CREATE INDEX holds_member ON holds(member_id, unit) WHERE state = 'pending';
CREATE TABLE quarantine (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    epoch       {INT} NOT NULL,
    seq         {INT} NOT NULL,
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'rejected')),
    held_at     TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  TEXT,
    note        TEXT
);
CREATE TABLE audit (
    id      {ID},
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TABLE unheld_spends (  -- points and stored value spent without a hold (offline limits)
    terminal_id TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    unit        TEXT NOT NULL,
    amount      {INT} NOT NULL,
    made_at     {REAL} NOT NULL,  -- the record's time (the terminal's clock), Unix seconds
    received_at {REAL} NOT NULL   -- when the ledger applied it
);
CREATE INDEX unheld_spends_pair ON unheld_spends(terminal_id, member_id, received_at);
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,  -- sealed with the ledger's secrets key (ledger/secrets.py)
    created_at TEXT NOT NULL
);
CREATE TABLE rulebooks (
    version   {INT} PRIMARY KEY,
    body      TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
CREATE TABLE member_growth (
    member_id TEXT NOT NULL,
    year      TEXT NOT NULL,  -- the calendar year of the records that earned it
    growth    {INT} NOT NULL CHECK (growth >= 0),
    PRIMARY KEY (member_id, year)
);
CREATE TABLE tier_changes (
    id         {ID},
    member_id  TEXT NOT NULL,
    from_tier  TEXT NOT NULL,
    to_tier    TEXT NOT NULL,
    growth     {INT} NOT NULL,
    reason     TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX tier_changes_member ON tier_changes(member_id);
CREATE TABLE tier_reviews (
    year        TEXT PRIMARY KEY,
    reviewed_at TEXT NOT NULL,
    moved       {INT} NOT NULL
);
""",
    # Every change a terminal's member cache must hear of takes the next revision.
    sqlite="""
CREATE TRIGGER members_rev_ins AFTER INSERT ON members BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER members_rev_upd AFTER UPDATE OF tier, status, points, wallet ON members BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER identifiers_rev AFTER INSERT ON identifiers BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER identifiers_rev_upd AFTER UPDATE OF member_id ON identifiers BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
""",
    postgres="""
CREATE FUNCTION members_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE member_rev SET n = n + 1 RETURNING n INTO NEW.rev;
    RETURN NEW;
END $$;
CREATE TRIGGER members_rev BEFORE INSERT OR UPDATE OF tier, status, points, wallet ON members
    FOR EACH ROW EXECUTE FUNCTION members_next_rev();
CREATE FUNCTION identifiers_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH r AS (UPDATE member_rev SET n = n + 1 RETURNING n)
    UPDATE members SET rev = (SELECT n FROM r) WHERE member_id = NEW.member_id;
    RETURN NULL;
END $$;
CREATE TRIGGER identifiers_rev AFTER INSERT OR UPDATE OF member_id ON identifiers
    FOR EACH ROW EXECUTE FUNCTION identifiers_next_rev();
""",
)

USED_CODES = Migration(
    5,
    "wallet codes used once",
    """
CREATE TABLE used_codes (
    nonce       TEXT PRIMARY KEY,  -- a PW1 wallet code's <kid>:<nonce>: it pays one payment, once
    member_id   TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    ref         TEXT NOT NULL,     -- the payment (hold, then tender) it paid
    txn_id      TEXT,              -- the sale that spent it, once that arrives
    used_at     TEXT NOT NULL
);
""",
)

REVOCATION_LOG = Migration(
    6,
    "revocations in order, for tills' deltas",
    """
CREATE TABLE revocation_log (
    rev        {ID},                  -- the revocation list's version once this copy is in it
    instance   TEXT NOT NULL UNIQUE,  -- <coupon id>:<instance>
    revoked_at TEXT NOT NULL
);
INSERT INTO revocation_log (instance, revoked_at)
    SELECT instance, revoked_at FROM revoked_coupons ORDER BY revoked_at, instance;
""",
)

MEMBER_ALIASES = Migration(
    7,
    "members enrolled at a till who turned out to be members already",
    """
CREATE TABLE member_aliases (
    alias     TEXT PRIMARY KEY,  -- J-<terminal>-<n>: the member a till made for a customer it enrolled
    member_id TEXT NOT NULL REFERENCES members(member_id),  -- who already carried the phone number
    txn_id    TEXT NOT NULL,     -- the join record
    joined_at TEXT NOT NULL
);
""",
)

WALLET_GRANTS = Migration(
    8,
    "top-up bonuses: stored value that lapses, and which payments spent it",
    """
CREATE TABLE wallet_grants (
    txn_id     TEXT PRIMARY KEY,           -- the top-up that was given it
    member_id  TEXT NOT NULL REFERENCES members(member_id),
    amount     {INT} NOT NULL CHECK (amount > 0),
    remaining  {INT} NOT NULL CHECK (remaining >= 0),  -- not yet spent (nor lapsed)
    expires_on TEXT NOT NULL,              -- the mall's business day it lapses at the start of
    lapsed     {INT} NOT NULL DEFAULT 0    -- what the expiry run took back
);
CREATE INDEX wallet_grants_member ON wallet_grants(member_id, expires_on);
CREATE TABLE grant_uses (                  -- a payment spent part of a grant (negative: a refund gave it back)
    id       {ID},
    txn_id   TEXT NOT NULL,                -- the sale (or refund) that spent (or gave back)
    sale_id  TEXT NOT NULL,                -- the sale whose spending this is, for its refunds
    grant_id TEXT NOT NULL REFERENCES wallet_grants(txn_id),
    amount   {INT} NOT NULL
);
CREATE INDEX grant_uses_sale ON grant_uses(sale_id);
""",
)

PAID_TIERS = Migration(
    9,
    "paid tiers: bought at a till, held until a day, lapsed or revoked",
    """
CREATE TABLE paid_tiers (
    txn_id        TEXT PRIMARY KEY,          -- the sale that bought it
    member_id     TEXT NOT NULL REFERENCES members(member_id),
    tier          TEXT NOT NULL,
    previous_tier TEXT NOT NULL,             -- held before buying: the floor when it ends
    valid_until   TEXT NOT NULL,             -- the last business day it runs, YYYY-MM-DD
    state         TEXT NOT NULL CHECK (state IN ('active', 'replaced', 'lapsed', 'revoked')),
    changed_at    TEXT NOT NULL,
    terminal_id   TEXT NOT NULL,             -- the till that sold it
    sold_on       TEXT NOT NULL              -- the business day it was sold (the till's daily cap)
);
CREATE INDEX paid_tiers_running ON paid_tiers(state, valid_until);
CREATE INDEX paid_tiers_sold ON paid_tiers(terminal_id, sold_on);
CREATE INDEX paid_tiers_member ON paid_tiers(member_id);
""",
)

CONTROLS = Migration(
    10,
    "the mall's controls: daily counters, earnings held for review, surges, manual adjustments",
    """
CREATE TABLE control_counters (             -- per member or till and business day (ledger/controls.py)
    subject TEXT NOT NULL,                  -- member:<id> | terminal:<id>
    day     TEXT NOT NULL,
    points  {INT} NOT NULL,                 -- credited
    growth  {INT} NOT NULL,                 -- credited
    asked   {INT} NOT NULL,                 -- points the records earned, held or not (surges)
    PRIMARY KEY (subject, day)
);
CREATE TABLE held_earnings (                -- past a cap, or a member not active: for an operator to decide
    id         {ID},
    txn_id     TEXT NOT NULL UNIQUE,        -- the sale
    member_id  TEXT NOT NULL,
    points     {INT} NOT NULL CHECK (points >= 0),
    growth     {INT} NOT NULL CHECK (growth >= 0),
    reason     TEXT NOT NULL,
    day        TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('held', 'released', 'rejected')),
    held_at    TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note       TEXT
);
CREATE INDEX held_earnings_state ON held_earnings(state, id);
CREATE TABLE surges (                       -- once a day per member or till
    subject   TEXT NOT NULL,
    day       TEXT NOT NULL,
    points    {INT} NOT NULL,
    earlier   {INT} NOT NULL,               -- points asked over the 30 days before
    txn_id    TEXT NOT NULL,                -- the record that crossed the line
    raised_at TEXT NOT NULL,
    PRIMARY KEY (subject, day)
);
CREATE TABLE adjustments (                  -- an operator's, with the reason (and an audit entry)
    id        {ID},
    member_id TEXT NOT NULL REFERENCES members(member_id),
    points    {INT} NOT NULL,
    growth    {INT} NOT NULL,
    reason    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    made_at   TEXT NOT NULL,
    day       TEXT NOT NULL                 -- the mall's business day it was made on
);
CREATE INDEX adjustments_day ON adjustments(day);
""",
)

POINTS_MALL = Migration(
    11,
    "the points mall: a catalogue of goods for points, and orders that hold then take them",
    """
CREATE TABLE catalogue (
    item_id    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    points     {INT} NOT NULL CHECK (points > 0),
    stock      {INT} NOT NULL CHECK (stock >= 0),
    active     {INT} NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE mall_orders (
    order_id    TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL REFERENCES members(member_id),
    item_id     TEXT NOT NULL REFERENCES catalogue(item_id),
    quantity    {INT} NOT NULL CHECK (quantity > 0),
    points      {INT} NOT NULL CHECK (points > 0),  -- held at the order (holds: order:<id>), taken at fulfilment
    state       TEXT NOT NULL CHECK (state IN ('placed', 'fulfilled', 'cancelled')),
    placed_at   TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  TEXT,                   -- the till that fulfilled it, or who cancelled it
    terminal_id TEXT,
    day         TEXT                    -- the business day it was fulfilled (the day report's exchanged points)
);
CREATE INDEX mall_orders_member ON mall_orders(member_id);
""",
)

GIFT_CARDS = Migration(
    12,
    "gift cards: stored value without a member, issued as stock, loaded by sales, spent as tenders",
    """
CREATE TABLE gift_cards (
    number       TEXT PRIMARY KEY,           -- GC + 12 digits (protocols/gift_cards.py)
    state        TEXT NOT NULL CHECK (state IN ('stock', 'active', 'expired')),
    balance      {INT} NOT NULL CHECK (balance >= 0),  -- a cache of the postings of giftcard:<number>
    expires_on   TEXT,                       -- the first business day it no longer pays (set at the first load)
    issued_at    TEXT NOT NULL,
    activated_at TEXT
);
CREATE TABLE gift_card_loads (              -- what each till loaded, by business day (its daily cap)
    txn_id      TEXT NOT NULL,
    number      TEXT NOT NULL REFERENCES gift_cards(number),
    amount      {INT} NOT NULL,              -- negative: a load given back
    terminal_id TEXT NOT NULL,
    day         TEXT NOT NULL
);
CREATE INDEX gift_card_loads_till ON gift_card_loads(terminal_id, day);
""",
)

STAFF = Migration(
    13,
    "the mall's staff: who signs in at a till, their role and PIN hash (protocols/staff.py), and the policy",
    """
CREATE TABLE staff (
    staff_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('cashier', 'supervisor')),
    pin_hash   TEXT NOT NULL,              -- scrypt, salted: never the PIN
    active     {INT} NOT NULL,             -- 0: no longer signs in (kept: records name them for ever)
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
);
CREATE TABLE staff_rev (id INTEGER PRIMARY KEY CHECK (id = 1), n {INT} NOT NULL);
INSERT INTO staff_rev VALUES (1, 0);
ALTER TABLE transactions ADD COLUMN cashier TEXT;  -- who made it (the record's own word, re-checked)
ALTER TABLE transactions ADD COLUMN shift TEXT;
CREATE INDEX transactions_shift ON transactions(terminal_id, shift);
""",
)

RETURNS = Migration(
    14,
    "returns at any till: which till asked for which sale (a refund at another till must have asked for it)",
    """
CREATE TABLE sale_lookups (
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    asked_at    TEXT NOT NULL,
    PRIMARY KEY (txn_id, terminal_id)
);
""",
)

COUNTERS = Migration(
    15,
    "a department store's central checkout: the counters (merchants) a till's lines may be sold for",
    """
CREATE TABLE terminal_counters (
    terminal_id TEXT NOT NULL REFERENCES terminals(terminal_id),
    merchant_id TEXT NOT NULL,
    PRIMARY KEY (terminal_id, merchant_id)
);
""",
)

RECORD_AUDIT = Migration(
    16,
    "every stored record's own signature audited in the background: how far each chain has been",
    """
ALTER TABLE terminal_chains ADD COLUMN audited_seq {INT} NOT NULL DEFAULT 0;
""",
)

MEMBER_REVISIONS = Migration(
    17,
    "member revisions without one counter row every writer locks (PostgreSQL)",
    "",
    # A changed member's revision is its transaction's id on top of the counter as it stood (now a fixed
    # base): no row is shared, so writers of different members never wait for each other. Which revisions
    # a reader may promise it holds is worked out from its snapshot (``ledger/member_books.py``). SQLite's
    # one writer keeps the counter.
    postgres="""
CREATE OR REPLACE FUNCTION members_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.rev := (SELECT n FROM member_rev) + pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION identifiers_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE members SET rev = (SELECT n FROM member_rev) + pg_current_xact_id()::text::bigint
        WHERE member_id = NEW.member_id;
    RETURN NULL;
END $$;
""",
)

# Every migration after the baseline, oldest first; each written once for both engines.
MIGRATIONS: list[Migration] = [
    BASELINE, USED_CODES, REVOCATION_LOG, MEMBER_ALIASES, WALLET_GRANTS, PAID_TIERS, CONTROLS, POINTS_MALL, GIFT_CARDS,
    STAFF, RETURNS, COUNTERS, RECORD_AUDIT, MEMBER_REVISIONS,
]  # fmt: skip
LATEST = MIGRATIONS[-1].version
