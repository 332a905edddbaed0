"""A terminal's side of the ledger's HTTP API, for simulators and tests: enrol, then sign every request.

What a gateway's ``LedgerClient`` does, without the gateway: the fleet
simulator runs hundreds of these, and the tests use one to act as a till
(or as a hostile one) at the ledger.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols import http_signature
from protocols.enrolment import proof_message
from protocols.tokens import public_key_text


async def enrol(
    http: aiohttp.ClientSession, url: str, terminal_id: str, key: Ed25519PrivateKey, code: str
) -> tuple[int, Any]:
    """Prove ``key`` with an operator's one-time ``code``: (status, the ledger's answer)."""
    public = public_key_text(key.public_key())
    body = {
        "terminal_id": terminal_id,
        "code": code,
        "public_key": public,
        "proof": key.sign(proof_message(terminal_id, code, public)).hex(),
    }
    async with http.post(f"{url}/v1/enrol", json=body) as r:
        return r.status, await r.json(content_type=None)


@dataclass
class SignedSession:
    http: aiohttp.ClientSession
    url: str
    terminal_id: str
    key: Ed25519PrivateKey
    ledger_key: Ed25519PublicKey | None = None  # pinned from the enrolment answer, for what the ledger signs

    def headers(self, method: str, full_url: str, body: bytes) -> dict[str, str]:
        parts = urlsplit(full_url)
        signed = http_signature.sign(
            self.key,
            self.terminal_id,
            method,
            unquote(parts.path),
            unquote(parts.query),
            body,
            int(time.time()),
            secrets.token_urlsafe(16),
        )
        return {**signed, "Content-Type": "application/json"} if body else signed

    async def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """Send a signed request; (status, JSON answer or None)."""
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        full = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        async with self.http.request(method, full, data=data or None, headers=self.headers(method, full, data)) as r:
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, None
