"""The hash chain and signatures that make the journal tamper-evident.

Each record is hashed as ``SHA-256(prev_hash ‖ canonical JSON of the record)``
and the hash is signed with the terminal's Ed25519 key. The canonical JSON is
the record's wire form without its chain fields, keys sorted, no spaces,
UTF-8. A record edited, deleted, reordered or inserted breaks either its own
hash, the next record's ``prev_hash``, a signature, or the run of ``seq``
numbers; :func:`verify_chain` names the first record where that happens.
Modelled on fiscal journals (KassenSichV, RKSV, NF525): consecutive numbers,
chained signatures, detectable gaps. The ledger verifies the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = bytes(32)
CHAIN_FIELDS = ("prev_hash", "hash", "signature")


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no spaces, UTF-8: the one byte form that posgw signs."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical(wire: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the wire record without its chain fields."""
    return canonical_json({k: v for k, v in wire.items() if k not in CHAIN_FIELDS})


def with_chain(body: bytes, prev_hash: str, digest: str, signature: str) -> str:
    """A record to keep, from its canonical bytes (:func:`canonical`) and its chain fields: the JSON object
    with those three put back (after the others; JSON's keys have no order), so the bytes that were signed
    are the stored record without them, exactly."""
    if not body.startswith(b"{") or not body.endswith(b"}"):
        raise ValueError("a canonical record is a JSON object")
    chain = json.dumps({"prev_hash": prev_hash, "hash": digest, "signature": signature}, separators=(",", ":"))
    joint = "," if body != b"{}" else ""
    return body[:-1].decode("utf-8") + joint + chain[1:]


def link(prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + body).digest()


def seal(prev_hash: bytes, body: bytes, key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """Hash a record onto the chain and sign the hash; returns ``(hash, signature)``."""
    digest = link(prev_hash, body)
    return digest, key.sign(digest)


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One stored record as the verifier sees it."""

    seq: int
    body: bytes
    prev_hash: bytes
    hash: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    kind: str  # gap | reordered | edited | forged
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.detail}"


def verify_chain(
    links: Iterable[ChainLink], key: Ed25519PublicKey, *, start_seq: int = 1, start_hash: bytes = GENESIS
) -> list[ChainProblem]:
    """Check consecutive ``seq``, the ``prev_hash`` links, each hash and signature.

    ``start_seq`` / ``start_hash`` come from a signed checkpoint when older
    records were compacted away. Every problem is reported; after one, the
    check goes on from the stored values so later damage is named too.
    """
    problems: list[ChainProblem] = []
    expected_seq, expected_prev = start_seq, start_hash
    for item in links:
        if item.seq != expected_seq:
            kind = "gap" if item.seq > expected_seq else "reordered"
            problems.append(ChainProblem(item.seq, kind, f"expected seq {expected_seq} here"))
        if item.prev_hash != expected_prev:
            problems.append(ChainProblem(item.seq, "reordered", "prev_hash does not match the record before it"))
        if link(item.prev_hash, item.body) != item.hash:
            problems.append(ChainProblem(item.seq, "edited", "content does not match its hash"))
        try:
            key.verify(item.signature, item.hash)
        except InvalidSignature:
            problems.append(ChainProblem(item.seq, "forged", "signature is not the terminal's"))
        expected_seq, expected_prev = item.seq + 1, item.hash
    return problems
