"""A rulebook and members are used only when the ledger key this till pinned signed them; a bad one leaves the
last good one in force; the cache on disk is the ledger's signed documents, checked again when loaded."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.members.directory import MAX_DELTAS, MemberDirectory, NotEnrolledError
from protocols.rulebook import Rulebook, RulebookRefusedError, Tier, sign_members, sign_rulebook
from protocols.tokens import key_id, public_key_text

LEDGER = Ed25519PrivateKey.generate()
ATTACKER = Ed25519PrivateKey.generate()
PINNED = public_key_text(LEDGER.public_key())


def book(version: int, key: Ed25519PrivateKey = LEDGER, rate: int = 9000) -> dict[str, Any]:
    pub = key.public_key()
    rules = Rulebook(version, "CNY", {"gold": Tier("gold", rate)}, frozenset(), {key_id(pub): public_key_text(pub)})
    return sign_rulebook(rules, key)


def members(
    version: int, rows: list[dict[str, Any]] | None = None, key: Ed25519PrivateKey = LEDGER, *, full: bool = True
) -> dict[str, Any]:
    rows = [{"member_id": "M1", "tier": "gold", "points": 10}] if rows is None else rows
    return sign_members({"version": version, "full": full, "members": rows}, key)


def pinned() -> MemberDirectory:
    return MemberDirectory(pinned_key=PINNED)


def test_a_till_with_no_pinned_key_believes_nothing() -> None:
    d = MemberDirectory()
    with pytest.raises(NotEnrolledError, match="posgw enroll"):
        d.accept_signed(book(1), members(1))
    assert (d.rulebook.version, d.has_members()) == (0, False)


def test_only_the_pinned_key_is_believed() -> None:
    d = pinned()
    d.accept_signed(book(1), members(1))
    d.accept_signed(book(2), members(2))
    with pytest.raises(RulebookRefusedError, match="not the ledger key this till pinned"):
        d.accept_signed(book(3, key=ATTACKER), members(3, key=ATTACKER))
    assert d.rulebook.version == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda e: e["rulebook"]["tiers"]["gold"].update(default_rate=5000), "does not verify"),
        (lambda e: e.update(signature="00" * 64), "does not verify"),
        (lambda e: e.update(format=2), "format 2 is unknown"),
        (lambda e: e.pop("kid"), "lacks"),
        (lambda e: e["rulebook"].update(max_offline_hours=[[[[1]]]]), "does not verify"),  # never parsed unsigned
    ],
    ids=["edited", "bad-signature", "unknown-format", "no-kid", "garbage-before-signature"],
)
def test_a_damaged_rulebook_is_refused_and_the_last_good_one_stays(damage: Any, message: str) -> None:
    d = pinned()
    d.accept_signed(book(1), members(1))
    bad = copy.deepcopy(book(2, rate=100))
    damage(bad)
    with pytest.raises(RulebookRefusedError, match=message):
        d.accept_signed(bad, members(2))
    assert (d.rulebook.version, d.rulebook.tiers["gold"].default_rate) == (1, 9000)


def test_no_going_back_to_an_older_rulebook() -> None:
    d = pinned()
    d.accept_signed(book(5), members(1))
    with pytest.raises(RulebookRefusedError, match="older than v5"):
        d.accept_signed(book(4), members(1))


def test_the_member_snapshot_must_be_signed_by_the_same_key() -> None:
    d = pinned()
    d.accept_signed(book(1), members(4))
    assert (d.members_version, d.lookup("M1").points) == (4, 10)
    with pytest.raises(RulebookRefusedError, match=r"member snapshot is signed by key .*, not the ledger key"):
        d.accept_signed(book(2), members(5, key=ATTACKER))
    edited = members(4)
    edited["members"]["members"][0]["points"] = 10_000
    with pytest.raises(RulebookRefusedError, match="does not verify"):
        d.accept_signed(book(2), edited)
    assert d.lookup("M1").points == 10


def test_one_bad_member_row_is_skipped_and_reported() -> None:
    d = pinned()
    rows: list[dict[str, Any]] = [
        {"member_id": "M1", "tier": "gold"},
        {"member_id": "M2", "tier": "gold", "wallet": -1},
    ]
    d.accept_signed(book(1), members(3, rows))
    assert d.member_count() == 1
    assert d.skipped_members[0].startswith("members[1] (M2)")


def _cache(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    d = pinned()
    d.accept_signed(book(1), members(1))
    d.accept_signed(book(1), members(2, [{"member_id": "M2", "tier": "gold"}], full=False), delta=True)
    path = tmp_path / "cache.json"
    d.save(path)
    return path, json.loads(path.read_text())


def test_the_cache_is_the_signed_snapshot_and_deltas_checked_again_when_loaded(tmp_path: Path) -> None:
    path, _ = _cache(tmp_path)
    again = pinned()
    assert again.load(path)
    assert (again.rulebook.version, again.members_version, again.member_count()) == (1, 2, 2)
    assert MemberDirectory().load(path) is False  # with no pinned key, a cache is not believed either


def _edit_member(body: dict[str, Any]) -> None:
    body["member_snapshot"]["members"]["members"][0].update(tier="supreme", status="active")


def _attacker_cache(body: dict[str, Any]) -> None:
    # What a hostile review did: everything re-signed with the attacker's key, which the file names as pinned.
    body["signed_rulebook"] = book(999, key=ATTACKER)
    body["member_snapshot"] = members(999, [{"member_id": "M9", "tier": "gold", "wallet": 10**8}], key=ATTACKER)
    body["member_deltas"] = []
    body["pinned_key"] = public_key_text(ATTACKER.public_key())


def _forged_delta(body: dict[str, Any]) -> None:
    body["member_deltas"].append(members(3, [{"member_id": "M1", "tier": "gold", "wallet": 10**8}], key=ATTACKER))


def _edited_delta(body: dict[str, Any]) -> None:
    body["member_deltas"][0]["members"]["members"][0]["status"] = "active"
    body["member_deltas"][0]["members"]["members"][0]["tier"] = "supreme"


@pytest.mark.parametrize(
    "tamper",
    [_edit_member, _attacker_cache, _forged_delta, _edited_delta, lambda b: b.pop("format")],
    ids=["member-edited", "key-and-rulebook-replaced", "forged-delta", "edited-delta", "old-format"],
)
def test_a_cache_edited_on_disk_is_refused_and_nothing_of_it_is_used(tmp_path: Path, tamper: Any) -> None:
    path, body = _cache(tmp_path)
    tamper(body)
    path.write_text(json.dumps(body))
    edited = pinned()
    assert not edited.load(path)  # refused, reported; the till asks the ledger again
    assert (edited.rulebook.version, edited.has_members(), edited.pinned_key) == (0, False, PINNED)


def test_too_many_deltas_ask_for_a_full_snapshot() -> None:
    d = pinned()
    assert d.wants_full_snapshot()
    d.accept_signed(book(1), members(1))
    for v in range(2, MAX_DELTAS + 2):
        assert not d.wants_full_snapshot()
        d.accept_signed(book(1), members(v, [{"member_id": f"M{v}", "tier": "gold"}], full=False), delta=True)
    assert d.wants_full_snapshot()
    d.accept_signed(book(1), members(99))
    assert (d.wants_full_snapshot(), d.deltas) == (False, [])


def test_a_cache_that_cannot_be_written_is_an_os_error_and_leaves_no_temp_file(tmp_path: Path) -> None:
    d = pinned()
    d.accept_signed(book(1), members(1))
    path = tmp_path / "cache.json"
    (tmp_path / "cache.tmp").mkdir()  # the OS refuses to open it for writing: IsADirectoryError
    with pytest.raises(OSError, match="Is a directory"):
        d.save(path)
    assert not path.exists()
