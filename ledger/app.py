"""The ledger's HTTP API: rules and members for terminals, batch sync, member QR tokens.

Terminals authenticate with the terminal token; the member app (which asks
for QR tokens on the customer's behalf) with the app token. Errors are
``application/problem+json``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain_check import seal_refusals
from ledger.database import StorageUnavailableError
from ledger.issuer import issue_coupon
from ledger.notices import NoticePublisher
from ledger.openapi import DOCUMENT as OPENAPI
from ledger.store import LedgerStore
from ledger.tiers import Ladder
from ledger.wallet import HOLD_TTL
from protocols.errors import GatewayError, SchemaError
from protocols.money import format_cny
from protocols.payer import payer_identifier
from protocols.records import ID_PATTERN
from protocols.rulebook import Rulebook, sign_members, sign_rulebook
from protocols.schema import Fields, Problems
from protocols.sync import SyncReply, batch_from_wire, seal_items
from protocols.tokens import TokenClaims, b64url_decode, key_id, sign_token

log = structlog.get_logger("posgw.ledger")

QR_TOKEN_LIFETIME = 60
MAX_BATCH_BYTES = 8 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LedgerService:
    store: LedgerStore
    issuer: Ed25519PrivateKey
    rulebook: Rulebook
    terminal_token: str
    app_token: str | None
    notices: NoticePublisher | None = None  # MQTT news for terminals, when a broker is configured
    # Worker processes for signature checks, and how to make them again if one dies (OOM killer, a crash).
    verifier: Executor | None = None
    new_verifier: Callable[[], Executor] | None = None

    def __post_init__(self) -> None:
        self.use_rulebook(self.rulebook)

    def use_rulebook(self, book: Rulebook) -> None:
        """Put ``book`` in force: served to terminals, and its tier ladder applied to growth at ingest."""
        self.rulebook = book
        self.store.ladder = Ladder.of(book)

    @property
    def kid(self) -> str:
        return key_id(self.issuer.public_key())


SERVICE = web.AppKey("ledger", LedgerService)
VERIFY_WORKERS = int(os.environ.get("POSGW_LEDGER_VERIFY_WORKERS", 0)) or os.cpu_count() or 2


def problem(status: int, code: str, detail: str, **extra: object) -> web.Response:
    body = {"type": f"urn:posgw:problem:{code}", "title": code, "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


def _authorised(request: web.Request, token: str | None) -> bool:
    given = request.headers.get("Authorization", "").encode()
    return token is not None and hmac.compare_digest(given, f"Bearer {token}".encode())


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    svc = request.app[SERVICE]
    needs = ROLE.get(request.match_info.handler)
    if needs == "terminal" and not _authorised(request, svc.terminal_token):
        return problem(401, "unauthorized", "missing or wrong terminal token")
    if needs == "app" and not _authorised(request, svc.app_token):
        return problem(401, "unauthorized", "missing or wrong member-app token")
    try:
        return await handler(request)
    except SchemaError as err:
        return problem(422, err.code, f"{len(err.problems)} problem(s)", problems=err.problems)
    except StorageUnavailableError as err:  # terminals keep their records and send again
        log.warning("storage_unavailable", path=request.path, error=str(err))
        response = problem(503, err.code, str(err))
        response.headers["Retry-After"] = "2"
        return response
    except GatewayError as err:
        return problem(400, err.code, str(err))
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "too-large", "batch too large")
    except web.HTTPBadRequest as err:
        return problem(400, "bad-json", err.text or "bad request")
    except web.HTTPException as err:  # the router's 404 and 405, as problem documents
        if err.status < 400:
            raise
        response = problem(err.status, "http", err.reason)
        if "Allow" in err.headers:
            response.headers["Allow"] = err.headers["Allow"]
        return response
    except Exception:  # a bug answers 500 and is logged; the ledger keeps serving
        log.exception("ledger_unhandled", path=request.path)
        return problem(500, "internal", "the ledger hit an unexpected error; it was logged")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def rulebook(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    return web.json_response(sign_rulebook(svc.rulebook, svc.issuer))


async def members(request: web.Request) -> web.Response:
    """The member snapshot; ``?since=<version>`` gives only what changed after that version (a delta)."""
    svc = request.app[SERVICE]
    try:
        since = int(request.query.get("since", "0"))
        if not 0 <= since < 2**62:  # a revision; beyond that SQLite cannot even compare it
            raise ValueError(since)
    except ValueError:
        return problem(400, "bad-request", "since must be a whole number, 0 or more")
    version, entries = await svc.store.members(since)
    snapshot = {"version": version, "full": since == 0, "members": [m.to_wire() for m in entries]}
    return web.json_response(sign_members(snapshot, svc.issuer))


def _param(request: web.Request, name: str) -> str:
    """A path parameter that must be an id (``A-Za-z0-9_.:-``, 1-64): anything else is a 422, not a lookup."""
    value = request.match_info[name]
    if not re.fullmatch(ID_PATTERN, value):
        raise SchemaError(f"path {name}", [f"{name}: {value[:32]!r} is not an id ({ID_PATTERN})"])
    return value


async def _json(request: web.Request) -> object:
    """The request's JSON body; not JSON is a 400 the guard reports."""
    try:
        return json.loads(await request.read())
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"body is not JSON: {err}") from err


