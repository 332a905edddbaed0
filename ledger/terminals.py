"""Terminals: enrolment with a one-time code, chain epochs, retirement and replacement.

No secret is shared between tills. An operator adds a terminal (``posgw-ledger
terminal add T-… --store … --merchant …``), which prints a one-time
enrolment code that expires. The till (``posgw enroll``) proves it holds its
journal key by signing the code with it; the ledger binds that key to the
terminal's next *chain epoch* and answers with the ledger's public keys,
which the till pins. From then on every request the terminal makes is signed
with that key (``protocols/http_signature.py``), and every record it sends
is sealed with it (``ledger/chain_check.py``).

Replacing a broken till retires the old chain (its records keep verifying
with its key) and issues a new code; the new till starts epoch + 1 from seq
1. Retiring a terminal refuses its key from then on. Every step is in the
audit trail. Codes are kept only as SHA-256 hashes and compared in constant
time; ten wrong codes void the one issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from ledger import chain_check
from ledger.database import Database, Tx, marks
from ledger.identity import audit
from protocols.enrolment import proof_message
from protocols.errors import FinalError
from protocols.records import ID_PATTERN
from protocols.sync import ChainView
from protocols.tokens import public_key_from_text

CODE_LIFETIME = 24 * 3600.0  # seconds an enrolment code stays good, unless the operator says otherwise
MAX_FAILED_CODES = 10


class TerminalAdminError(FinalError):
    """An operator's terminal command that cannot be done (unknown terminal, already there, retired)."""

    code = "terminal-admin"


class EnrolRefusedError(FinalError):
    """An enrolment the ledger refuses; ``code`` says why (the till prints it)."""

    code = "enrolment-refused"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Chain:
    epoch: int
    public_key: str
    high_seq: int
    opened_at: str
    closed_at: str | None


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    store_id: str | None
    merchant_id: str | None
    status: str  # pending | active | retired | legacy (a key from before enrolment, to be checked)
    epoch: int
    enrolled_at: str | None
    retired_at: str | None
    code_expires_at: float | None
    chains: tuple[Chain, ...]

    @property
    def key(self) -> str | None:
        """The key of the current chain, if it is open."""
        for c in self.chains:
            if c.epoch == self.epoch and c.closed_at is None:
                return c.public_key
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id,
            "store_id": self.store_id,
            "merchant_id": self.merchant_id,
            "status": self.status,
            "epoch": self.epoch,
            "enrolled_at": self.enrolled_at,
            "retired_at": self.retired_at,
            "chains": [
                {"epoch": c.epoch, "high_seq": c.high_seq, "opened_at": c.opened_at, "closed_at": c.closed_at}
                for c in self.chains
            ],
        }


def new_code() -> str:
    """A one-time code an operator reads out or sends: ``PE1-`` and 24 base32 letters in groups (120 bits)."""
    raw = base64.b32encode(secrets.token_bytes(15)).decode()
    return "PE1-" + "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def get(tx: Tx, terminal_id: str) -> Terminal | None:
    row = await tx.one(
        "SELECT terminal_id, store_id, merchant_id, status, epoch, enrolled_at, retired_at, code_expires_at "
        "FROM terminals WHERE terminal_id = $1",
        terminal_id,
    )
    if row is None:
        return None
    chains = tuple(
        Chain(int(e), str(k), int(h), str(o), None if c is None else str(c))
        for e, k, h, o, c in await tx.all(
            "SELECT epoch, public_key, high_seq, opened_at, closed_at FROM terminal_chains "
            "WHERE terminal_id = $1 ORDER BY epoch",
            terminal_id,
        )
    )
    t, store, merchant, status, epoch, enrolled, retired, expires = row
    return Terminal(str(t), store, merchant, str(status), int(epoch), enrolled, retired,
                    None if expires is None else float(expires), chains)  # fmt: skip


async def listing(tx: Tx) -> list[Terminal]:
    ids = [str(t) for (t,) in await tx.all("SELECT terminal_id FROM terminals ORDER BY terminal_id")]
    return [t for t in [await get(tx, i) for i in ids] if t is not None]


