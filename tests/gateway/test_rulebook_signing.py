"""A rulebook is used only when the ledger signed it; a bad one leaves the last good one in force."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.members.directory import MemberDirectory
from protocols.rulebook import MemberEntry, Rulebook, RulebookRefusedError, Tier, sign_members, sign_rulebook
from protocols.tokens import key_id, public_key_text

LEDGER = Ed25519PrivateKey.generate()
MEMBERS = [MemberEntry("M1", "gold")]


def book(version: int, key: Ed25519PrivateKey = LEDGER, rate: int = 9000) -> dict[str, Any]:
    pub = key.public_key()
    rules = Rulebook(version, "CNY", {"gold": Tier("gold", rate)}, frozenset(), {key_id(pub): public_key_text(pub)})
    return sign_rulebook(rules, key)


def test_first_contact_pins_the_key_and_later_rulebooks_must_match() -> None:
    d = MemberDirectory()
    d.accept(book(1), 1, MEMBERS)
    assert d.pinned_key == public_key_text(LEDGER.public_key())
    d.accept(book(2), 2, MEMBERS)
    with pytest.raises(RulebookRefusedError, match="does not verify"):
        d.accept(book(3, key=Ed25519PrivateKey.generate()), 3, MEMBERS)
    assert d.rulebook.version == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda e: e["rulebook"]["tiers"]["gold"].update(default_rate=5000), "does not verify"),
        (lambda e: e.update(signature="00" * 64), "does not verify"),
        (lambda e: e.update(format=2), "format 2 is unknown"),
        (lambda e: e.pop("kid"), "lacks"),
    ],
    ids=["edited", "bad-signature", "unknown-format", "no-kid"],
)
def test_a_damaged_rulebook_is_refused_and_the_last_good_one_stays(damage: Any, message: str) -> None:
    d = MemberDirectory()
    d.accept(book(1), 1, MEMBERS)
    bad = copy.deepcopy(book(2, rate=100))
    damage(bad)
    with pytest.raises(RulebookRefusedError, match=message):
        d.accept(bad, 2, MEMBERS)
    assert (d.rulebook.version, d.rulebook.tiers["gold"].default_rate) == (1, 9000)


def test_no_going_back_to_an_older_rulebook() -> None:
    d = MemberDirectory()
    d.accept(book(5), 1, MEMBERS)
    with pytest.raises(RulebookRefusedError, match="older than v5"):
        d.accept(book(4), 1, MEMBERS)


def test_a_configured_key_is_the_only_one_trusted_from_the_start() -> None:
    d = MemberDirectory(pinned_key=public_key_text(Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(RulebookRefusedError, match="does not verify"):
        d.accept(book(1), 1, MEMBERS)
    assert d.envelope is None


def test_the_cache_is_checked_again_when_loaded(tmp_path: Path) -> None:
    d = MemberDirectory()
    d.accept(book(1), 1, MEMBERS)
    d.save(tmp_path / "cache.json")
    again = MemberDirectory()
    assert again.load(tmp_path / "cache.json")
    assert again.rulebook.version == 1
    text = (tmp_path / "cache.json").read_text().replace('"default_rate": 9000', '"default_rate": 100')
    (tmp_path / "cache.json").write_text(text)
    edited = MemberDirectory()
    assert not edited.load(tmp_path / "cache.json")  # refused, reported; the terminal asks the ledger again
    assert edited.rulebook.version == 0


def test_the_member_snapshot_must_be_signed_by_the_same_key() -> None:
    d = MemberDirectory()
    members = {"version": 4, "full": True, "members": [{"member_id": "M1", "tier": "gold", "points": 10}]}
    d.accept_signed(book(1), sign_members(members, LEDGER))
    assert (d.members_version, d.lookup("M1").points) == (4, 10)
    forged = sign_members({**members, "version": 5}, Ed25519PrivateKey.generate())
    with pytest.raises(RulebookRefusedError, match="member snapshot's signature does not verify"):
        d.accept_signed(book(2), forged)
    edited = sign_members(members, LEDGER)
    edited["members"]["members"][0]["points"] = 10_000
    with pytest.raises(RulebookRefusedError, match="does not verify"):
        d.accept_signed(book(2), edited)
    assert d.lookup("M1").points == 10
