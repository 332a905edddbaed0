"""Who is asking: the three principals of the ledger and how each proves itself.

- **Terminals** sign every request with their own journal key (HTTP Message
  Signatures, ``protocols/http_signature.py``); the key is the one bound to
  their current chain epoch at enrolment (``ledger/terminals.py``). A
  request is refused if it is unsigned, signed by a retired or unknown key,
  made outside the ±5-minute window, or a replay of a nonce seen within it.
- **The member app's backend** holds a bearer token (``POSGW_LEDGER_APP_TOKEN``).
- **Operators** hold another (``POSGW_LEDGER_OPERATOR_TOKEN``) for the HTTP
  routes of their work (conflicts, revocations, quarantine, metrics); most
  of it is the command line, next to the database.

Tokens are compared in constant time. Each refusal is a problem document
naming the reason, with ``WWW-Authenticate``. Nonces are remembered per
ledger node: replaying a request at another node behind the same load
balancer is harmless, as every request that changes state is idempotent by
its own key (a record's ``txn_id``, a hold's ``ref``).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols import http_signature
from protocols.errors import FinalError
from protocols.http_signature import SignatureRefusedError
from protocols.tokens import public_key_from_text

KEY_CACHE_SECONDS = 5.0  # a retirement reaches every node within this
MAX_NONCES = 200_000


class AuthError(FinalError):
    """A request without the credentials its route needs; ``status`` 401 (who are you) or 403 (not yours)."""

    code = "unauthorized"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # terminal | app | operator
    name: str  # the terminal id; "app"; "operator"
    epoch: int = 0  # a terminal's chain epoch
    key: bytes = b""  # a terminal's public key for that epoch (raw), which seals its records too


KeyLookup = Callable[[str], Awaitable[tuple[int, str] | None]]


class Authenticator:
    def __init__(self, keys: KeyLookup, app_token: str | None, operator_token: str | None) -> None:
        self._lookup = keys
        self.app_token, self.operator_token = app_token, operator_token
        self._keys: dict[str, tuple[float, tuple[int, Ed25519PublicKey] | None]] = {}
        self._nonces: OrderedDict[str, float] = OrderedDict()

    def bearer(self, authorization: str | None, needs: str) -> Principal:
        token = self.app_token if needs == "app" else self.operator_token
        given = (authorization or "").encode()
        if token is None:
            raise AuthError(401, "unauthorized", f"this ledger has no {needs} token configured")
        if not authorization:
            raise AuthError(401, "unauthorized", f"this route needs the {needs} token (Authorization: Bearer …)")
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            raise AuthError(401, "unauthorized", f"wrong {needs} token")
        return Principal(needs, needs)

    async def terminal(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        headers: dict[str, str],
        now: float | None = None,
    ) -> Principal:
        """The terminal that signed this request, or :class:`AuthError`."""
        now = time.time() if now is None else now
        try:
            signed = http_signature.read(headers.get("signature-input"), headers.get("signature"))
        except SignatureRefusedError as err:
            raise AuthError(401, "signature-refused", str(err)) from err
        known = await self._key(signed.keyid, now)
        if known is None:
            raise AuthError(
                401,
                "terminal-unknown",
                f"{signed.keyid} is not an enrolled terminal here (or it was retired): enrol it with a code",
            )
        epoch, key = known
        try:
            http_signature.verify(signed, key, method, path, query, body, headers.get("content-digest"), now)
        except SignatureRefusedError as err:
            raise AuthError(401, "signature-refused", str(err)) from err
        self._remember(f"{signed.keyid}/{signed.nonce}", now)
        return Principal("terminal", signed.keyid, epoch, key.public_bytes_raw())

    async def _key(self, terminal_id: str, now: float) -> tuple[int, Ed25519PublicKey] | None:
        cached = self._keys.get(terminal_id)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        found = await self._lookup(terminal_id)
        key = None if found is None else (found[0], public_key_from_text(found[1]))
        self._keys[terminal_id] = (now, key)
        return key

    def forget(self, terminal_id: str) -> None:
        """Look the terminal's key up afresh (enrolled, replaced or retired on this node)."""
        self._keys.pop(terminal_id, None)

    def _remember(self, nonce: str, now: float) -> None:
        seen = self._nonces.get(nonce)
        if seen is not None and now - seen <= 2 * http_signature.WINDOW_SECONDS:
            raise AuthError(401, "signature-replayed", "this signed request was seen before: a replay")
        self._nonces[nonce] = now
        while len(self._nonces) > MAX_NONCES or (
            self._nonces and now - next(iter(self._nonces.values())) > 2 * http_signature.WINDOW_SECONDS
        ):
            self._nonces.popitem(last=False)