async def add(tx: Tx, terminal_id: str, store_id: str, merchant_id: str, actor: str, ttl: float = CODE_LIFETIME) -> str:
    """A new terminal, pending enrolment; the one-time code (shown once, kept only as a hash)."""
    if (held := await get(tx, terminal_id)) is not None:
        raise TerminalAdminError(
            f"terminal {terminal_id} is already known ({held.status}); "
            "to enrol a new till in its place: posgw-ledger terminal replace"
        )
    code = new_code()
    await tx.run(
        "INSERT INTO terminals (terminal_id, store_id, merchant_id, status, epoch, code_hash, code_expires_at) "
        "VALUES ($1, $2, $3, 'pending', 0, $4, $5)",
        terminal_id,
        store_id,
        merchant_id,
        _code_hash(code),
        datetime.now(UTC).timestamp() + ttl,
    )
    await audit(tx, actor, "terminal-add", terminal_id, {"store_id": store_id, "merchant_id": merchant_id})
    return code


async def add_many(
    tx: Tx, prefix: str, count: int, store_id: str, merchant_id: str, actor: str, ttl: float = CODE_LIFETIME
) -> dict[str, str]:
    """``count`` terminals named ``PREFIX-0000`` … at once (a new mall, a simulated fleet): id → code."""
    return {
        terminal_id: await add(tx, terminal_id, store_id, merchant_id, actor, ttl)
        for terminal_id in (f"{prefix}-{i:04d}" for i in range(count))
    }


async def replace(
    tx: Tx, terminal_id: str, actor: str, ttl: float = CODE_LIFETIME, store_id: str | None = None,
    merchant_id: str | None = None,
) -> str:  # fmt: skip
    """Close the terminal's chain (a broken or lost till) and issue a code for the till that replaces it."""
    held = await get(tx, terminal_id)
    if held is None:
        raise TerminalAdminError(f"no terminal {terminal_id}; add it first")
    code = new_code()
    await tx.run(
        "UPDATE terminal_chains SET closed_at = $1 WHERE terminal_id = $2 AND closed_at IS NULL", _now(), terminal_id
    )
    await tx.run(
        "UPDATE terminals SET status = 'pending', code_hash = $1, code_expires_at = $2, failed_codes = 0, "
        "store_id = COALESCE($3, store_id), merchant_id = COALESCE($4, merchant_id), retired_at = NULL "
        "WHERE terminal_id = $5",
        _code_hash(code),
        datetime.now(UTC).timestamp() + ttl,
        store_id,
        merchant_id,
        terminal_id,
    )
    await audit(tx, actor, "terminal-replace", terminal_id, {"closed_epoch": held.epoch})
    return code


async def retire(tx: Tx, terminal_id: str, actor: str) -> None:
    """The terminal may do nothing more: its key is refused, any code voided; its records stay."""
    held = await get(tx, terminal_id)
    if held is None:
        raise TerminalAdminError(f"no terminal {terminal_id}")
    await tx.run(
        "UPDATE terminal_chains SET closed_at = $1 WHERE terminal_id = $2 AND closed_at IS NULL", _now(), terminal_id
    )
    await tx.run(
        "UPDATE terminals SET status = 'retired', retired_at = $1, code_hash = NULL WHERE terminal_id = $2",
        _now(),
        terminal_id,
    )
    await audit(tx, actor, "terminal-retire", terminal_id, {"epoch": held.epoch})


async def set_counters(tx: Tx, terminal_id: str, counters: list[str], actor: str) -> None:
    """A department store's central checkout: the counters (merchants) its lines may be sold for."""
    if await get(tx, terminal_id) is None:
        raise TerminalAdminError(f"no terminal {terminal_id}")
    for counter in counters:
        if not re.fullmatch(ID_PATTERN, counter):
            raise TerminalAdminError(f"{counter[:40]!r} is not a merchant id")
    await tx.run("DELETE FROM terminal_counters WHERE terminal_id = $1", terminal_id)
    await tx.many("INSERT INTO terminal_counters VALUES ($1, $2)", [(terminal_id, c) for c in counters])
    await audit(tx, actor, "terminal-counters", terminal_id, {"counters": counters})


