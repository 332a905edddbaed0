"""The mall's controls at ingest (the rules: ``protocols/controls.py``): daily caps, holds for review, surges.

Each member and each till has a counter per business day (``control_counters``):
points credited, growth credited, and points asked for (what the records
earn, held or not). A sale's points and growth past a member's or its till's
daily cap, and everything a member earns while not ``active`` (frozen,
black-listed), are *held for review* (``held_earnings``): the record is
accepted (the money changed hands), the held part is not credited, and the
sync answer says so (``held: …``). An operator releases it (credited then,
as the sale's ``earn``) or rejects it (``posgw-ledger controls …``), with an
audit entry. A refund of the sale takes back from what is still held first.
A member or till whose points asked for today pass the rulebook's surge
threshold against their 30 days before is a *surge* (``surges``, once a day
each; ``surge: …`` in the answer, and an alert).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from ledger.database import Tx, marks
from protocols.controls import SURGE_DAYS, Controls
from protocols.records import TransactionRecord

Key = tuple[str, str]  # (subject, business day): subject ``member:<id>`` or ``terminal:<id>``


@dataclass
class HeldEarning:
    txn_id: str  # the sale
    member_id: str
    points: int
    growth: int
    reason: str
    day: str
    row: int | None = None  # its id once written
    reduced: bool = False  # a refund took some of it back in this group


@dataclass
class ControlBook:
    counters: dict[Key, list[int]] = field(default_factory=dict)  # [points, growth, points asked], loaded + group
    loaded: set[Key] = field(default_factory=set)
    before: dict[Key, int] = field(default_factory=dict)  # points asked in the 30 days before the day
    surged: set[Key] = field(default_factory=set)
    surges: list[tuple[str, str, int, int, str]] = field(default_factory=list)  # subject, day, today, before, txn
    held: dict[str, HeldEarning] = field(default_factory=dict)  # sale -> what it has held (loaded + new)

    async def load(self, tx: Tx, keys: set[Key], refunded: list[str]) -> None:
        """The counters of the group's members and tills on its days, their 30 days before, the surges
        already raised, and what the sales its refunds refund still hold."""
        if keys:
            subjects = sorted({s for s, _ in keys})
            days = sorted({d for _, d in keys})
            first = (date.fromisoformat(days[0]) - timedelta(days=SURGE_DAYS)).isoformat()
            starts = {d: (date.fromisoformat(d) - timedelta(days=SURGE_DAYS)).isoformat() for d in days}
            n = len(subjects)
            for subject, day, points, growth, asked in await tx.all(
                "SELECT subject, day, points, growth, asked FROM control_counters "  # noqa: S608
                f"WHERE subject IN ({marks(n)}) AND day >= ${n + 1} AND day <= ${n + 2}",
                *subjects,
                first,
                days[-1],
            ):
                key = (str(subject), str(day))
                if key in keys:
                    self.counters[key] = [int(points), int(growth), int(asked)]
                    self.loaded.add(key)
                for d in days:  # the group's days this row is one of the 30 before
                    if (key[0], d) in keys and starts[d] <= key[1] < d:
                        self.before[(key[0], d)] = self.before.get((key[0], d), 0) + int(asked)
            for subject, day in await tx.all(
                f"SELECT subject, day FROM surges WHERE subject IN ({marks(n)}) AND day >= ${n + 1}",  # noqa: S608
                *subjects,
                days[0],
            ):
                self.surged.add((str(subject), str(day)))
        if refunded:
            for row, txn_id, member_id, points, growth, reason, day in await tx.all(
                "SELECT id, txn_id, member_id, points, growth, reason, day FROM held_earnings "  # noqa: S608
                f"WHERE txn_id IN ({marks(len(refunded))}) AND state = 'held'",
                *refunded,
            ):
                self.held[str(txn_id)] = HeldEarning(
                    str(txn_id), str(member_id), int(points), int(growth), str(reason), str(day), int(row)
                )

    def credit(self, r: TransactionRecord, day: str, rules: Controls | None, status: str) -> tuple[int, int, list[str]]:
        """What of the sale's points and growth is credited now; the rest is held. Its notes for the answer."""
        assert r.member_id is not None
        points, growth = r.points_earned, r.growth_earned
        reasons = []
        if status != "active":
            points, growth = 0, 0
            reasons.append(f"member {r.member_id} is {status}")
        if rules is None:  # no caps, no counting: only a member who is not active is held
            return points, growth, self._hold(r, points, growth, reasons, day)
        member, till = self._count(f"member:{r.member_id}", day), self._count(f"terminal:{r.terminal_id}", day)
        if status == "active":
            if rules.member_daily_points and points > (left := max(0, rules.member_daily_points - member[0])):
                points = left
                reasons.append(f"past the member's {rules.member_daily_points:,} points a day")
            if rules.terminal_daily_points and points > (left := max(0, rules.terminal_daily_points - till[0])):
                points = left
                reasons.append(f"past the till's {rules.terminal_daily_points:,} points a day")
            if rules.member_daily_growth and growth > (left := max(0, rules.member_daily_growth - member[1])):
                growth = left
                reasons.append(f"past the member's {rules.member_daily_growth:,} growth a day")
        member[0] += points
        member[1] += growth
        till[0] += points
        member[2] += r.points_earned
        till[2] += r.points_earned
        notes = self._hold(r, points, growth, reasons, day)
        for subject, counts in ((f"member:{r.member_id}", member), (f"terminal:{r.terminal_id}", till)):
            before = self.before.get((subject, day), 0)
            if (subject, day) not in self.surged and rules.surge(counts[2], before):
                self.surged.add((subject, day))
                self.surges.append((subject, day, counts[2], before, r.txn_id))
                notes.append(
                    f"surge: {subject} earned {counts[2]:,} points on {day}, against "
                    f"{before / SURGE_DAYS:,.0f} a day over the {SURGE_DAYS} days before"
                )
        return points, growth, notes

    def _hold(self, r: TransactionRecord, points: int, growth: int, reasons: list[str], day: str) -> list[str]:
        held_points, held_growth = r.points_earned - points, r.growth_earned - growth
        if not held_points and not held_growth:
            return []
        reason = ", ".join(reasons)
        self.held[r.txn_id] = HeldEarning(r.txn_id, str(r.member_id), held_points, held_growth, reason, day)
        return [f"held: {held_points} points and {held_growth} growth for review ({reason})"]

    def take_back(self, sale_id: str, points: int, growth: int) -> tuple[int, int]:
        """A refund of ``sale_id``: what of its clawback comes from what the sale still holds (not credited)."""
        held = self.held.get(sale_id)
        if held is None:
            return 0, 0
        from_points, from_growth = min(points, held.points), min(growth, held.growth)
        held.points -= from_points
        held.growth -= from_growth
        held.reduced = True
        return from_points, from_growth

    def new_holds(self) -> list[HeldEarning]:
        return [h for h in self.held.values() if h.row is None]

    def _count(self, subject: str, day: str) -> list[int]:
        return self.counters.setdefault((subject, day), [0, 0, 0])

    async def write(self, tx: Tx, now: str) -> None:
        rows = sorted(self.counters.items())
        await tx.many(
            "UPDATE control_counters SET points = $3, growth = $4, asked = $5 WHERE subject = $1 AND day = $2",
            [(s, d, *c) for (s, d), c in rows if (s, d) in self.loaded],
        )
        await tx.many(
            "INSERT INTO control_counters (subject, day, points, growth, asked) VALUES ($1, $2, $3, $4, $5)",
            [(s, d, *c) for (s, d), c in rows if (s, d) not in self.loaded],
        )
        await tx.many(
            "INSERT INTO held_earnings (txn_id, member_id, points, growth, reason, day, state, held_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'held', $7)",
            [(h.txn_id, h.member_id, h.points, h.growth, h.reason, h.day, now) for h in self.new_holds()],
        )
        await tx.many(
            "UPDATE held_earnings SET points = $1, growth = $2 WHERE id = $3",
            [(h.points, h.growth, h.row) for h in self.held.values() if h.row is not None and h.reduced],
        )
        await tx.many(
            "INSERT INTO surges (subject, day, points, earlier, txn_id, raised_at) VALUES ($1, $2, $3, $4, $5, $6)",
            [(*s, now) for s in self.surges],
        )
