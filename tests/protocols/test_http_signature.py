"""RFC 9421 signatures both ways: a till's request, and the ledger's answer bound to that request."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols import http_signature as hs

TILL, LEDGER, OTHER = (Ed25519PrivateKey.generate() for _ in range(3))
PINNED = {"ledger-kid": LEDGER.public_key()}


def request(body: bytes = b'{"records":[]}', nonce: str = "n" * 16) -> str:
    return hs.sign(TILL, "T-1", "POST", "/v1/sync/batch", "", body, 1_800_000_000, nonce)["Signature"]


def answer(
    status: int, body: bytes, req: str, key: Ed25519PrivateKey = LEDGER, kid: str = "ledger-kid"
) -> dict[str, str]:
    return {k.lower(): v for k, v in hs.sign_response(key, kid, status, body, req, 1_800_000_001).items()}


def test_a_request_signature_verifies_and_refuses_another_body() -> None:
    body = b'{"records":[]}'
    headers = hs.sign(TILL, "T-1", "POST", "/v1/sync/batch", "", body, 1_800_000_000, "n" * 16)
    signed = hs.read(headers["Signature-Input"], headers["Signature"])
    hs.verify(signed, TILL.public_key(), "POST", "/v1/sync/batch", "", body, headers["Content-Digest"], 1_800_000_000)
    with pytest.raises(hs.SignatureRefusedError, match="Content-Digest"):
        hs.verify(signed, TILL.public_key(), "POST", "/v1/sync/batch", "", b"{}", headers["Content-Digest"], 1.8e9)


def test_the_ledgers_answer_verifies_with_the_pinned_key() -> None:
    req = request()
    assert hs.verify_response(PINNED, 200, b'{"ok":1}', answer(200, b'{"ok":1}', req), req) == "ledger-kid"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, req: (201, b'{"ok":1}', h, req), "does not verify"),  # another status
        (lambda h, req: (200, b'{"ok":2}', h, req), "Content-Digest"),  # another body
        (lambda h, req: (200, b'{"ok":1}', h, request(nonce="m" * 16)), "does not verify"),  # another request
        (
            lambda h, req: (200, b'{"ok":2}', {**h, "content-digest": hs.content_digest(b'{"ok":2}')}, req),
            "does not verify",
        ),
        (lambda h, req: (200, b'{"ok":1}', {}, req), "not signed"),
        (lambda h, req: (200, b'{"ok":1}', {**h, "signature-input": "posgw=()"}, req), "profile"),
        (lambda h, req: (200, b'{"ok":1}', {**h, "signature": "posgw=:AAAA:"}, req), "does not verify"),
    ],
    ids=["status", "body", "request", "digest-swapped", "unsigned", "other-profile", "bad-signature"],
)
def test_an_answer_changed_on_the_way_is_refused(change: object, message: str) -> None:
    req = request()
    status, body, headers, asked = change(answer(200, b'{"ok":1}', req), req)  # type: ignore[operator]
    with pytest.raises(hs.SignatureRefusedError, match=message):
        hs.verify_response(PINNED, status, body, headers, asked)


def test_an_answer_signed_by_a_key_the_till_did_not_pin_is_refused() -> None:
    req = request()
    forged = answer(200, b"{}", req, key=OTHER, kid="ledger-kid")
    with pytest.raises(hs.SignatureRefusedError, match="does not verify"):
        hs.verify_response(PINNED, 200, b"{}", forged, req)
    with pytest.raises(hs.SignatureRefusedError, match="did not pin"):
        hs.verify_response(PINNED, 200, b"{}", answer(200, b"{}", req, key=OTHER, kid="other"), req)
