"""The mall's staff as the ledger signs them for its tills: who may sign in, with what PIN, in what role.

Sans I/O. The ledger keeps the staff list (``ledger/staff.py``) and serves it
signed with its issuer key, like the rulebook; a till believes no list that
is not signed by the key it pinned, nor one older than the list it holds.

A PIN is never stored or sent: only its scrypt hash (salted, memory-hard), so
a till's disk or the wire gives away no PIN directly. A 4–8 digit PIN under
even a slow hash falls to an offline search by whoever copies the list, so the
list is for checking a cashier at a till, never a password for anything else;
what guards against guessing at the till is its lock-out (``gateway/staff``).

The list also carries the mall's approval policy: which acts a supervisor must
approve at the till (voids, drawers opened without a sale, prices changed by
hand, and refunds above ``refund_above`` fen) and how many wrong PINs lock a
cashier out. The ledger checks the same policy on every record it ingests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols.rulebook import RulebookRefusedError, open_document, seal_document
from protocols.schema import Fields, Problems

ROLES = ("cashier", "supervisor")
STAFF_ID = r"[A-Za-z0-9_.-]{1,32}"
PIN_PATTERN = re.compile(r"[0-9]{4,8}")
MAX_STAFF = 20_000
# scrypt cost: 2**14 × 8 × 128 bytes = 16 MiB and about 50 ms a check on one core; a list may ask for
# more, up to the bound below (a signed list is trusted, but a till's memory is not unlimited).
SCRYPT_LOG_N = 14
MAX_SCRYPT_LOG_N = 16
_HASH = re.compile(r"scrypt\$(\d{1,2})\$(\d)\$(\d)\$([A-Za-z0-9_-]{22})\$([A-Za-z0-9_-]{43})")

# Acts a supervisor approves (their PIN at the till); the record carries ``approved_by``.
APPROVED_ACTS = ("void", "refund", "no_sale", "price")


@dataclass(frozen=True, slots=True)
class Policy:
    """What needs a supervisor, and how a till guards PINs."""

    refund_above: int = 50_000  # fen: a refund giving back more than this needs a supervisor (¥500)
    max_tries: int = 5  # wrong PINs in a row that lock a staff id out of a till
    lockout_seconds: int = 300

    def to_wire(self) -> dict[str, Any]:
        return {"refund_above": self.refund_above, "max_tries": self.max_tries, "lockout_seconds": self.lockout_seconds}

    def needs_approval(self, act: str, amount: int = 0) -> bool:
        """Whether ``act`` (one of :data:`APPROVED_ACTS`) of ``amount`` fen needs a supervisor's approval."""
        return act != "refund" or amount > self.refund_above


@dataclass(frozen=True, slots=True)
class StaffEntry:
    staff_id: str
    name: str
    role: str  # cashier | supervisor
    pin_hash: str  # scrypt$<log2 n>$<r>$<p>$<salt>$<hash>, base64url without padding

    def to_wire(self) -> dict[str, Any]:
        return {"staff_id": self.staff_id, "name": self.name, "role": self.role, "pin_hash": self.pin_hash}

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True, slots=True)
class StaffList:
    version: int
    staff: dict[str, StaffEntry]
    policy: Policy


class StaffListRefusedError(RulebookRefusedError):
    """A staff list the till cannot use: unsigned, signed by another key, malformed, or older than held."""

    code = "staff-list-refused"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(pin: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=n * r * 128 + (1 << 20))


def hash_pin(pin: str, log_n: int = SCRYPT_LOG_N) -> str:
    """A new salted hash of ``pin`` (the ledger's side; ValueError if it is not 4–8 digits)."""
    if not PIN_PATTERN.fullmatch(pin):
        raise ValueError("a PIN is 4 to 8 digits")
    salt = secrets.token_bytes(16)
    return f"scrypt${log_n}$8$1${_b64(salt)}${_b64(_scrypt(pin, salt, log_n, 8, 1))}"


def verify_pin(pin_hash: str, pin: str) -> bool:
    """Whether ``pin`` is the one ``pin_hash`` was made from (constant time in the comparison). Slow by design:
    run it off the event loop."""
    match = _HASH.fullmatch(pin_hash)
    if match is None or not PIN_PATTERN.fullmatch(pin):
        return False
    log_n, r, p = int(match[1]), int(match[2]), int(match[3])
    if not 10 <= log_n <= MAX_SCRYPT_LOG_N or not 1 <= r <= 8 or not 1 <= p <= 2:
        return False
    return hmac.compare_digest(_scrypt(pin, _unb64(match[4]), log_n, r, p), _unb64(match[5]))


def staff_to_wire(version: int, staff: list[StaffEntry], policy: Policy) -> dict[str, Any]:
    return {"version": version, "staff": [s.to_wire() for s in staff], "policy": policy.to_wire()}


def sign_staff(wire: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    return seal_document("staff", wire, key)


def open_staff(envelope: object, key: Ed25519PublicKey) -> StaffList:
    """Check a signed staff list against the pinned ledger key (before reading it), then read it."""
    try:
        wire = open_document(envelope, "staff", "staff list", key)
    except RulebookRefusedError as err:
        raise StaffListRefusedError(str(err)) from err
    problems = Problems("signed staff list")
    f = Fields(wire, problems)
    version = f.integer("version", minimum=0, maximum=2**62)
    staff: dict[str, StaffEntry] = {}
    for sf in f.tables("staff", max_items=MAX_STAFF):
        entry = StaffEntry(
            sf.text("staff_id", pattern=STAFF_ID),
            sf.text("name", max_len=64),
            sf.text("role", choices=ROLES),
            sf.text("pin_hash", max_len=120),
        )
        sf.done()
        if not _HASH.fullmatch(entry.pin_hash):
            problems.add(f"{sf.path}.pin_hash", "is not a scrypt PIN hash")
        if entry.staff_id in staff:
            problems.add(sf.path, f"staff id {entry.staff_id} is listed twice")
        staff[entry.staff_id] = entry
    pf = f.table("policy", required=True)
    policy = Policy(
        pf.integer("refund_above", minimum=0, maximum=10**12),
        pf.integer("max_tries", minimum=1, maximum=100),
        pf.integer("lockout_seconds", minimum=1, maximum=86_400),
    )
    pf.done()
    f.done()
    if problems.items:
        raise StaffListRefusedError("; ".join(problems.items[:5]))
    return StaffList(version, staff, policy)
