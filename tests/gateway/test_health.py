"""Each named check fails for its own reason, and holds otherwise (gateway/ops/health.py)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.ledger_link.link import LinkState
from gateway.members.directory import MemberDirectory
from gateway.ops.health import ledger_checks
from offline_queue.rows import JournalStats
from protocols.rulebook import Rulebook, Tier, sign_members, sign_rulebook
from protocols.tokens import key_id, public_key_text

LEDGER = Ed25519PrivateKey.generate()


def loaded(rows: list[dict[str, object]]) -> MemberDirectory:
    pub = LEDGER.public_key()
    book = Rulebook(1, "CNY", {"gold": Tier("gold", 9000)}, frozenset(), {key_id(pub): public_key_text(pub)})
    directory = MemberDirectory(pinned_key=public_key_text(pub))
    directory.accept_signed(sign_rulebook(book, LEDGER), sign_members({"version": 1, "members": rows}, LEDGER))
    return directory


def stats(rejected: int = 0, quarantined: int = 0) -> JournalStats:
    return JournalStats(10, 0, {}, None, 10, rejected, None, 4096, [], quarantined)


def failing(link: LinkState, directory: MemberDirectory, journal: JournalStats) -> dict[str, str | None]:
    return {c.name: c.reason for c in ledger_checks(link, directory, journal) if not c.ok}


def test_a_healthy_till_fails_no_check() -> None:
    assert failing(LinkState(online=True), loaded([{"member_id": "M1", "tier": "gold"}]), stats()) == {}


def test_each_trouble_is_its_own_named_check() -> None:
    directory = loaded([{"member_id": "M1", "tier": "gold"}, {"member_id": "M2", "tier": "gold", "points": -1}])
    link = LinkState(online=True, cache_error="disk full", integrity_error="journal behind", refused=None)
    found = failing(link, directory, stats(rejected=2, quarantined=1))
    assert set(found) == {"members", "member-cache", "integrity", "records"}
    assert "1 member row(s)" in str(found["members"])
    assert "rejected 2 and holds 1" in str(found["records"])


def test_a_refused_terminal_and_a_till_never_in_contact() -> None:
    refused = LinkState(online=False, last_error="401", refused="the ledger refused this terminal (401)")
    assert set(failing(refused, loaded([]), stats())) == {"ledger", "terminal-accepted"}
    assert set(failing(LinkState(), MemberDirectory(), stats())) == {"enrolled", "ledger", "rulebook", "members"}
