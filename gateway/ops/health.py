"""What is wrong with this till, each thing named: the checks behind ``/readyz``, ``posgw status``, the
status page's banners and ``posgw_check_ok``.

A till can sell through almost anything; the point of these checks is that
nothing it sells through is hidden. Only the journal and shutting down are
*critical* (no sale can be recorded); every other check degrades the till
and says so. ``docs/operator-guide.md`` has a line per check: what it means,
what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.ledger_link.link import LinkState
from gateway.members.directory import MemberDirectory
from offline_queue.rows import JournalStats


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    reason: str | None = None
    critical: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "critical": self.critical, "reason": None if self.ok else self.reason}


def ledger_checks(link: LinkState, directory: MemberDirectory, stats: JournalStats | None) -> list[Check]:
    """The till's standing with the ledger, its rules and members, and what the ledger made of its sales."""
    checks = [
        Check(
            "enrolled",
            directory.pinned_key is not None,
            "no ledger key is pinned: enrol this till (posgw enroll) or set [ledger] rulebook_key; it believes "
            "nothing from the ledger until then",
        ),
        Check("ledger", link.online, link.last_error or "the ledger has not answered yet"),
        Check("terminal-accepted", link.refused is None, link.refused),
        Check(
            "rulebook",
            directory.rulebook.version > 0,
            "no rulebook has been loaded from the ledger: full prices, member codes cannot be checked",
        ),
        _members(directory),
        _revocations(link, directory),
        Check("member-cache", link.cache_error is None, link.cache_error),
        Check("integrity", link.integrity_error is None, link.integrity_error),
    ]
    if stats is not None:
        refused = stats.rejected + stats.quarantined
        checks.append(
            Check(
                "records",
                refused == 0,
                f"the ledger rejected {stats.rejected} and holds {stats.quarantined} of this till's sales for an "
                "operator (posgw journal status): they are not in the books",
            )
        )
    return checks


def _members(directory: MemberDirectory) -> Check:
    if not directory.has_members():
        return Check("members", False, "no member list has been loaded: members are found online only")
    skipped = directory.skipped_members
    if skipped:
        return Check("members", False, f"{len(skipped)} member row(s) from the ledger could not be used: {skipped[0]}")
    return Check("members", True)


def _revocations(link: LinkState, directory: MemberDirectory) -> Check:
    if link.revocations_error is not None:
        return Check("revocations", False, link.revocations_error)
    held, due = directory.revocations_version, directory.revocations_due
    if held < due:
        return Check(
            "revocations",
            False,
            f"the coupon revocation list held is v{held}, the ledger's is v{due}: coupons withdrawn since may "
            "still be taken",
        )
    return Check("revocations", True)
