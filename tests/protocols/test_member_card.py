"""The member-card application, terminal side against the simulator's card side, no I/O."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.member_card import (
    CardDataError,
    CardExpiredError,
    CardForgedError,
    MemberCardRecord,
    read_card,
    verify_reading,
)
from protocols.tokens import key_id
from simulators.vcard import make_applet

ISSUER = Ed25519PrivateKey.generate()
KEYS = {key_id(ISSUER.public_key()): ISSUER.public_key()}
TODAY = datetime.now(UTC).strftime("%Y%m%d")


def tap(mode: str) -> object:
    applet = make_applet(mode, ISSUER, card_number="8600000123")
    return read_card(lambda raw: applet.process(raw) or b"", os.urandom(16))


def test_a_genuine_card_verifies() -> None:
    reading = tap("member")
    verify_reading(reading, KEYS, TODAY)  # type: ignore[arg-type]
    assert reading.identifier == "card:8600000123"  # type: ignore[attr-defined]


def test_uid_only_card_falls_back_to_its_uid() -> None:
    reading = tap("uid-only")
    assert reading.identifier.startswith("uid:04")  # type: ignore[attr-defined]
    assert len(reading.uid) == 7  # type: ignore[attr-defined]


def test_a_clone_without_the_private_key_is_refused() -> None:
    with pytest.raises(CardForgedError, match="failed the challenge"):
        verify_reading(tap("cloned"), KEYS, TODAY)  # type: ignore[arg-type]


def test_an_expired_card_is_refused() -> None:
    with pytest.raises(CardExpiredError, match="expired on"):
        verify_reading(tap("expired"), KEYS, TODAY)  # type: ignore[arg-type]


def test_garbage_and_a_pulled_card_are_unreadable() -> None:
    with pytest.raises(CardDataError, match="malformed"):
        tap("garbage")
    with pytest.raises(CardDataError, match="no status word"):
        tap("pulled")


def test_a_card_from_another_issuer_is_forged() -> None:
    other = Ed25519PrivateKey.generate()
    applet = make_applet("member", other)
    reading = read_card(lambda raw: applet.process(raw) or b"", os.urandom(16))
    with pytest.raises(CardForgedError, match="unknown issuer"):
        verify_reading(reading, KEYS, TODAY)
    wrong_key_same_kid = {key_id(other.public_key()): ISSUER.public_key()}
    with pytest.raises(CardForgedError, match="not the issuer's"):
        verify_reading(reading, wrong_key_same_kid, TODAY)


def test_an_edited_record_breaks_the_certificate() -> None:
    applet = make_applet("member", ISSUER, card_number="8600000123")
    assert applet.record is not None
    applet.record = MemberCardRecord(
        "8600000999",
        applet.record.issuer,
        applet.record.expiry,
        applet.record.card_key,
        applet.record.kid,
        applet.record.signature,
    )
    reading = read_card(lambda raw: applet.process(raw) or b"", os.urandom(16))
    with pytest.raises(CardForgedError, match="not the issuer's"):
        verify_reading(reading, KEYS, TODAY)


def test_a_replayed_answer_fails_a_new_challenge() -> None:
    applet = make_applet("member", ISSUER)
    first = read_card(lambda raw: applet.process(raw) or b"", os.urandom(16))
    replay = type(first)(first.record, os.urandom(16), first.signature)
    with pytest.raises(CardForgedError):
        verify_reading(replay, KEYS, TODAY)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x71\x00", "single 70 template"),
        (b"\x70\x03\xdf\x01\x00", "lacks"),
        (b"\x70\x82\x01", "malformed"),
    ],
)
def test_record_decoding_errors(raw: bytes, message: str) -> None:
    with pytest.raises(CardDataError, match=message):
        MemberCardRecord.decode(raw)