async def sync_batch(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    data = await _json(request)
    # Signatures are checked in worker processes while this one reads the records through the schema.
    seals: asyncio.Future[list[str | None]] | None = None
    claimed, items = seal_items(data)
    key_text = await svc.store.terminal_key(claimed) if claimed else None
    if key_text is not None and items is not None:
        seals = _start_seal_checks(svc, b64url_decode(key_text), items)
    try:
        terminal_id, records = batch_from_wire(data)
    except BaseException:
        if seals is not None:
            seals.cancel()
        raise
    if key_text is None:  # the terminal registers its key at its first contact; it will send again
        return problem(
            409, "terminal-key-unknown", f"register {terminal_id}'s journal key first (PUT /v1/terminals/…/key)"
        )
    assert seals is not None  # a batch the schema accepts is shaped as seal_items reads it
    reply = await svc.store.ingest(terminal_id, records, seals)  # the books are written while workers verify
    accepted = sum(r.status == "accepted" for r in reply.results)
    if accepted and svc.notices is not None:  # balances changed: terminals fetch the member delta now
        svc.notices.members(await svc.store.member_revision())
    _alert_conflicts(svc, terminal_id, reply)
    rejected = [f"{r.seq}: {r.reason}" for r in reply.results if r.status == "rejected"]
    log.info("batch_ingested", terminal=terminal_id, records=len(records), accepted=accepted, high_seq=reply.high_seq)
    if rejected or reply.gaps:
        log.warning("batch_problems", terminal=terminal_id, rejected=rejected, gaps=reply.gaps)
    return web.json_response(reply.to_wire())


def _alert_conflicts(svc: LedgerService, terminal_id: str, reply: SyncReply) -> None:
    """Records accepted with something for the mall to settle: in the log and on MQTT, never silent."""
    for r in reply.results:
        if r.status == "accepted" and r.reason and r.reason.startswith("conflict: "):
            log.warning("conflict_recorded", terminal=terminal_id, txn_id=r.txn_id, seq=r.seq, detail=r.reason)
            if svc.notices is not None:
                alert = {"kind": "conflict", "terminal_id": terminal_id, "txn_id": r.txn_id, "detail": r.reason}
                svc.notices.alert(alert)


def _start_seal_checks(
    svc: LedgerService, key: bytes, items: list[tuple[str, str, str, bytes]]
) -> asyncio.Future[list[str | None]]:
    """Every record's seal, checked in worker processes (submitted now) for a batch worth it, inline otherwise."""
    loop = asyncio.get_running_loop()
    if svc.verifier is None or len(items) < 32:
        done: asyncio.Future[list[str | None]] = loop.create_future()
        done.set_result(seal_refusals(key, items))
        return done
    size = -(-len(items) // VERIFY_WORKERS)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    try:
        parts = [loop.run_in_executor(svc.verifier, seal_refusals, key, chunk) for chunk in chunks]
    except BrokenExecutor:  # a worker died: the batches it held failed (terminals resend), new workers now
        if svc.new_verifier is None:
            raise
        log.error("verifier_restarted", reason="a signature-checking worker process died")
        svc.verifier.shutdown(wait=False)
        svc.verifier = svc.new_verifier()
        parts = [loop.run_in_executor(svc.verifier, seal_refusals, key, chunk) for chunk in chunks]

    async def joined() -> list[str | None]:
        return [reason for part in await asyncio.gather(*parts) for reason in part]

    return asyncio.ensure_future(joined())


async def _one_field(request: web.Request, what: str, name: str, pattern: str) -> str:
    """Read ``{"<name>": "..."}``; a bad body raises the problem the guard turns into 400/422."""
    problems = Problems(what)
    value = Fields(await _json(request), problems).text(name, pattern=pattern)
    problems.raise_if_any()
    return value


async def terminal_key(request: web.Request) -> web.Response:
    """A terminal registers the Ed25519 key its journal records are signed with."""
    key = await _one_field(request, "terminal key", "public_key", r"[A-Za-z0-9_-]{43}")
    terminal_id = _param(request, "terminal_id")
    if not await request.app[SERVICE].store.register_terminal_key(terminal_id, key):
        log.error("terminal_key_mismatch", terminal=terminal_id)
        return problem(409, "terminal-key-conflict", "this terminal already has another key; an operator must reset it")
    return web.json_response({"terminal_id": terminal_id, "public_key": key})


async def terminal_records(request: web.Request) -> web.Response:
    """Every record the ledger holds from one terminal, in seq order (reconciliation, audits)."""
    records = await request.app[SERVICE].store.terminal_records(_param(request, "terminal_id"))
    return web.json_response({"records": records})


async def identifier(request: web.Request) -> web.Response:
    """Who carries this card (for a terminal whose cache does not know it yet)."""
    member = await request.app[SERVICE].store.member_by_identifier(request.match_info["identifier"])
    if member is None:
        return problem(404, "unknown-identifier", "no member carries this identifier")
    return web.json_response(member.to_wire())


async def member_qr(request: web.Request) -> web.Response:
    """Issue a fresh member QR code (``?kind=wallet``: a wallet pay code) for the member app to show."""
    svc = request.app[SERVICE]
    member_id = _param(request, "member_id")
    if await svc.store.member_account(member_id) is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    prefix = "PW1." if request.query.get("kind") == "wallet" else "PM1."
    now = int(time.time())
    claims = TokenClaims(prefix, member_id, now, now + QR_TOKEN_LIFETIME, secrets.token_urlsafe(9), svc.kid)
    return web.json_response({"token": sign_token(prefix, claims, svc.issuer), "expires_at": claims.expires_at})


async def add_identifier(request: web.Request) -> web.Response:
    """A service desk issues a card to a member (``{"identifier": "card:8600000123"}``), or the member app
    binds a wallet account (``payer:wechat:<payer id>``: "pay = member")."""
    ident = await _one_field(
        request,
        "identifier",
        "identifier",
        r"(card|uid|phone):[0-9A-Za-z_-]{4,43}|payer:(wechat|alipay):[0-9A-Za-z_-]{1,64}",
    )
    if ident.startswith("payer:"):  # kept, and sent to terminals, only as its salted hash
        _, wallet, payer = ident.split(":", 2)
        ident = payer_identifier(wallet, payer, b64url_decode(request.app[SERVICE].rulebook.phone_salt))
    if not await request.app[SERVICE].store.add_identifier(_param(request, "member_id"), ident):
        return problem(404, "unknown-member", "no such member")
    return web.json_response({"member_id": _param(request, "member_id"), "identifier": ident}, status=201)


async def member_coupon(request: web.Request) -> web.Response:
    """Issue a coupon to a member: ``{"coupon_id": "C-20-OFF-200"}`` → a ``CP1.`` token."""
    svc = request.app[SERVICE]
    member_id = _param(request, "member_id")
    coupon_id = await _one_field(request, "coupon", "coupon_id", r"[A-Za-z0-9_.-]{1,64}")
    if coupon_id not in svc.rulebook.coupons:
        return problem(404, "unknown-coupon", f"no coupon {coupon_id} in the rulebook")
    if await svc.store.member_account(member_id) is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    return web.json_response(issue_coupon(svc.issuer, svc.rulebook, coupon_id, member_id, int(time.time())), status=201)


RESERVATION_TTL = 120.0  # seconds a hold lasts if the sale never arrives


async def reserve(request: web.Request) -> web.Response:
    """Hold a member's points for a sale about to be made (two-phase: the sale record consumes it)."""
    svc = request.app[SERVICE]
    problems = Problems("reservation")
    f = Fields(await _json(request), problems)
    member_id, points = f.text("member_id", max_len=64), f.integer("points", minimum=1, maximum=10**9)
    txn_id, terminal_id = f.text("txn_id", pattern=r"[0-9a-f-]{36}"), f.text("terminal_id", max_len=64)
    f.done()
    problems.raise_if_any()
    held = await svc.store.reserve(member_id, points, txn_id, terminal_id, RESERVATION_TTL)
    if held is None:
        available = await svc.store.available_points(member_id)
        return problem(409, "insufficient-points", f"the member has {available} points available, not {points}")
    return web.json_response({"reservation": held, "expires_in": RESERVATION_TTL}, status=201)


async def release(request: web.Request) -> web.Response:
    await request.app[SERVICE].store.release(_param(request, "reservation"))
    return web.json_response({"released": True})


async def wallet_hold(request: web.Request) -> web.Response:
    """Hold stored value for a payment about to be made: ``{"member_id", "amount", "ref", "terminal_id"}``."""
    svc = request.app[SERVICE]
    problems = Problems("wallet hold")
    f = Fields(await _json(request), problems)
    member_id, amount = f.text("member_id", max_len=64), f.integer("amount", minimum=1, maximum=10**10)
    ref, terminal_id = f.text("ref", pattern=ID_PATTERN), f.text("terminal_id", pattern=ID_PATTERN)
    f.done()
    problems.raise_if_any()
    held, left = await svc.store.hold_wallet(member_id, amount, ref, terminal_id)
    if not held:
        return problem(409, "insufficient-funds", f"the member's wallet has {format_cny(left)} available")
    return web.json_response({"ref": ref, "available": left, "expires_in": HOLD_TTL}, status=201)


async def wallet_hold_state(request: web.Request) -> web.Response:
    """``held``, ``spent`` (its sale arrived) or ``none``."""
    return web.json_response({"state": await request.app[SERVICE].store.wallet_hold_state(_param(request, "ref"))})


async def wallet_release(request: web.Request) -> web.Response:
    await request.app[SERVICE].store.release_wallet(_param(request, "ref"))
    return web.json_response({"released": True})


async def revoke_coupon(request: web.Request) -> web.Response:
    """Withdraw one copy of a coupon (``<coupon id>:<instance>``); terminals hear of it over MQTT."""
    svc = request.app[SERVICE]
    key = request.match_info["coupon"]
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}:[0-9a-f]{16}", key):
        return problem(422, "bad-coupon", "expected <coupon id>:<instance>")
    revoked = await svc.store.revoke_coupon(key)
    if svc.notices is not None:
        svc.notices.revoked(revoked)
    return web.json_response({"revoked": key, "count": len(revoked)})


async def conflicts(request: web.Request) -> web.Response:
    """Sales that the ledger accepted with a conflict to settle (a coupon or points spent twice offline)."""
    return web.json_response({"conflicts": await request.app[SERVICE].store.conflicts()})


async def member_account(request: web.Request) -> web.Response:
    account = await request.app[SERVICE].store.member_account(_param(request, "member_id"))
    if account is None:
        return problem(404, "unknown-member", "no such member")
    return web.json_response(account)


# Who may call what: terminals fetch rules and sync; the member app gets QR codes.
ROLE: dict[Callable[..., object], str] = {
    rulebook: "terminal",
    members: "terminal",
    sync_batch: "terminal",
    identifier: "terminal",
    terminal_key: "terminal",
    terminal_records: "terminal",
    reserve: "terminal",
    release: "terminal",
    wallet_hold: "terminal",
    wallet_hold_state: "terminal",
    wallet_release: "terminal",
    member_qr: "app",
    add_identifier: "app",
    member_coupon: "app",
    revoke_coupon: "app",
    conflicts: "app",
    member_account: "app",
}


def build_app(svc: LedgerService) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BATCH_BYTES)
    app[SERVICE] = svc
    app.router.add_get("/healthz", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/rulebook", rulebook)
    app.router.add_get("/v1/members", members)
    app.router.add_post("/v1/sync/batch", sync_batch)
    app.router.add_get("/v1/identifiers/{identifier}", identifier)
    app.router.add_put("/v1/terminals/{terminal_id}/key", terminal_key)
    app.router.add_get("/v1/terminals/{terminal_id}/transactions", terminal_records)
    app.router.add_post("/v1/reservations", reserve)
    app.router.add_delete("/v1/reservations/{reservation}", release)
    app.router.add_post("/v1/wallet/holds", wallet_hold)
    app.router.add_get("/v1/wallet/holds/{ref}", wallet_hold_state)
    app.router.add_delete("/v1/wallet/holds/{ref}", wallet_release)
    app.router.add_post("/v1/members/{member_id}/qr", member_qr)
    app.router.add_get("/v1/members/{member_id}", member_account)
    app.router.add_post("/v1/members/{member_id}/identifiers", add_identifier)
    app.router.add_post("/v1/members/{member_id}/coupons", member_coupon)
    app.router.add_get("/v1/conflicts", conflicts)
    app.router.add_post("/v1/coupons/{coupon}/revoke", revoke_coupon)
    return app
