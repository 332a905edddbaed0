"""HTTP client for the central ledger: rules, member cache, batch sync, holds.

Every request is signed with this terminal's own key (HTTP Message
Signatures, ``protocols/http_signature.py``): there is no shared secret. Over
``https://`` the ledger's certificate is checked (against ``[ledger]
ca_file`` when set). Every failure becomes a :class:`LedgerError`: the caller
keeps its work queued and tries again later. A reply that is not the
ledger's protocol is a :class:`LedgerGarbageError`, never a crash and never
"synced".

Every answer must be signed by a ledger key this till pinned (at enrolment,
or ``[ledger] rulebook_key``) and bound to the request it answers
(``protocols/http_signature.py``). An answer that is not — a proxy's, an
attacker's on the path, a fake "accepted" — is a
:class:`LedgerUnverifiedError`: nothing in it is believed, and the work
stays queued.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import (
    CardBindingRefusedError,
    LedgerAuthError,
    LedgerError,
    LedgerGarbageError,
    LedgerRefusedError,
    LedgerUnreachableError,
    LedgerUnverifiedError,
)
from protocols import http_signature
from protocols.errors import SchemaError
from protocols.records import ID_PATTERN, MAX_FEN, TransactionRecord
from protocols.rulebook import MemberEntry
from protocols.schema import Fields, Problems
from protocols.sync import ChainView, SyncReply
from protocols.tokens import key_id, public_key_from_text
from protocols.untrusted_json import UntrustedJsonError, read_json

MAX_REPLY_BYTES = 64 * 1024 * 1024
_JSON = {"Content-Type": "application/json"}


def _problem(body: bytes) -> dict[str, Any]:
    """A problem document's fields (empty when the body is not one)."""
    try:
        problem = read_json(body, "problem document", max_bytes=4096)
    except UntrustedJsonError:
        return {}
    return problem if isinstance(problem, dict) else {}


def _detail(body: bytes, reason: str) -> str:
    """A problem document's code and detail, for the operator (bounded; never the body whole)."""
    problem = _problem(body)
    if not problem:
        return reason
    return f"{str(problem.get('title', ''))[:64]}: {str(problem.get('detail', ''))[:300]}"


