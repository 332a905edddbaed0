"""HTTP client for the central ledger: rules, member cache, batch sync, holds.

Every request is signed with this terminal's own key (HTTP Message
Signatures, ``protocols/http_signature.py``): there is no shared secret. Over
``https://`` the ledger's certificate is checked (against ``[ledger]
ca_file`` when set). Every failure becomes a :class:`LedgerError`: the caller
keeps its work queued and tries again later. A reply that is not the
ledger's protocol is a :class:`LedgerGarbageError`, never a crash and never
"synced".
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import (
    LedgerAuthError,
    LedgerError,
    LedgerGarbageError,
    LedgerRefusedError,
    LedgerUnreachableError,
)
from protocols import http_signature
from protocols.errors import SchemaError
from protocols.rulebook import MemberEntry
from protocols.schema import Fields, Problems
from protocols.sync import SyncReply

MAX_REPLY_BYTES = 64 * 1024 * 1024
_JSON = {"Content-Type": "application/json"}


async def _detail(resp: aiohttp.ClientResponse) -> str:
    """A problem document's code and detail, for the operator (bounded; never the body whole)."""
    try:
        problem = json.loads((await resp.content.read(4096)).decode("utf-8", "replace"))
    except ValueError:
        return resp.reason or ""
    if not isinstance(problem, dict):
        return resp.reason or ""
    return f"{str(problem.get('title', ''))[:64]}: {str(problem.get('detail', ''))[:300]}"


class LedgerClient:
    def __init__(
        self,
        base_url: str,
        terminal_id: str,
        key: Ed25519PrivateKey | None,
        timeout: float,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.terminal_id = terminal_id
        self._key = key  # None: requests go unsigned (only enrolment and health need none)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _signed(self, method: str, url: str, data: bytes) -> dict[str, str]:
        headers = dict(_JSON) if data else {}
        if self._key is not None:
            parts = urlsplit(url)
            nonce = secrets.token_urlsafe(16)
            headers |= http_signature.sign(
                self._key,
                self.terminal_id,
                method,
                unquote(parts.path),
                unquote(parts.query),
                data,
                int(time.time()),
                nonce,
            )
        return headers

    async def _request(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base_url}{path}"
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        try:
            headers = self._signed(method, url, data)
            async with self._session.request(method, url, data=data or None, headers=headers, ssl=self._ssl) as resp:
                if resp.status == 404 and method == "GET" and path.startswith("/v1/identifiers/"):
                    return None
                if resp.status == 409 and path.startswith(("/v1/reservations", "/v1/wallet/")):
                    detail = (await resp.json(content_type=None)).get("detail", "refused")
                    raise LedgerRefusedError(str(detail))
                if resp.status in (401, 403):
                    raise LedgerAuthError(f"the ledger refused this terminal ({resp.status}): {await _detail(resp)}")
                if resp.status >= 400:
                    text = (await resp.text(errors="replace"))[:200]
                    raise LedgerError(f"ledger answered {resp.status} to {method} {path}: {text}")
                if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
                    raise LedgerGarbageError(f"ledger reply to {path} is too large")
                try:
                    return await resp.json(content_type=None)
                except ValueError as err:
                    raise LedgerGarbageError(f"ledger reply to {path} is not JSON") from err
        except aiohttp.ClientConnectorError as err:
            raise LedgerUnreachableError(f"ledger unreachable at {self.base_url}: {err}") from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise LedgerError(f"ledger unreachable at {self.base_url}: {err or type(err).__name__}") from err

    async def reserve_points(self, member_id: str, points: int, txn_id: str, terminal_id: str) -> str:
        """Hold ``points`` of the member's balance for a sale about to be journaled (two-phase, first half)."""
        data = await self._request(
            "POST",
            "/v1/reservations",
            {"member_id": member_id, "points": points, "txn_id": txn_id, "terminal_id": terminal_id},
        )
        if not isinstance(data, dict) or not isinstance(data.get("reservation"), str):
            raise LedgerGarbageError("the ledger's reservation reply has no reservation id")
        return str(data["reservation"])

    async def release_points(self, reservation: str) -> None:
        """Let a hold go (the sale was not made); holds also lapse by themselves."""
        await self._request("DELETE", f"/v1/reservations/{quote(reservation, safe='')}")

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str) -> None:
        """Hold stored value for payment ``ref`` (refused: :class:`LedgerRefusedError`, with what is available)."""
        await self._request(
            "POST",
            "/v1/wallet/holds",
            {"member_id": member_id, "amount": amount, "ref": ref, "terminal_id": terminal_id},
        )

    async def wallet_hold_state(self, ref: str) -> str:
        """``held``, ``spent`` or ``none``."""
        data = await self._request("GET", f"/v1/wallet/holds/{quote(ref, safe='')}")
        found = data.get("state") if isinstance(data, dict) else None
        if found not in ("held", "spent", "none"):
            raise LedgerGarbageError("the ledger's wallet hold reply has no state")
        return str(found)

    async def release_wallet(self, ref: str) -> None:
        await self._request("DELETE", f"/v1/wallet/holds/{quote(ref, safe='')}")

    async def ping(self) -> None:
        """A cheap signed round trip, so an idle terminal knows the ledger is there *and accepts it*."""
        await self._request("GET", "/v1/hello")

    async def fetch_rules(self, since: int = 0) -> tuple[object, object]:
        """The signed rulebook and the signed members changed since ``since``; the directory checks both."""
        envelope = await self._request("GET", "/v1/rulebook")
        members = await self._request("GET", f"/v1/members?since={since:d}")
        return envelope, members

    async def lookup_identifier(self, identifier: str) -> MemberEntry | None:
        """Ask the ledger who carries ``identifier`` (a card the cache does not know)."""
        data = await self._request("GET", f"/v1/identifiers/{quote(identifier, safe='')}")
        if data is None:
            return None
        problems = Problems("ledger identifier lookup")
        entry = MemberEntry.read(Fields(data, problems))
        try:
            problems.raise_if_any()
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
        return entry

    async def post_batch(self, terminal_id: str, records: list[bytes]) -> SyncReply:
        """Send records in their JSON wire form, byte for byte as the journal signed them."""
        body = b'{"terminal_id":' + json.dumps(terminal_id).encode() + b',"records":[' + b",".join(records) + b"]}"
        data = await self._request("POST", "/v1/sync/batch", raw=body)
        try:
            return SyncReply.from_wire(data)
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
