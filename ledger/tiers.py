"""Tiers from growth value: a member's tier follows what they earn in a calendar year.

The rulebook gives some tiers a ``growth`` threshold; those tiers form the
ladder, ranked by threshold. During a year a member moves up as soon as that
year's growth reaches a higher rung: at ingest, in the batch's own
transaction, so terminals hear of it with the member's next cache delta. The
yearly review (``posgw-ledger tiers review``, after 31 December) sets every
member on the ladder to the rung that year's growth reached: up, down or the
same. A year is reviewed once. Members in a tier off the ladder (a paid card,
an invitation-only tier) are never moved. Every move is kept in
``tier_changes`` with its reason.

A record's growth counts toward the year of its ``created_at``, so a sale
made offline on 31 December and synced in January still counts for the year
it was made in. A refund takes back the growth its lines had earned
(``growth_clawback``), from the year of the sale it refunds; if that year's
growth had moved the member up and no longer reaches their tier, they go
back down at once (never below the tier they held before that year's
growth moved them): buying a tier and returning the goods does not keep it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.database import Tx
from protocols.errors import GatewayError
from protocols.rulebook import Rulebook


class TierReviewError(GatewayError):
    """A review that must not run: the year has not ended, or there is no ladder."""

    code = "tier-review-refused"


class AlreadyReviewedError(TierReviewError):
    """The year was reviewed before: a second review would move nobody, so none is made."""

    code = "tier-review-done"


@dataclass(frozen=True, slots=True)
class Ladder:
    rungs: tuple[tuple[int, str], ...] = ()  # (growth threshold, tier), lowest first

    @classmethod
    def of(cls, book: Rulebook) -> Ladder:
        return cls(tuple(sorted((t.growth, t.name) for t in book.tiers.values() if t.growth is not None)))

    def rank(self, tier: str) -> int | None:
        """The tier's place on the ladder (0 lowest); None off the ladder."""
        for i, (_, name) in enumerate(self.rungs):
            if name == tier:
                return i
        return None

    def reached(self, growth: int) -> str | None:
        """The highest tier ``growth`` qualifies for; None below the lowest rung."""
        best = None
        for threshold, name in self.rungs:
            if growth >= threshold:
                best = name
        return best

    def highest(self, *tiers: str | None) -> str | None:
        """The highest of ``tiers`` on the ladder; None if none is on it."""
        on = [(rank, t) for t in tiers if t is not None and (rank := self.rank(t)) is not None]
        return max(on)[1] if on else None

    def upgrade(self, tier: str, growth: int) -> str | None:
        """The tier a member in ``tier`` moves up to with ``growth`` this year; None to stay."""
        current, target = self.rank(tier), self.reached(growth)
        if current is None or target is None:
            return None
        return target if (self.rank(target) or 0) > current else None

    def undo(self, tier: str, growth: int, before: str) -> str | None:
        """After a refund took growth back: the tier to drop to, if this year's moves no longer hold.

        ``before`` is what the member held until this year's growth first moved
        them up: a refund never takes them below it. None to stay.
        """
        current, target = self.rank(tier), self.highest(self.reached(growth), before)
        if current is None or target is None:
            return None
        return target if (self.rank(target) or 0) < current else None

    def review(self, tier: str, growth: int, since: int = 0) -> str | None:
        """The tier a member in ``tier`` holds after a year's review; None to stay.

        ``growth`` is the reviewed year's; ``since`` what the member has earned
        in the year after it so far (a review run late never takes back a tier
        the new year's growth has already reached).
        """
        target = self.highest(self.reached(growth), self.reached(since))
        if self.rank(tier) is None or target is None or target == tier:
            return None
        return target


INSERT_CHANGE = (
    "INSERT INTO tier_changes (member_id, from_tier, to_tier, growth, reason, changed_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
ADD_GROWTH = (
    "INSERT INTO member_growth (member_id, year, growth) VALUES ($1, $2, $3) "
    "ON CONFLICT (member_id, year) DO UPDATE SET growth = member_growth.growth + excluded.growth"
)
TAKE_GROWTH = "UPDATE member_growth SET growth = growth - $3 WHERE member_id = $1 AND year = $2"


async def review(tx: Tx, ladder: Ladder, year: int, now: str) -> list[tuple[str, str, str, int]]:
    """Set every member on the ladder to the tier ``year``'s growth reached; return the moves.

    Must run inside the caller's transaction; refuses a year not yet over
    (``now`` is ISO UTC) or already reviewed.
    """
    if f"{year + 1:04d}" > now[:4]:
        raise TierReviewError(f"{year} has not ended: review a year after its 31 December")
    done = await tx.one("SELECT reviewed_at FROM tier_reviews WHERE year = $1", str(year))
    if done is not None:
        raise AlreadyReviewedError(f"{year} was reviewed already, at {done[0]}; a year is reviewed once")
    if not ladder.rungs:
        raise TierReviewError("the rulebook in force has no tier with a growth threshold: nothing to review")
    rows = await tx.all(
        "SELECT m.member_id, m.tier, CAST(COALESCE(g.growth, 0) AS BIGINT), CAST(COALESCE(n.growth, 0) AS BIGINT) "
        "FROM members m LEFT JOIN member_growth g ON g.member_id = m.member_id AND g.year = $1 "
        "LEFT JOIN member_growth n ON n.member_id = m.member_id AND n.year = $2 ORDER BY m.member_id",
        str(year),
        str(year + 1),
    )
    moves = [
        (m, tier, new, int(g))
        for m, tier, g, since in rows
        if (new := ladder.review(tier, int(g), int(since))) is not None
    ]
    await tx.many("UPDATE members SET tier = $1 WHERE member_id = $2", [(new, m) for m, _, new, _ in moves])
    await tx.many(INSERT_CHANGE, [(m, old, new, g, f"review {year}", now) for m, old, new, g in moves])
    await tx.run("INSERT INTO tier_reviews (year, reviewed_at, moved) VALUES ($1, $2, $3)", str(year), now, len(moves))
    return moves


async def changes(tx: Tx, member_id: str) -> list[dict[str, Any]]:
    rows = await tx.all(
        "SELECT from_tier, to_tier, growth, reason, changed_at FROM tier_changes WHERE member_id = $1 ORDER BY id",
        member_id,
    )
    keys = ("from_tier", "to_tier", "growth", "reason", "changed_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
