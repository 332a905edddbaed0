"""Revocations: signed by the ledger, versioned, a snapshot then deltas; nothing else can add or remove one."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.errors import SchemaError
from protocols.revocations import (
    RevocationsRefusedError,
    apply,
    open_revocations,
    revocations_to_wire,
    sign_revocations,
)
from protocols.rulebook import RulebookRefusedError

LEDGER, OTHER = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def copy(coupon: str = "C-SPRING") -> str:
    return f"{coupon}:{secrets.token_hex(8)}"


def signed(version: int, since: int, copies: list[str], key: Ed25519PrivateKey = LEDGER) -> dict[str, object]:
    return sign_revocations(revocations_to_wire(version, since, copies), key)


def test_a_snapshot_then_deltas_in_order() -> None:
    first, second, third = copy(), copy("C-AUTUMN"), copy()
    held, version = apply(frozenset(), 0, open_revocations(signed(2, 0, [first, second]), LEDGER.public_key()))
    assert (held, version) == (frozenset({first, second}), 2)
    held, version = apply(held, version, open_revocations(signed(3, 2, [third]), LEDGER.public_key()))
    assert (held, version) == (frozenset({first, second, third}), 3)


def test_a_delta_that_does_not_start_where_the_till_stands_or_goes_back_is_refused() -> None:
    held = frozenset({copy()})
    with pytest.raises(RevocationsRefusedError, match="full list is needed"):
        apply(held, 3, open_revocations(signed(6, 5, [copy()]), LEDGER.public_key()))
    with pytest.raises(RevocationsRefusedError, match="older"):
        apply(held, 3, open_revocations(signed(2, 0, []), LEDGER.public_key()))


def test_only_the_pinned_key_and_only_what_it_signed() -> None:
    with pytest.raises(RulebookRefusedError, match="not the ledger key this till pinned"):
        open_revocations(signed(1, 0, [copy()], key=OTHER), LEDGER.public_key())
    # "Un-revoking" a copy by editing a signed list: the signature no longer holds.
    envelope = signed(2, 0, [copy(), copy()])
    envelope["revocations"]["coupons"]["C-SPRING"].pop()  # type: ignore[index]
    with pytest.raises(RulebookRefusedError, match="does not verify"):
        open_revocations(envelope, LEDGER.public_key())


def test_a_signed_list_is_still_read_strictly() -> None:
    wire = revocations_to_wire(1, 0, [copy()])
    wire["coupons"]["C-SPRING"].append("not-hex")
    with pytest.raises(SchemaError, match="16 hex digits"):
        open_revocations(sign_revocations(wire, LEDGER), LEDGER.public_key())


def test_a_hundred_thousand_copies_round_trip() -> None:
    copies = [copy(f"C-{i % 50}") for i in range(100_000)]
    envelope = signed(100_000, 0, copies)
    held, version = apply(frozenset(), 0, open_revocations(envelope, LEDGER.public_key()))
    assert (len(held), version) == (100_000, 100_000)
    assert copies[77_777] in held