async def counters_of(tx: Tx, terminal_ids: list[str]) -> dict[str, frozenset[str]]:
    if not terminal_ids:
        return {}
    rows = await tx.all(
        f"SELECT terminal_id, merchant_id FROM terminal_counters WHERE terminal_id IN ({marks(len(terminal_ids))})",  # noqa: S608
        *terminal_ids,
    )
    out: dict[str, set[str]] = {}
    for t, m in rows:
        out.setdefault(str(t), set()).add(str(m))
    return {t: frozenset(ms) for t, ms in out.items()}


async def set_shop(tx: Tx, terminal_id: str, store_id: str, merchant_id: str, actor: str) -> None:
    """Name the shop of a terminal enrolled before enrolment did (a legacy key), after checking it."""
    held = await get(tx, terminal_id)
    if held is None:
        raise TerminalAdminError(f"no terminal {terminal_id}")
    status = "active" if held.status == "legacy" else held.status
    await tx.run(
        "UPDATE terminals SET store_id = $1, merchant_id = $2, status = $3 WHERE terminal_id = $4",
        store_id,
        merchant_id,
        status,
        terminal_id,
    )
    await audit(tx, actor, "terminal-shop", terminal_id, {"store_id": store_id, "merchant_id": merchant_id})


@dataclass(frozen=True, slots=True)
class Enrolment:
    terminal_id: str
    store_id: str | None
    merchant_id: str | None
    epoch: int


async def enrol(tx: Tx, terminal_id: str, code: str, public_key: str, proof: bytes, now: float) -> Enrolment:
    """Bind ``public_key`` to the terminal's next chain epoch, if the code and the proof hold."""
    row = await tx.one(
        "SELECT status, code_hash, code_expires_at, failed_codes, store_id, merchant_id FROM terminals "
        "WHERE terminal_id = $1",
        terminal_id,
    )
    refused = EnrolRefusedError("enrolment-code-invalid", f"this code does not enrol {terminal_id}")
    if row is None:
        raise refused
    status, code_hash, expires, _, store, merchant = row
    if status == "active" and (again := await _enrolled_already(tx, terminal_id, code, public_key, proof)):
        return Enrolment(terminal_id, store, merchant, again)  # its answer was lost: the same enrolment again
    if status != "pending" or code_hash is None:
        raise EnrolRefusedError(
            "enrolment-code-used",
            f"{terminal_id} has no enrolment code waiting ({status}): the code was used, or never issued; "
            "an operator issues a new one (posgw-ledger terminal replace)",
        )
    if not hmac.compare_digest(_code_hash(code), str(code_hash)):
        raise refused  # the caller counts it, in a transaction of its own (this one is rolled back)
    if expires is None or float(expires) < now:
        raise EnrolRefusedError("enrolment-code-expired", "this enrolment code has expired; ask for a new one")
    try:
        public_key_from_text(public_key).verify(proof, proof_message(terminal_id, code, public_key))
    except (InvalidSignature, ValueError, FinalError) as err:
        raise EnrolRefusedError("enrolment-proof-invalid", "the proof is not a signature by the key offered") from err
    if await tx.one("SELECT terminal_id FROM terminal_chains WHERE public_key = $1", public_key):
        raise EnrolRefusedError("enrolment-key-taken", "this key already belongs to a terminal; make a new one")
    last = await tx.one("SELECT MAX(epoch) FROM terminal_chains WHERE terminal_id = $1", terminal_id)
    epoch = (int(last[0]) if last and last[0] is not None else 0) + 1
    at = _now()
    await tx.run(
        "INSERT INTO terminal_chains (terminal_id, epoch, public_key, high_seq, opened_at) VALUES ($1, $2, $3, 0, $4)",
        terminal_id,
        epoch,
        public_key,
        at,
    )
    await tx.run(
        "UPDATE terminals SET status = 'active', epoch = $1, code_hash = NULL, code_expires_at = NULL, "
        "failed_codes = 0, enrolled_at = $2 WHERE terminal_id = $3",
        epoch,
        at,
        terminal_id,
    )
    await audit(tx, "enrolment", "terminal-enrolled", terminal_id, {"epoch": epoch})
    return Enrolment(terminal_id, store, merchant, epoch)


