"""Withdrawn coupon copies, as the ledger signs them for its tills: a versioned snapshot, then deltas. Sans I/O.

A mall may withdraw a coupon copy (``<coupon id>:<instance>``) at any time;
every till must refuse it from then on. The list only grows, and each
withdrawal takes the next *version*. A till holds the snapshot it was given
and applies deltas (``since`` its version) in order; a delta that does not
start where the till stands, or is not signed by the pinned ledger key, is
refused and the till asks for a full snapshot. On the wire the copies are
grouped by coupon (``{"coupons": {"C-SPRING": ["9f0c…", …]}}``): 100,000
copies are about 1.8 MB of JSON, fetched once over HTTP; a delta is a few
lines. MQTT only announces the version (``posgw/<mall>/coupons/revoked``),
so nothing a broker carries can add or remove a revocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols.rulebook import RulebookRefusedError, open_document, seal_document
from protocols.schema import Fields, Problems

MAX_COPIES = 2_000_000  # in one document: far above any mall's, far below what a till cannot hold
_COUPON_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INSTANCE = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class Revocations:
    """A signed revocation list as read: the version it brings the till to, and the copies in it."""

    version: int
    since: int  # 0: a full snapshot; else the version a delta applies on top of
    copies: frozenset[str]


def revocations_to_wire(version: int, since: int, copies: list[str]) -> dict[str, Any]:
    """The ledger's side: copies grouped by coupon, for :func:`sign_revocations`."""
    grouped: dict[str, list[str]] = {}
    for copy in sorted(copies):
        coupon, _, instance = copy.rpartition(":")
        grouped.setdefault(coupon, []).append(instance)
    return {"version": version, "since": since, "coupons": grouped}


def sign_revocations(wire: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    return seal_document("revocations", wire, key)


def open_revocations(envelope: object, key: Ed25519PublicKey) -> Revocations:
    """Check a signed revocation list against the pinned ledger key (before reading it), then read it."""
    wire = open_document(envelope, "revocations", "revocation list", key)
    problems = Problems("signed revocation list")
    f = Fields(wire, problems)
    version = f.integer("version", minimum=0, maximum=2**62)
    since = f.integer("since", minimum=0, maximum=2**62)
    coupons = f.table("coupons")
    copies: set[str] = set()
    for coupon in coupons.names():
        if not _COUPON_ID.fullmatch(coupon):
            problems.add(f"coupons.{coupon[:64]}", "is not a coupon id")
            continue
        for instance in coupons.texts(coupon):
            if not _INSTANCE.fullmatch(instance):
                problems.add(f"coupons.{coupon}", f"{instance[:32]!r} is not an instance (16 hex digits)")
            copies.add(f"{coupon}:{instance}")
        if len(copies) > MAX_COPIES:
            problems.add("coupons", f"more than {MAX_COPIES} copies")
            break
    f.done()
    if since > version:
        problems.add("since", f"{since} is past the version it brings, {version}")
    problems.raise_if_any()
    return Revocations(version, since, frozenset(copies))


class RevocationsRefusedError(RulebookRefusedError):
    """A revocation list the till cannot apply: not where it stands, or older than what it holds."""

    code = "revocations-refused"


def apply(held: frozenset[str], held_version: int, update: Revocations) -> tuple[frozenset[str], int]:
    """The copies withdrawn after ``update``: a snapshot replaces, a delta from the version held adds.

    A delta from another version cannot be applied (one was missed): the till
    must ask for a full snapshot. Never back to an older version.
    """
    if update.version < held_version:
        raise RevocationsRefusedError(f"revocations v{update.version} are older than v{held_version} held")
    if update.since == 0:
        return update.copies, update.version
    if update.since != held_version:
        raise RevocationsRefusedError(
            f"a revocation delta from v{update.since} cannot apply on v{held_version}: a full list is needed"
        )
    return held | update.copies, update.version
