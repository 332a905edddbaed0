"""How a PostgreSQL ledger made before the baseline comes up to it: the steps 1-4 it was migrated by.

Frozen: a new database gets the baseline (``migrations.py``, version 4) in one
step, and every later change is a migration there, written once for both
engines. ``tests/ledger/test_migrations.py`` holds these steps to the baseline.
"""

from __future__ import annotations

LEGACY_STEPS: list[tuple[int, str, str]] = [
    (
        1,
        "ledger tables",
        """
        CREATE TABLE member_rev (id INT PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
        INSERT INTO member_rev VALUES (1, 0);
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            tier      TEXT NOT NULL,
            status    TEXT NOT NULL DEFAULT 'active',
            points    BIGINT NOT NULL DEFAULT 0 CHECK (points >= 0),
            wallet    BIGINT NOT NULL DEFAULT 0 CHECK (wallet >= 0),
            rev       BIGINT NOT NULL DEFAULT 0  -- the change counter when this member last changed (for deltas)
        );
        CREATE INDEX members_rev ON members(rev);
        -- Every change a terminal's member cache must hear of takes the next revision.
        CREATE FUNCTION members_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE member_rev SET n = n + 1 RETURNING n INTO NEW.rev;
            RETURN NEW;
        END $$;
        CREATE TRIGGER members_rev BEFORE INSERT OR UPDATE OF tier, status, points, wallet ON members
            FOR EACH ROW EXECUTE FUNCTION members_next_rev();
        CREATE TABLE identifiers (
            identifier TEXT PRIMARY KEY,
            member_id  TEXT NOT NULL REFERENCES members(member_id)
        );
        CREATE FUNCTION identifiers_next_rev() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            WITH r AS (UPDATE member_rev SET n = n + 1 RETURNING n)
            UPDATE members SET rev = (SELECT n FROM r) WHERE member_id = NEW.member_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER identifiers_rev AFTER INSERT OR UPDATE OF member_id ON identifiers
            FOR EACH ROW EXECUTE FUNCTION identifiers_next_rev();
        CREATE TABLE transactions (
            txn_id      TEXT PRIMARY KEY,
            terminal_id TEXT NOT NULL,
            seq         BIGINT NOT NULL,
            body        TEXT NOT NULL,
            received_at TEXT NOT NULL,
            prev_hash   TEXT,
            hash        TEXT,
            created_at  TEXT,
            kind        TEXT,
            UNIQUE (terminal_id, seq)
        );
        CREATE INDEX transactions_created ON transactions(created_at);
        CREATE TABLE terminals (
            terminal_id TEXT PRIMARY KEY,
            high_seq    BIGINT NOT NULL DEFAULT 0,
            public_key  TEXT
        );
        CREATE TABLE reservations (
            reservation TEXT PRIMARY KEY,
            member_id   TEXT NOT NULL,
            points      BIGINT NOT NULL CHECK (points > 0),
            txn_id      TEXT NOT NULL,
            terminal_id TEXT NOT NULL,
            expires_at  DOUBLE PRECISION NOT NULL
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
            id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            txn_id      TEXT NOT NULL,
            terminal_id TEXT NOT NULL,
            detail      TEXT NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE postings (
            id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            txn_id  TEXT NOT NULL,      -- the record (or "opening:<member>") the set belongs to
            ref     TEXT,               -- for stored value: the payment it settles
            account TEXT NOT NULL,
            unit    TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
            amount  BIGINT NOT NULL
        );
        CREATE INDEX postings_account ON postings(account);
        CREATE INDEX postings_txn ON postings(txn_id);
        CREATE INDEX postings_ref ON postings(ref) WHERE ref IS NOT NULL;
        CREATE TABLE wallet_holds (
            ref         TEXT PRIMARY KEY,  -- the terminal's payment id
            member_id   TEXT NOT NULL,
            amount      BIGINT NOT NULL CHECK (amount > 0),
            terminal_id TEXT NOT NULL,
            expires_at  DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    (
        2,
        "growth value, rulebook versions",
        """
        ALTER TABLE members ADD COLUMN growth BIGINT NOT NULL DEFAULT 0 CHECK (growth >= 0);
        CREATE TABLE rulebooks (
            version   BIGINT PRIMARY KEY,
            body      TEXT NOT NULL,
            sha256    TEXT NOT NULL,
            loaded_at TEXT NOT NULL
        );
        """,
    ),
    (
        3,
        "growth by year, tier changes and reviews",
        """
        CREATE TABLE member_growth (
            member_id TEXT NOT NULL,
            year      TEXT NOT NULL,  -- the calendar year of the records that earned it
            growth    BIGINT NOT NULL CHECK (growth >= 0),
            PRIMARY KEY (member_id, year)
        );
        CREATE TABLE tier_changes (
            id         BIGSERIAL PRIMARY KEY,
            member_id  TEXT NOT NULL,
            from_tier  TEXT NOT NULL,
            to_tier    TEXT NOT NULL,
            growth     BIGINT NOT NULL,
            reason     TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
        CREATE INDEX tier_changes_member ON tier_changes(member_id);
        CREATE TABLE tier_reviews (
            year        TEXT PRIMARY KEY,
            reviewed_at TEXT NOT NULL,
            moved       BIGINT NOT NULL
        );
        """,
    ),
]

LEGACY_STEPS.append(
    (
        4,
        "terminal enrolment and chain epochs, one hold primitive, quarantine, audit, postings by kind, secrets",
        """
        CREATE TABLE holds (
            ref         TEXT PRIMARY KEY,  -- points: the ledger's reservation id; stored value: the payment id
            unit        TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
            member_id   TEXT NOT NULL,
            amount      BIGINT NOT NULL CHECK (amount > 0),
            terminal_id TEXT NOT NULL,
            txn_id      TEXT,
            state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided')),
            expires_at  DOUBLE PRECISION NOT NULL,
            posted_by   TEXT
        );
        CREATE INDEX holds_member ON holds(member_id, unit) WHERE state = 'pending';
        INSERT INTO holds (ref, unit, member_id, amount, terminal_id, txn_id, expires_at)
            SELECT reservation, 'points', member_id, points, terminal_id, txn_id, expires_at FROM reservations;
        INSERT INTO holds (ref, unit, member_id, amount, terminal_id, expires_at)
            SELECT ref, 'fen', member_id, amount, terminal_id, expires_at FROM wallet_holds
            ON CONFLICT (ref) DO NOTHING;
        DROP TABLE reservations;
        DROP TABLE wallet_holds;

        CREATE TABLE terminal_chains (
            terminal_id TEXT NOT NULL,
            epoch       BIGINT NOT NULL,
            public_key  TEXT NOT NULL,
            high_seq    BIGINT NOT NULL DEFAULT 0,
            opened_at   TEXT NOT NULL,
            closed_at   TEXT,
            PRIMARY KEY (terminal_id, epoch)
        );
        INSERT INTO terminal_chains (terminal_id, epoch, public_key, high_seq, opened_at)
            SELECT terminal_id, 1, public_key, high_seq, now()::text FROM terminals WHERE public_key IS NOT NULL;
        ALTER TABLE terminals
            ADD COLUMN store_id TEXT,
            ADD COLUMN merchant_id TEXT,
            ADD COLUMN status TEXT NOT NULL DEFAULT 'legacy',
            ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1,
            ADD COLUMN code_hash TEXT,
            ADD COLUMN code_expires_at DOUBLE PRECISION,
            ADD COLUMN failed_codes INTEGER NOT NULL DEFAULT 0,
            ADD COLUMN enrolled_at TEXT,
            ADD COLUMN retired_at TEXT;
        UPDATE terminals SET status = 'active' WHERE public_key IS NOT NULL;
        ALTER TABLE terminals DROP COLUMN public_key;

        ALTER TABLE transactions
            ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1,
            ADD COLUMN state TEXT NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'quarantined', 'rejected')),
            ADD COLUMN refund_of TEXT,
            ADD COLUMN member_id TEXT,
            ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
        UPDATE transactions SET refund_of = body::jsonb ->> 'refund_of', member_id = body::jsonb ->> 'member_id',
            offline = CASE WHEN (body::jsonb ->> 'offline')::boolean THEN 1 ELSE 0 END;
        ALTER TABLE transactions DROP CONSTRAINT transactions_terminal_id_seq_key;
        ALTER TABLE transactions ADD CONSTRAINT transactions_chain_key UNIQUE (terminal_id, epoch, seq);
        CREATE INDEX transactions_refund_of ON transactions(refund_of) WHERE refund_of IS NOT NULL;
        CREATE INDEX transactions_member ON transactions(member_id, terminal_id) WHERE member_id IS NOT NULL;

        ALTER TABLE postings ADD COLUMN kind TEXT;

        CREATE TABLE quarantine (
            txn_id      TEXT PRIMARY KEY,
            terminal_id TEXT NOT NULL,
            epoch       BIGINT NOT NULL,
            seq         BIGINT NOT NULL,
            reason      TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'rejected')),
            held_at     TEXT NOT NULL,
            decided_at  TEXT,
            decided_by  TEXT,
            note        TEXT
        );
        CREATE TABLE audit (
            id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
            amount      BIGINT NOT NULL,
            made_at     DOUBLE PRECISION NOT NULL,
            received_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX unheld_spends_pair ON unheld_spends(terminal_id, member_id, received_at);
        CREATE TABLE secrets (
            name       TEXT PRIMARY KEY,
            value      TEXT NOT NULL,  -- sealed with the ledger's secrets key (ledger/secrets.py)
            created_at TEXT NOT NULL
        );
        """,
    )
)
