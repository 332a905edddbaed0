"""Who did it, re-checked: the cashier and approver a record names, and a shift's Z report worked out again.

The till checks a cashier's PIN and a supervisor's approval as it works; the
ledger cannot see a PIN typed, but it believes nothing it can check for
itself (``docs/protocols/sync.md``):

- **Staff.** A record's ``cashier`` is someone on the ledger's staff list
  (disabled since or not: records outlive jobs); its ``approved_by`` is a
  supervisor.
- **Approvals.** A record made by a signed-in cashier carries a supervisor's
  approval where the policy asks for one (``protocols/staff.py``): every
  void, drawer opened without a sale and price changed by hand (a line naming
  its ``list_price``), and refunds above ``refund_above``.
- **Shifts.** A ``shift_close`` names the ``shift_open`` it ends, in the same
  chain; every record between the two names that shift, and its totals are
  those records' totals to the fen (``protocols/shifts.py``). Only the cash
  counted is the till's word: the over/short shows it.

A record that fails is quarantined with the reason, like any other re-check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger import staff
from ledger.database import Tx
from protocols.records import TransactionRecord
from protocols.shift_totals import shift_totals
from protocols.shifts import MAX_SHIFT_RECORDS
from protocols.staff import Policy

Chain = tuple[str, int]


def act_of(r: TransactionRecord) -> tuple[str, int] | None:
    """The act a record is, as the approval policy names it, and its amount; None: a record no policy covers."""
    if r.kind == "void":
        return ("void", r.total_due)
    if r.kind == "refund":
        return ("refund", r.total_due)
    if r.kind == "no_sale":
        return ("no_sale", 0)
    if r.kind == "sale" and any(x.list_price for x in r.lines):
        return ("price", 0)
    return None


def approval_refusal(r: TransactionRecord, roles: dict[str, str], policy: Policy) -> str | None:
    """Why ``r``'s cashier or approver cannot be believed, or None (the till asks the same before it records)."""
    if r.cashier is not None and r.cashier not in roles:
        return f"it names cashier {r.cashier}, whom the staff list does not know"
    if r.approved_by is not None and roles.get(r.approved_by) != "supervisor":
        return f"it names {r.approved_by} as approving it, who is not a supervisor on the staff list"
    act = act_of(r)
    needs = r.cashier is not None and act is not None and policy.needs_approval(*act) and r.approved_by is None
    if needs and act is not None and roles.get(str(r.cashier)) != "supervisor":
        return f"a {act[0]} by cashier {r.cashier} needs a supervisor's approval, and it names none"
    return None


@dataclass
class StaffBook:
    """What a group of records needs to re-check who did them: the roles of the staff they name, the policy,
    and the records of every shift they close (``saw`` adds those earlier in the same group)."""

    roles: dict[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    chains: dict[Chain, dict[int, TransactionRecord]] = field(default_factory=dict)
    closing: bool = False  # the group closes a shift: its records are kept as they pass

    def _too_long(self, r: TransactionRecord) -> bool:
        return r.shift_report is not None and r.seq - r.shift_report.opened_seq > MAX_SHIFT_RECORDS

    async def load(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        named = sorted({who for r in records for who in (r.cashier, r.approved_by) if who is not None})
        if not named and not any(r.kind == "shift_close" for r in records):
            return
        self.roles = await staff.roles(tx, named)
        self.policy = await staff.policy(tx)
        self.closing = any(r.kind == "shift_close" for r in records)
        for r in records:
            if r.kind != "shift_close" or r.shift_report is None or self._too_long(r):
                continue  # a close spanning more than a shift may: refused below, never read
            held = self.chains.setdefault((r.terminal_id, r.epoch), {})
            for seq, body in await tx.all(
                "SELECT seq, body FROM transactions WHERE terminal_id = $1 AND epoch = $2 AND seq >= $3 AND seq < $4",
                r.terminal_id,
                r.epoch,
                r.shift_report.opened_seq,
                r.seq,
            ):
                held.setdefault(int(seq), TransactionRecord.from_wire(json.loads(body)))

    def saw(self, r: TransactionRecord) -> None:
        """``r`` is in the chain now (applied or quarantined): a later close in the group counts it."""
        if self.closing:
            self.chains.setdefault((r.terminal_id, r.epoch), {})[r.seq] = r

    def refusal(self, r: TransactionRecord) -> str | None:
        if (why := approval_refusal(r, self.roles, self.policy)) is not None:
            return why
        if r.kind == "shift_close":
            return self._close_refusal(r)
        return None

    def _close_refusal(self, r: TransactionRecord) -> str | None:
        report = r.shift_report
        assert report is not None
        assert report.totals is not None  # the record's schema holds both
        if self._too_long(r):
            return f"it closes a shift of more than {MAX_SHIFT_RECORDS:,} records, which no till keeps open"
        held = self.chains.get((r.terminal_id, r.epoch), {})
        opened = held.get(report.opened_seq)
        if opened is None or opened.kind != "shift_open" or opened.shift != r.shift or opened.shift_report is None:
            return f"it closes shift {r.shift}, whose open is not at seq {report.opened_seq} of its chain"
        if opened.shift_report.float_amount != report.float_amount:
            return f"its float ({report.float_amount} fen) is not the one the shift opened with"
        inside = [held.get(seq) for seq in range(report.opened_seq + 1, r.seq)]
        if any(x is None for x in inside):
            return "the ledger does not hold every record between the shift's open and close"
        records = [x for x in inside if x is not None]
        if stray := [x.seq for x in records if x.shift != r.shift]:
            return f"records {stray[:5]} between the shift's open and close do not name the shift"
        if shift_totals(records) != report.totals:
            return "its totals are not those of the shift's records"
        return None
