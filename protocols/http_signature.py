"""HTTP Message Signatures (RFC 9421) as terminals sign their requests to the ledger, sans I/O.

One profile, nothing negotiable: the label ``posgw``, the algorithm
``ed25519`` (the terminal's journal key, RFC 9421 §3.3.6), and these
covered components, in this order::

    "@method" "@path" "@query" "content-digest"

where ``@path`` and ``@query`` are taken percent-decoded on both sides (HTTP
stacks disagree on which characters they re-encode; a decoded path is the
same everywhere), with the parameters ``created`` (Unix seconds), ``keyid`` (the terminal id),
``nonce`` (16+ random characters) and ``alg``. The body is bound through
``Content-Digest: sha-256=:<base64>:`` (RFC 9530), checked against the bytes
received. ``@authority`` is left out on purpose: a reverse proxy in front of
the ledger may rewrite ``Host``; method, path, query and body are what a
request does. A verifier also bounds ``created`` (a replay window) and
remembers nonces within it.

The ledger answers a signed request with a signed response (RFC 9421 §2.4),
made with its issuer key, the one a till pinned at enrolment::

    "@status" "content-digest" "signature";req;key="posgw"

with ``created`` and ``keyid`` (the key's id). Covering the request's own
signature binds the answer to that one request (its method, path, body and
fresh nonce): an answer cannot be forged, nor replayed for another request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocols.errors import ProtocolError

LABEL = "posgw"
COMPONENTS = ('"@method"', '"@path"', '"@query"', '"content-digest"')
WINDOW_SECONDS = 300  # how far ``created`` may be from the verifier's clock, either way
_PARAMS = re.compile(
    r'\("@method" "@path" "@query" "content-digest"\)'
    r';created=(?P<created>\d{1,12});keyid="(?P<keyid>[A-Za-z0-9_.:-]{1,64})"'
    r';nonce="(?P<nonce>[A-Za-z0-9_-]{16,64})";alg="ed25519"'
)


RESPONSE_COMPONENTS = ('"@status"', '"content-digest"', f'"signature";req;key="{LABEL}"')
_RESPONSE_PARAMS = re.compile(
    r'\("@status" "content-digest" "signature";req;key="posgw"\)'
    r';created=(?P<created>\d{1,12});keyid="(?P<keyid>[A-Za-z0-9_.:-]{1,64})";alg="ed25519"'
)


class SignatureRefusedError(ProtocolError):
    """A request's signature is missing, malformed, stale, replayed, or not the terminal's."""

    code = "signature-refused"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a verifier reads off a request before it knows whose key to check it with."""

    keyid: str
    created: int
    nonce: str
    params: str  # the Signature-Input value's inner list and parameters, as signed
    signature: bytes