async def _read_bounded(resp: aiohttp.ClientResponse, path: str) -> bytes:
    """The whole body, however it arrives in pieces; past :data:`MAX_REPLY_BYTES` a garbage error."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise LedgerGarbageError(f"ledger reply to {path} is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def pinned_keys(texts: list[str]) -> dict[str, Ed25519PublicKey]:
    """The ledger keys a till believes, by key id, from their base64url texts."""
    keys = [public_key_from_text(text) for text in texts]
    return {key_id(key): key for key in keys}


class LedgerClient:
    def __init__(
        self,
        base_url: str,
        terminal_id: str,
        key: Ed25519PrivateKey | None,
        timeout: float,
        ca_file: str | None = None,
        ledger_keys: dict[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.terminal_id = terminal_id
        self._key = key  # None: requests go unsigned (only enrolment and health need none)
        self.ledger_keys = ledger_keys or {}  # what the ledger's answers must be signed by
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
                if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
                    raise LedgerGarbageError(f"ledger reply to {path} is too large")
                answer = await _read_bounded(resp, path)
                status, reason = resp.status, resp.reason or ""
                answered = {k.lower(): v for k, v in resp.headers.items()}
        except aiohttp.ClientConnectorError as err:
            raise LedgerUnreachableError(f"ledger unreachable at {self.base_url}: {err}") from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise LedgerError(f"ledger unreachable at {self.base_url}: {err or type(err).__name__}") from err
        if "Signature" in headers:
            self._verify(method, path, status, answer, answered, headers["Signature"])
        return self._read(method, path, status, reason, answer)

    def _verify(
        self, method: str, path: str, status: int, answer: bytes, answered: dict[str, str], signature: str
    ) -> None:
        if not self.ledger_keys:
            raise LedgerUnverifiedError(
                "no ledger key is pinned on this till, so no answer can be believed: enrol it (posgw enroll) "
                "or set [ledger] rulebook_key"
            )
        try:
            http_signature.verify_response(self.ledger_keys, status, answer, answered, signature)
        except http_signature.SignatureRefusedError as err:
            raise LedgerUnverifiedError(
                f"the answer to {method} {path} ({status}) is not the ledger's: {err}; nothing in it was believed"
            ) from err

    @staticmethod
    def _read(method: str, path: str, status: int, reason: str, answer: bytes) -> Any:
        if status == 404 and method == "GET" and path.startswith("/v1/identifiers/"):
            return None
        if status == 409 and path == "/v1/cards" and _problem(answer).get("title") == "identifier-owned":
            raise CardBindingRefusedError(str(_problem(answer).get("detail", "refused"))[:300])
        refusable = ("/v1/reservations", "/v1/wallet/", "/v1/cards", "/v1/giftcards/", "/v1/orders/", "/v1/sales/")
        if status in (404, 409, 422) and path.startswith(refusable):
            raise LedgerRefusedError(str(_problem(answer).get("detail", "refused"))[:300])
        if status in (401, 403):
            raise LedgerAuthError(f"the ledger refused this terminal ({status}): {_detail(answer, reason)}")
        if status >= 400:
            text = answer[:200].decode("utf-8", "replace")
            raise LedgerError(f"ledger answered {status} to {method} {path}: {text}")
        try:
            return read_json(answer, f"ledger reply to {path}", max_bytes=MAX_REPLY_BYTES)
        except UntrustedJsonError as err:
            raise LedgerGarbageError(str(err)) from err

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

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str, code: str) -> None:
        """Hold stored value for payment ``ref`` paid with the wallet code ``code``, which the ledger checks
        and lets pay once (refused: :class:`LedgerRefusedError`, with why or what is available)."""
        await self._request(
            "POST",
            "/v1/wallet/holds",
            {"member_id": member_id, "amount": amount, "ref": ref, "terminal_id": terminal_id, "code": code},
        )

    async def hold_gift_card(self, number: str, amount: int, ref: str) -> None:
        """Hold what payment ``ref`` takes from gift card ``number`` (refused: :class:`LedgerRefusedError`, why)."""
        await self._request("POST", "/v1/giftcards/holds", {"number": number, "amount": amount, "ref": ref})

    async def gift_card(self, number: str) -> dict[str, Any]:
        """A gift card as the ledger has it: state, balance, what it may still pay, its last day."""
        data = await self._request("GET", f"/v1/giftcards/{quote(number, safe='')}")
        problems = Problems("ledger gift card")
        f = Fields(data, problems)
        expires = f.optional_text("expires_on", pattern=r"\d{4}-\d{2}-\d{2}")
        card = _row(f, number=r"GC[0-9]{12}", state=r"stock|active|expired", balance=MAX_FEN, available=MAX_FEN)
        try:
            problems.raise_if_any()
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
        return {**card, "expires_on": expires}

    async def wallet_hold_state(self, ref: str) -> str:
        """``held``, ``spent`` or ``none``."""
        data = await self._request("GET", f"/v1/wallet/holds/{quote(ref, safe='')}")
        found = data.get("state") if isinstance(data, dict) else None
        if found not in ("held", "spent", "none"):
            raise LedgerGarbageError("the ledger's wallet hold reply has no state")
        return str(found)

    async def release_wallet(self, ref: str) -> None:
        await self._request("DELETE", f"/v1/wallet/holds/{quote(ref, safe='')}")

    async def alive(self) -> bool:
        """Does the ledger answer at all (``/healthz``, unsigned, 1 s)? Only ever used to retry sooner:
        what it says is believed in nothing else."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            timeout = aiohttp.ClientTimeout(total=1.0)
            async with self._session.get(f"{self.base_url}/healthz", ssl=self._ssl, timeout=timeout) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def hello(self) -> ChainView:
        """A cheap signed round trip, so an idle terminal knows the ledger is there *and accepts it*, and
        what the ledger holds of its chain."""
        data = await self._request("GET", "/v1/hello")
        try:
            return ChainView.from_wire(data)
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err

    async def fetch_rules(self, since: int = 0) -> tuple[object, object]:
        """The signed rulebook and the signed members changed since ``since``; the directory checks both."""
        envelope = await self._request("GET", "/v1/rulebook")
        members = await self._request("GET", f"/v1/members?since={since:d}")
        return envelope, members

    async def fetch_revocations(self, since: int = 0) -> object:
        """The signed list of withdrawn coupon copies (after version ``since``: a delta); the directory checks it."""
        return await self._request("GET", f"/v1/revocations?since={since:d}")

    async def fetch_sale(self, txn_id: str) -> tuple[TransactionRecord, list[TransactionRecord]]:
        """A sale of another till of the mall and every refund of it the ledger applied, for a return here.
        Unknown or not believed there: :class:`LedgerRefusedError`; not a record: :class:`LedgerGarbageError`."""
        data = await self._request("GET", f"/v1/sales/{quote(txn_id, safe='')}")
        try:
            if not isinstance(data, dict) or not isinstance(data.get("refunds"), list):
                raise SchemaError("ledger sale", ["expected {sale, refunds}"])
            sale = TransactionRecord.from_wire(data.get("sale"), "the ledger's sale")
            refunds = [TransactionRecord.from_wire(r, "a refund of it") for r in data["refunds"]]
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
        if sale.txn_id != txn_id or sale.kind != "sale" or any(r.refund_of != txn_id for r in refunds):
            raise LedgerGarbageError(f"the ledger answered for {txn_id} with another sale or refund")
        return sale, refunds

    async def fetch_staff(self) -> object:
        """The signed staff list (``protocols/staff.py``); the roster checks it."""
        return await self._request("GET", "/v1/staff")

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

    async def bind_card(self, member_id: str, identifier: str, code: str) -> bool:
        """Bind an unbound card to a member who showed ``code`` (their member or wallet code): True if bound
        now, False if it already was theirs. Another member's card: :class:`CardBindingRefusedError`; an
        unknown member, or a code the ledger does not take: :class:`LedgerRefusedError`."""
        body = {"member_id": member_id, "identifier": identifier, "code": code}
        data = await self._request("POST", "/v1/cards", body)
        if not isinstance(data, dict) or data.get("bound") not in ("now", "already"):
            raise LedgerGarbageError("the ledger's card binding reply says neither bound now nor already")
        return bool(data["bound"] == "now")

    async def wallet_statement(self, member_id: str, code: str) -> dict[str, Any]:
        """The stored value of a member who showed ``code``: balance, bonuses left, latest movements (checked
        field by field: an answer that is not one is :class:`LedgerGarbageError`)."""
        data = await self._request("POST", "/v1/wallet/statement", {"member_id": member_id, "code": code})
        problems = Problems("ledger wallet statement")
        f = Fields(data, problems)
        statement = {
            "member_id": f.text("member_id", pattern=ID_PATTERN),
            "balance": f.integer("balance", minimum=0, maximum=MAX_FEN),
            "bonus": [_row(bf, remaining=MAX_FEN, expires_on=r"\d{4}-\d{2}-\d{2}") for bf in f.tables("bonus")],
            "history": [
                _row(hf, amount=MAX_FEN, kind=r"[a-z-]{1,32}", at=r"[0-9T:.Z+-]{0,40}", terminal_id=r"-|" + ID_PATTERN)
                for hf in f.tables("history", max_items=100)
            ],
        }
        f.done()
        try:
            problems.raise_if_any()
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
        return statement

    async def fulfil_order(self, order_id: str, member_id: str, code: str) -> dict[str, Any]:
        """Hand over a points mall order to the member who showed ``code``: the order as the ledger now has it
        (checked field by field). Not theirs, closed or lapsed: :class:`LedgerRefusedError` with the reason."""
        data = await self._request("POST", f"/v1/orders/{order_id}/fulfil", {"member_id": member_id, "code": code})
        problems = Problems("ledger order")
        f = Fields(data, problems)
        order = _row(
            f, order_id=ID_PATTERN, member_id=ID_PATTERN, item_id=r"[A-Za-z0-9_.-]{1,64}", quantity=1_000,
            points=MAX_FEN, state=r"placed|fulfilled|cancelled", placed_at=r"[0-9T:.Z+-]{0,40}",
            decided_at=r"[0-9T:.Z+-]{0,40}", decided_by=r".{0,64}", terminal_id=r"|" + ID_PATTERN,
        )  # fmt: skip
        try:
            problems.raise_if_any()
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err
        return order

    async def post_batch(self, terminal_id: str, records: list[bytes]) -> SyncReply:
        """Send records in their JSON wire form, byte for byte as the journal signed them."""
        body = b'{"terminal_id":' + json.dumps(terminal_id).encode() + b',"records":[' + b",".join(records) + b"]}"
        data = await self._request("POST", "/v1/sync/batch", raw=body)
        try:
            return SyncReply.from_wire(data)
        except SchemaError as err:
            raise LedgerGarbageError(str(err)) from err


def _row(f: Fields, **columns: int | str) -> dict[str, int | str]:
    """One row of an answer: an integer column (its bound given) or a text one (its pattern given)."""
    row: dict[str, int | str] = {
        name: f.integer(name, minimum=-rule, maximum=rule) if isinstance(rule, int) else f.text(name, pattern=rule)
        for name, rule in columns.items()
    }
    f.done()
    return row
