"""The customers a till enrolled come back after a restart from its journal, which is not signed: believed for
no more than the API could make (a member of this till's own making, in the joining tier, owning nothing)."""

from __future__ import annotations

import sqlite3

from gateway.events import EventHub
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.members.joining import Joining
from offline_queue.journal import TransactionJournal
from protocols.rulebook import Rulebook, Tier

PHONE = "phone:" + "A" * 22


class NoLookup:
    async def lookup_identifier(self, identifier: str) -> None:
        return None


async def test_only_what_this_till_could_have_made_comes_back(journal: TransactionJournal) -> None:
    directory = MemberDirectory()
    tiers = {"classic": Tier("classic", growth=0), "supreme": Tier("supreme", growth=9)}
    directory.rulebook = Rulebook(1, "CNY", tiers, frozenset(), {}, phone_salt="c2FsdA")
    conn = sqlite3.connect(journal.path)
    rows = [
        ("J-T-1-5", PHONE, "t1"),  # its own: back, in the joining tier
        ("M0001", "phone:" + "B" * 22, "t2"),  # an existing member's id, written behind the till's back
        ("J-T-OTHER-5", "phone:" + "C" * 22, "t3"),  # another till's
        ("J-T-1-6", "card:8600000001", "t4"),  # not a phone hash
    ]
    conn.executemany("INSERT INTO joined_members (member_id, identifier, txn_id) VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    joining = Joining("T-1", "S-1", "M-1", "CNY", directory, NoLookup(), journal, LedgerLink(EventHub()))
    await joining.restore()
    assert list(directory.joined) == ["J-T-1-5"]
    assert directory.joined["J-T-1-5"].tier == "classic"
    assert (directory.joined["J-T-1-5"].points, directory.joined["J-T-1-5"].wallet) == (0, 0)