def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` for ``body`` (SHA-256)."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def _base(method: str, path: str, query: str, digest: str, params: str) -> bytes:
    lines = [
        f'"@method": {method.upper()}',
        f'"@path": {path}',
        f'"@query": ?{query}',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ]
    return "\n".join(lines).encode()


def sign(
    key: Ed25519PrivateKey, keyid: str, method: str, path: str, query: str, body: bytes, created: int, nonce: str
) -> dict[str, str]:
    """The headers that sign a request: ``Content-Digest``, ``Signature-Input``, ``Signature``."""
    digest = content_digest(body)
    params = f'({" ".join(COMPONENTS)});created={created};keyid="{keyid}";nonce="{nonce}";alg="ed25519"'
    signature = key.sign(_base(method, path, query, digest, params))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


def read(signature_input: str | None, signature: str | None) -> SignedRequest:
    """Parse the two headers (this profile only); :class:`SignatureRefusedError` says what is wrong."""
    if not signature_input or not signature:
        raise SignatureRefusedError("the request is not signed (Signature-Input and Signature)")
    if not signature_input.startswith(f"{LABEL}=") or not signature.startswith(f"{LABEL}=:"):
        raise SignatureRefusedError(f"expected the signature labelled {LABEL}")
    params = signature_input[len(LABEL) + 1 :]
    found = _PARAMS.fullmatch(params)
    if found is None:
        raise SignatureRefusedError(
            'Signature-Input must cover ("@method" "@path" "@query" "content-digest") with created, keyid, nonce, '
            'alg="ed25519"'
        )
    value = signature[len(LABEL) + 1 :]
    if not value.endswith(":") or len(value) > 100:
        raise SignatureRefusedError("the Signature value is not a byte sequence")
    try:
        raw = base64.b64decode(value[1:-1], validate=True)
    except ValueError as err:
        raise SignatureRefusedError("the Signature value is not base64") from err
    if len(raw) != 64:
        raise SignatureRefusedError("an Ed25519 signature is 64 bytes")
    return SignedRequest(found["keyid"], int(found["created"]), found["nonce"], params, raw)


def verify(
    signed: SignedRequest,
    key: Ed25519PublicKey,
    method: str,
    path: str,
    query: str,
    body: bytes,
    digest_header: str | None,
    now: float,
) -> None:
    """Check a parsed signature against the request and the terminal's key at time ``now``."""
    if abs(now - signed.created) > WINDOW_SECONDS:
        raise SignatureRefusedError(
            f"the signature was made {int(now - signed.created)} s from the ledger's clock (window "
            f"±{WINDOW_SECONDS} s): check the terminal's clock"
        )
    digest = content_digest(body)
    if digest_header != digest:
        raise SignatureRefusedError("Content-Digest does not match the body received")
    try:  # libsodium: half OpenSSL's time for one verify here (every request of every till pays it)
        VerifyKey(key.public_bytes_raw()).verify(_base(method, path, query, digest, signed.params), signed.signature)
    except (BadSignatureError, ValueError) as err:
        raise SignatureRefusedError("the signature is not this terminal's key") from err


def _member(signature: str) -> str:
    """The ``posgw`` member of a Signature field (``:base64:``), as a response signature covers it."""
    if not signature.startswith(f"{LABEL}=:"):
        raise SignatureRefusedError(f"the request carries no signature labelled {LABEL}")
    return signature[len(LABEL) + 1 :]


def _response_base(status: int, digest: str, request_signature: str, params: str) -> bytes:
    lines = [
        f'"@status": {status}',
        f'"content-digest": {digest}',
        f'"signature";req;key="{LABEL}": {_member(request_signature)}',
        f'"@signature-params": {params}',
    ]
    return "\n".join(lines).encode()


@functools.lru_cache(maxsize=4)
def _signer(seed: bytes) -> SigningKey:
    """The ledger's key for libsodium, made once (deriving it costs a signature's time)."""
    return SigningKey(seed)


def sign_response(
    key: Ed25519PrivateKey, keyid: str, status: int, body: bytes, request_signature: str, created: int
) -> dict[str, str]:
    """The headers that sign an answer to the request whose ``Signature`` field was ``request_signature``."""
    digest = content_digest(body)
    params = f'({" ".join(RESPONSE_COMPONENTS)});created={created};keyid="{keyid}";alg="ed25519"'
    signed = _signer(key.private_bytes_raw()).sign(_response_base(status, digest, request_signature, params))
    signature = signed.signature
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


def verify_response(
    keys: dict[str, Ed25519PublicKey],
    status: int,
    body: bytes,
    headers: dict[str, str],
    request_signature: str,
) -> str:
    """Check an answer against the keys this till pinned; return the key id that signed it.

    ``headers`` lower-cased. No clock check: the request's fresh nonce, which
    the answer covers, already makes it an answer to this request alone.
    """
    signature_input, signature = headers.get("signature-input"), headers.get("signature")
    if not signature_input or not signature:
        raise SignatureRefusedError("the answer is not signed (Signature-Input and Signature)")
    found = (
        _RESPONSE_PARAMS.fullmatch(signature_input[len(LABEL) + 1 :])
        if signature_input.startswith(f"{LABEL}=")
        else None
    )
    if found is None:
        raise SignatureRefusedError('the answer\'s Signature-Input is not this profile ("@status" "content-digest" …)')
    key = keys.get(found["keyid"])
    if key is None:
        raise SignatureRefusedError(f"the answer is signed by key {found['keyid']}, which this till did not pin")
    digest = content_digest(body)
    if headers.get("content-digest") != digest:
        raise SignatureRefusedError("the answer's Content-Digest does not match its body")
    value = _member(signature)
    try:
        raw = base64.b64decode(value[1:-1], validate=True) if value.endswith(":") and len(value) <= 100 else b""
    except ValueError:
        raw = b""
    params = signature_input[len(LABEL) + 1 :]
    try:
        key.verify(raw, _response_base(status, digest, request_signature, params))
    except InvalidSignature as err:
        raise SignatureRefusedError("the answer's signature does not verify with the pinned ledger key") from err
    return found["keyid"]