async def _enrolled_already(tx: Tx, terminal_id: str, code: str, public_key: str, proof: bytes) -> int | None:
    """The epoch ``public_key`` holds if the terminal is enrolled with it now and ``proof`` is its signature: the
    same till asking again because the answer to its enrolment was lost (a database gone as it committed)."""
    row = await tx.one(
        "SELECT c.epoch FROM terminals t JOIN terminal_chains c ON c.terminal_id = t.terminal_id AND c.epoch = t.epoch "
        "WHERE t.terminal_id = $1 AND c.public_key = $2",
        terminal_id,
        public_key,
    )
    if row is None:
        return None
    try:
        public_key_from_text(public_key).verify(proof, proof_message(terminal_id, code, public_key))
    except (InvalidSignature, ValueError, FinalError):
        return None
    return int(row[0])


async def code_failed(tx: Tx, terminal_id: str) -> None:
    """Count a wrong code; the tenth voids the code issued (an operator issues another)."""
    row = await tx.one("SELECT failed_codes FROM terminals WHERE terminal_id = $1 AND status = 'pending'", terminal_id)
    if row is None:
        return
    voided = int(row[0]) + 1 >= MAX_FAILED_CODES
    await tx.run(
        "UPDATE terminals SET failed_codes = failed_codes + 1, code_hash = CASE WHEN $1 THEN NULL ELSE code_hash END "
        "WHERE terminal_id = $2",
        voided,
        terminal_id,
    )
    await audit(tx, "enrolment", "terminal-code-wrong", terminal_id, {"voided": voided})


async def signing_key(tx: Tx, terminal_id: str) -> tuple[int, str] | None:
    """The epoch and key a terminal signs with now: None unless it is enrolled, open and not retired."""
    row = await tx.one(
        "SELECT c.epoch, c.public_key FROM terminals t JOIN terminal_chains c "
        "ON c.terminal_id = t.terminal_id AND c.epoch = t.epoch "
        "WHERE t.terminal_id = $1 AND t.status IN ('active', 'legacy') AND c.closed_at IS NULL",
        terminal_id,
    )
    return None if row is None else (int(row[0]), str(row[1]))


async def chain_key(tx: Tx, terminal_id: str, epoch: int) -> str | None:
    """The key that seals a chain epoch's records (closed chains too: their history still verifies)."""
    row = await tx.one(
        "SELECT public_key FROM terminal_chains WHERE terminal_id = $1 AND epoch = $2", terminal_id, epoch
    )
    return None if row is None else str(row[0])


async def chain_view(tx: Tx, terminal_id: str, epoch: int) -> ChainView:
    row = await tx.one("SELECT high_seq FROM terminal_chains WHERE terminal_id = $1 AND epoch = $2", terminal_id, epoch)
    high = 0 if row is None else int(row[0])
    above = [
        int(seq)
        for (seq,) in await tx.all(
            "SELECT seq FROM transactions WHERE terminal_id = $1 AND epoch = $2 AND seq > $3 ORDER BY seq",
            terminal_id,
            epoch,
            high,
        )
    ]
    high, gaps = chain_check.advance(high, above, limit=100)
    return ChainView(high, max([high, *above]), tuple(gaps))


class TerminalBook:
    """The store's facet for terminals (``store.terminals``): enrolment and the keys their chains are signed by."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def signing_key(self, terminal_id: str) -> tuple[int, str] | None:
        """The (epoch, key) a terminal signs requests with now; None if not enrolled or retired."""
        return await self.db.read(lambda tx: signing_key(tx, terminal_id))

    async def chain_key(self, terminal_id: str, epoch: int) -> str | None:
        return await self.db.read(lambda tx: chain_key(tx, terminal_id, epoch))

    async def chain_view(self, terminal_id: str, epoch: int) -> ChainView:
        """What the ledger holds of one chain, for the till to compare with its outbox."""
        return await self.db.read(lambda tx: chain_view(tx, terminal_id, epoch))

    async def enrol(self, terminal_id: str, code: str, public_key: str, proof: bytes) -> Enrolment:
        try:
            return await self.db.write(lambda tx: enrol(tx, terminal_id, code, public_key, proof, time.time()))
        except EnrolRefusedError as err:
            if err.code == "enrolment-code-invalid":
                await self.db.write(lambda tx: code_failed(tx, terminal_id))
            raise
