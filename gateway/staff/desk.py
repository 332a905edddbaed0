"""Who is at the till: a cashier signs in with their staff id and PIN; a supervisor approves with theirs.

PINs are checked against the slow hashes of the ledger's signed staff list
(``gateway/staff/roster.py``), off the event loop. Guessing is bounded twice:
``max_tries`` wrong PINs in a row lock that staff id out of this till for
``lockout_seconds`` (the policy the list carries), and four times as many
wrong PINs for any ids lock the till's PIN entry as a whole (someone walking
the ids). Each lock raises an alert. The locks live in memory: a restart of the
daemon is a store IT act, logged, not a cashier's.

One cashier is signed in at a time; every record the till makes while they
are names them (``stamp``), and the shift open on the till
(``gateway/staff/shifts.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.errors import ApprovalRequiredError, CashierRequiredError, PinLockedError, PinRefusedError
from gateway.events import Alert, CashierChanged, EventHub
from gateway.staff.roster import Roster
from protocols.records import TransactionRecord
from protocols.staff import StaffEntry, verify_pin

log = structlog.get_logger("posgw.staff")

TILL_WIDE = 4  # wrong PINs for any ids, as a multiple of max_tries, that lock the till's PIN entry


@dataclass(frozen=True, slots=True)
class Approval:
    """A supervisor's staff id and PIN, given with the request that needs them."""

    staff_id: str
    pin: str


class CashierDesk:
    def __init__(self, roster: Roster, hub: EventHub, clock: Callable[[], float] = time.monotonic) -> None:
        self.roster = roster
        self.hub = hub
        self.clock = clock
        self.cashier: StaffEntry | None = None
        self.shift: str | None = None  # the shift open on the till (``gateway/staff/shifts.py`` keeps it)
        self._wrong: dict[str, int] = {}  # staff id -> wrong PINs in a row
        self._locked: dict[str, float] = {}  # staff id, or "*" for the till -> locked until (monotonic)
        self._recent: list[float] = []  # when wrong PINs were given, any id (the till-wide lock)

    @property
    def required(self) -> bool:
        return self.roster.required

    def who(self) -> str | None:
        """The cashier signed in, or None where no staff list is held; else refused."""
        if not self.required:
            return None
        if self.cashier is None or self.roster.get(self.cashier.staff_id) is None:
            self.cashier = None  # signed out by a new list that no longer holds them
            raise CashierRequiredError("no cashier is signed in at this till: sign in with your staff id and PIN")
        return self.cashier.staff_id

    def stamp(self, draft: TransactionRecord) -> TransactionRecord:
        """``draft`` naming the cashier signed in and the shift open, where it names neither yet (called in the
        journal's writer as each record is committed, so it and a shift's close keep their order)."""
        if draft.kind in ("shift_open", "shift_close") or (draft.cashier is not None and draft.shift is not None):
            return draft
        cashier = draft.cashier or (self.cashier.staff_id if self.cashier else None)
        return dataclasses.replace(draft, cashier=cashier, shift=draft.shift or self.shift)

    async def sign_in(self, staff_id: str, pin: str) -> StaffEntry:
        if not self.required:
            raise CashierRequiredError("this till holds no staff list from the ledger yet: nobody can sign in")
        entry = await self.check_pin(staff_id, pin)
        self.cashier = entry
        log.info("cashier_signed_in", staff_id=entry.staff_id, role=entry.role)
        self.hub.publish(CashierChanged(staff_id=entry.staff_id, role=entry.role))
        return entry

    def sign_out(self) -> str | None:
        gone, self.cashier = self.cashier, None
        if gone is not None:
            log.info("cashier_signed_out", staff_id=gone.staff_id)
            self.hub.publish(CashierChanged(staff_id=None))
        return gone.staff_id if gone else None

    async def approve(self, act: str, amount: int, approval: Approval | None) -> str | None:
        """The supervisor approving ``act`` of ``amount`` fen, when the policy asks for one: the cashier signed in
        if they are one, else ``approval`` checked. None where no staff list is held, or none is needed."""
        cashier = self.who()
        if cashier is None:
            return None
        if approval is None:
            assert self.cashier is not None
            if self.cashier.supervisor:
                return cashier
            if not self.roster.policy.needs_approval(act, amount):
                return None
            raise ApprovalRequiredError(f"a {act} needs a supervisor's approval: their staff id and PIN")
        entry = await self.check_pin(approval.staff_id, approval.pin)
        if not entry.supervisor:
            raise ApprovalRequiredError(f"{entry.staff_id} is not a supervisor: a supervisor approves a {act}")
        log.info("approved", act=act, amount=amount, by=entry.staff_id, cashier=cashier)
        return entry.staff_id

    async def check_pin(self, staff_id: str, pin: str) -> StaffEntry:
        """The staff member whose PIN this is; refused with the tries left, or locked."""
        now = self.clock()
        for key in ("*", staff_id):
            if (until := self._locked.get(key, 0.0)) > now:
                who = "this till's PIN entry is" if key == "*" else f"staff id {staff_id} is"
                raise PinLockedError(f"{who} locked after too many wrong PINs; try again later", int(until - now) + 1)
        entry = self.roster.get(staff_id)
        # Unknown ids cost a hash too: how long an answer takes says nothing of who is on the list.
        good = await asyncio.to_thread(verify_pin, entry.pin_hash if entry else _DECOY, pin)
        if entry is not None and good:
            self._wrong.pop(staff_id, None)
            return entry
        return self._wrong_pin(staff_id, now)

    def _wrong_pin(self, staff_id: str, now: float) -> StaffEntry:
        policy = self.roster.policy
        tries = self._wrong[staff_id] = self._wrong.get(staff_id, 0) + 1
        self._recent = [t for t in self._recent if now - t < policy.lockout_seconds] + [now]
        log.warning("pin_refused", staff_id=staff_id, tries=tries)
        if len(self._recent) >= TILL_WIDE * policy.max_tries:
            self._lock("*", now, f"{len(self._recent)} wrong PINs at this till: PIN entry is locked")
        if tries >= policy.max_tries:
            self._wrong.pop(staff_id, None)
            self._lock(staff_id, now, f"{tries} wrong PINs for staff id {staff_id}: it is locked at this till")
            raise PinLockedError(
                f"staff id {staff_id} is locked after {tries} wrong PINs; try again later", policy.lockout_seconds
            )
        left = policy.max_tries - tries
        raise PinRefusedError(f"that staff id and PIN do not match ({left} {'try' if left == 1 else 'tries'} left)")

    def _lock(self, key: str, now: float, message: str) -> None:
        self._locked[key] = now + self.roster.policy.lockout_seconds
        log.error("pin_locked", who=key, seconds=self.roster.policy.lockout_seconds)
        self.hub.publish(Alert(code="pin-locked", message=message))


# A hash no PIN matches (its digest is zeros), checked for an unknown id: as slow as a real one.
_DECOY = "scrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
