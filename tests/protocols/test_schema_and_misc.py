import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.backoff import Backoff
from protocols.errors import SchemaError
from protocols.masking import mask_processor, mask_text
from protocols.rulebook import Rulebook, members_from_wire
from protocols.schema import Fields, Problems
from protocols.tokens import key_id, public_key_text


def test_fields_report_types_ranges_and_unknown_keys() -> None:
    problems = Problems("doc")
    f = Fields({"a": "x", "b": 5, "c": True, "d": [1], "typo": 1}, problems)
    assert f.integer("a") == 0
    f.integer("b", maximum=3)
    f.text("c")
    f.texts("d")
    f.text("missing")
    assert f.flag("absent", True) is True
    f.done()
    with pytest.raises(SchemaError) as err:
        problems.raise_if_any()
    assert err.value.problems == [
        "a: expected an integer, got a string",
        "b: must be at most 3, got 5",
        "c: expected a string, got a boolean",
        "d: expected a list of strings",
        "missing: is required (a string)",
        "typo: unknown key",
    ]


def test_file_paths_are_relative_to_the_document() -> None:
    f = Fields({"p": "state", "q": "/abs", "u": "rfc2217://h:1"}, Problems("x"), base_dir="/etc/posgw")
    assert f.file_path("p") == "/etc/posgw/state"
    assert f.file_path("q") == "/abs"
    assert f.file_path("u") == "rfc2217://h:1"


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(base=1, cap=8, jitter=0.5, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.5 <= d <= 1 for d in delays[:1])
    assert all(4 <= d <= 8 for d in delays[4:])
    b.reset()
    assert b.next_delay() <= 1


def test_masking_hides_codes_tokens_and_secrets() -> None:
    text = mask_text("pay 134567890123456789 phone 13812345678 tok PM1.abc.def auth Bearer s3cr3t")
    assert "134567890123456789" not in text
    assert "13812345678" not in text
    assert "abc.def" not in text
    assert "s3cr3t" not in text
    nested = {"password": "p", "n": "13812345678"}
    event = mask_processor(None, "info", {"event": "x", "token": "abc", "nested": nested})
    assert event["token"] == "***"
    assert event["nested"] == {"password": "***", "n": "1381…78"}


def test_rulebook_round_trip_and_bad_keys() -> None:
    pub = Ed25519PrivateKey.generate().public_key()
    wire = {
        "version": 3,
        "currency": "CNY",
        "earn": {"fen_per_point": 10_000},
        "tiers": {"gold": {"default_rate": 9000, "merchant_rates": {"M-1": 8000}}},
        "excluded_categories": ["tobacco"],
        "issuer_keys": {key_id(pub): public_key_text(pub)},
    }
    book = Rulebook.from_wire(wire)
    assert book.tiers["gold"].rate_for("M-1") == 8000
    assert book.tiers["gold"].rate_for("M-2") == 9000
    assert Rulebook.from_wire(book.to_wire()) == book
    wire["issuer_keys"] = {"k": "short"}
    with pytest.raises(SchemaError, match="issuer_keys"):
        Rulebook.from_wire(wire)
    wire["tiers"] = {"gold": {"default_rate": 20_000}}
    with pytest.raises(SchemaError, match="at most 10000"):
        Rulebook.from_wire(wire)


def test_member_snapshot_validation() -> None:
    listing = members_from_wire({"version": 1, "members": [{"member_id": "M1", "tier": "gold"}]})
    assert (listing.version, listing.members[0].status, listing.skipped) == (1, "active", [])
    with pytest.raises(SchemaError, match="version"):
        members_from_wire({"version": -1, "members": []})


def test_one_bad_member_row_is_skipped_and_named_not_fatal_to_the_snapshot() -> None:
    rows = [
        {"member_id": "M1", "tier": "gold"},
        {"member_id": "M2", "tier": "g", "status": "vip"},
        {"member_id": "M3", "tier": "gold", "points": -5},
        "not a row",
        {"member_id": "M4", "tier": "classic"},
    ]
    listing = members_from_wire({"version": 7, "members": rows})
    assert [m.member_id for m in listing.members] == ["M1", "M4"]
    assert len(listing.skipped) == 3
    assert listing.skipped[0].startswith("members[1] (M2): ")
    assert "status" in listing.skipped[0]
    assert listing.skipped[1].startswith("members[2] (M3): ")
    assert listing.skipped[2].startswith("members[3]: ")
