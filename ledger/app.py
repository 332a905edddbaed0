"""The ledger's HTTP API: enrolment, rules and members for terminals, the member app's codes and bindings, the
operators' views; and the routes of its desks gathered (a terminal's batch sync: ``ledger/sync_desk.py``; its
holds: ``ledger/hold_desk.py``; a member at the counter, returns, staff, orders, gift cards).

Each route belongs to one principal (``ledger/auth.py``): a terminal, which
signs every request with its own key and may touch only its own records
and holds; the member app's backend; or an operator. Errors are
``application/problem+json`` with the reason, never a stack trace.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from ledger import card_desk, hold_desk, order_desk, returns_desk, staff_desk, sync_desk
from ledger.auth import AuthError, Principal
from ledger.database import StorageUnavailableError
from ledger.http import MAX_BATCH_BYTES, PRINCIPAL, SERVICE, body_of, me, one_field, own, param, problem
from ledger.identity import IdentifierOwnedError
from ledger.issuer import issue_coupon
from ledger.member_desk import bind_card, wallet_statement
from ledger.openapi import DOCUMENT as OPENAPI
from ledger.service import LedgerService
from ledger.terminals import EnrolRefusedError
from protocols import http_signature
from protocols.enrolment import CODE_PATTERN
from protocols.errors import GatewayError, SchemaError
from protocols.payer import payer_identifier
from protocols.records import ID_PATTERN
from protocols.revocations import revocations_to_wire, sign_revocations
from protocols.rulebook import sign_members, sign_rulebook
from protocols.schema import Fields, Problems
from protocols.tokens import TokenClaims, b64url_decode, key_id, public_key_text, sign_token

log = structlog.get_logger("posgw.ledger")

QR_TOKEN_LIFETIME = 60
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_CHALLENGE = {
    "terminal": 'Signature realm="posgw-ledger", label="posgw", alg="ed25519"',
    "app": 'Bearer realm="posgw-ledger-app"',
    "operator": 'Bearer realm="posgw-ledger-operator"',
}


async def _authenticate(request: web.Request, needs: str) -> Principal:
    svc = request.app[SERVICE]
    if "|" in needs:  # a terminal (its signature), or the one bearer principal named beside it: one of the two
        bearer = "Authorization" in request.headers
        if bearer and ("Signature" in request.headers or "Signature-Input" in request.headers):
            raise AuthError(401, "unauthorized", "one credential a request: a terminal's signature or a bearer token")
        needs = next(n for n in needs.split("|") if n != "terminal") if bearer else "terminal"
    if needs != "terminal":
        return svc.auth.bearer(request.headers.get("Authorization"), needs)
    body = await request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await svc.auth.terminal(request.method, request.path, request.query_string, body, headers)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, turn every error into a problem document, and sign the answer to a signed request."""
    response = await _answer(request, handler)
    signature = request.headers.get("Signature", "")
    if signature.startswith(f"{http_signature.LABEL}=:") and isinstance(response, web.Response):
        # Bound to the till's request by its signature: the till believes only answers its pinned key signed.
        body = response.body if isinstance(response.body, bytes) else b""
        issuer = request.app[SERVICE].issuer
        response.headers.update(
            http_signature.sign_response(
                issuer, key_id(issuer.public_key()), response.status, body, signature, int(time.time())
            )
        )
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    svc = request.app[SERVICE]
    needs = ROLE.get(request.match_info.handler)
    started = time.perf_counter()
    try:
        if needs is not None:
            request[PRINCIPAL] = await _authenticate(request, needs)
        return await handler(request)
    except AuthError as err:
        svc.metrics.refused(err.code)
        log.warning("request_refused", path=request.path, code=err.code, reason=str(err))
        response = problem(err.status, err.code, str(err))
        if err.status == 401 and needs is not None:
            response.headers["WWW-Authenticate"] = ", ".join(_CHALLENGE[n] for n in needs.split("|"))
        return response
    except SchemaError as err:
        return problem(422, err.code, f"{len(err.problems)} problem(s)", problems=err.problems)
    except StorageUnavailableError as err:  # terminals keep their records and send again
        log.warning("storage_unavailable", path=request.path, error=str(err))
        response = problem(503, err.code, str(err))
        response.headers["Retry-After"] = "2"
        return response
    except (IdentifierOwnedError, EnrolRefusedError) as err:
        return problem(409 if isinstance(err, IdentifierOwnedError) else 403, err.code, str(err))
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
    finally:
        svc.metrics.request(request.method, request.match_info.route.resource, time.perf_counter() - started)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and a rulebook is in force; each check named, with its reason."""
    svc = request.app[SERVICE]
    checks = [
        {
            "name": "rulebook",
            "ok": svc.rulebook.version > 0,
            "reason": None if svc.rulebook.version else "no rulebook loaded",
        }
    ]
    try:
        held = await svc.store.quarantine.count()
        checks.append({"name": "database", "ok": True, "reason": None})
        checks.append(
            {
                "name": "quarantine",
                "ok": True,
                "held": held,
                "reason": f"{held} records wait for an operator" if held else None,
            }
        )
    except StorageUnavailableError as err:
        checks.append({"name": "database", "ok": False, "reason": str(err)})
    ready = all(c["ok"] for c in checks)
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    with contextlib.suppress(StorageUnavailableError):  # the scrape still answers; the rest says enough
        svc.metrics.quarantine.set(await svc.store.quarantine.count())
    if (pool := svc.store.db.pool_stats()) is not None:
        svc.metrics.pool.labels("size").set(pool[0])
        svc.metrics.pool.labels("idle").set(pool[1])
    waited, ran = svc.store.db.lock_stats()
    svc.metrics.locks.labels("waiting").set(waited)
    svc.metrics.locks.labels("all").set(ran)
    body, content_type = svc.metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


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
    revoked = await svc.store.revocations_version()  # read first: the members cannot be older than this
    version, entries = await svc.store.members.since(since)
    snapshot = {
        "version": version,
        "full": since == 0,
        "revocations": revoked,
        "members": [m.to_wire() for m in entries],
    }
    return web.json_response(sign_members(snapshot, svc.issuer))


async def hello(request: web.Request) -> web.Response:
    """A terminal's cheap probe: the ledger accepts its key now, says its clock (for a till's skew) and what it
    holds of the terminal's chain (contiguous to ``high_seq``, the ``gaps`` above, up to ``held_to``)."""
    who = me(request)
    chain = await request.app[SERVICE].store.terminals.chain_view(who.name, who.epoch)
    return web.json_response({"terminal_id": who.name, "epoch": who.epoch, "time": time.time(), **chain.to_wire()})


async def enrol(request: web.Request) -> web.Response:
    """A till proves its journal key with a one-time code (``ledger/terminals.py``) and gets the ledger's keys."""
    svc = request.app[SERVICE]
    problems = Problems("enrolment")
    f = Fields(await body_of(request), problems)
    terminal_id = f.text("terminal_id", pattern=ID_PATTERN)
    code = f.text("code", pattern=CODE_PATTERN)
    public_key = f.text("public_key", pattern=r"[A-Za-z0-9_-]{43}")
    proof = f.text("proof", pattern=r"[0-9a-f]{128}")
    f.done()
    problems.raise_if_any()
    done = await svc.store.terminals.enrol(terminal_id, code, public_key, bytes.fromhex(proof))
    svc.auth.forget(terminal_id)
    log.info("terminal_enrolled", terminal=terminal_id, epoch=done.epoch)
    issuer = svc.issuer.public_key()
    return web.json_response(
        {
            "terminal_id": done.terminal_id,
            "store_id": done.store_id,
            "merchant_id": done.merchant_id,
            "epoch": done.epoch,
            "issuer_keys": {key_id(issuer): public_key_text(issuer)},
        },
        status=201,
    )


async def terminal_records(request: web.Request) -> web.Response:
    """Every record the ledger holds from one terminal, in seq order (reconciliation, audits): its own."""
    terminal_id = param(request, "terminal_id")
    own(request, terminal_id, "read the records")
    return web.json_response({"records": await request.app[SERVICE].store.reports.terminal_records(terminal_id)})


async def identifier(request: web.Request) -> web.Response:
    """Who carries this card (for a terminal whose cache does not know it yet): one at a time, paced
    per terminal so that no till can walk the member list."""
    svc = request.app[SERVICE]
    if (wait := svc.lookups.take(me(request).name, time.monotonic())) > 0:
        response = problem(429, "too-many-lookups", f"identifier lookups are paced; try again in {wait:.1f} s")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    member = await svc.store.members.by_identifier(request.match_info["identifier"])
    if member is None:
        return problem(404, "unknown-identifier", "no member carries this identifier")
    return web.json_response(member.to_wire())


async def member_qr(request: web.Request) -> web.Response:
    """Issue a fresh member QR code (``?kind=wallet``: a wallet pay code) for the member app to show."""
    svc = request.app[SERVICE]
    member_id = param(request, "member_id")
    if await svc.store.members.account(member_id) is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    prefix = "PW1." if request.query.get("kind") == "wallet" else "PM1."
    now = int(time.time())
    claims = TokenClaims(prefix, member_id, now, now + QR_TOKEN_LIFETIME, secrets.token_urlsafe(9), svc.kid)
    return web.json_response({"token": sign_token(prefix, claims, svc.issuer), "expires_at": claims.expires_at})


async def add_identifier(request: web.Request) -> web.Response:
    """A service desk issues a card to a member (``{"identifier": "card:8600000123"}``), or the member app
    binds a wallet account (``payer:wechat:<payer id>``: "pay = member")."""
    ident = await one_field(
        request,
        "identifier",
        "identifier",
        r"(card|uid|phone):[0-9A-Za-z_-]{4,43}|payer:(wechat|alipay):[0-9A-Za-z_-]{1,64}",
    )
    if ident.startswith("payer:"):  # kept, and sent to terminals, only as its salted hash
        _, wallet, payer = ident.split(":", 2)
        ident = payer_identifier(wallet, payer, b64url_decode(request.app[SERVICE].rulebook.phone_salt))
    # Another member's card is refused (identifier-owned, 409): moving one is an operator's command.
    if not await request.app[SERVICE].store.members.add_identifier(param(request, "member_id"), ident):
        return problem(404, "unknown-member", "no such member")
    return web.json_response({"member_id": param(request, "member_id"), "identifier": ident}, status=201)


async def member_coupon(request: web.Request) -> web.Response:
    """Issue a coupon to a member: ``{"coupon_id": "C-20-OFF-200"}`` → a ``CP1.`` token."""
    svc = request.app[SERVICE]
    member_id = param(request, "member_id")
    coupon_id = await one_field(request, "coupon", "coupon_id", r"[A-Za-z0-9_.-]{1,64}")
    if coupon_id not in svc.rulebook.coupons:
        return problem(404, "unknown-coupon", f"no coupon {coupon_id} in the rulebook")
    if await svc.store.members.account(member_id) is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    return web.json_response(issue_coupon(svc.issuer, svc.rulebook, coupon_id, member_id, int(time.time())), status=201)


async def revoke_coupon(request: web.Request) -> web.Response:
    """Withdraw one copy of a coupon (``<coupon id>:<instance>``); terminals hear of it over MQTT."""
    svc = request.app[SERVICE]
    key = request.match_info["coupon"]
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}:[0-9a-f]{16}", key):
        return problem(422, "bad-coupon", "expected <coupon id>:<instance>")
    version = await svc.store.revoke_coupon(key)
    if svc.notices is not None:
        svc.notices.revoked(version)
    return web.json_response({"revoked": key, "version": version})


async def revocations(request: web.Request) -> web.Response:
    """The signed list of withdrawn coupon copies; ``?since=<version>``: only those after it (a delta)."""
    svc = request.app[SERVICE]
    try:
        since = int(request.query.get("since", "0"))
        if not 0 <= since < 2**62:
            raise ValueError(since)
    except ValueError:
        return problem(400, "bad-request", "since must be a whole number, 0 or more")
    version, since, copies = await svc.store.revocations(since)
    return web.json_response(sign_revocations(revocations_to_wire(version, since, copies), svc.issuer))


async def quarantine(request: web.Request) -> web.Response:
    """Records held in quarantine (``?state=held|released|rejected``), for operators."""
    state = request.query.get("state", "held")
    if state not in ("held", "released", "rejected"):
        return problem(400, "bad-request", "state is held, released or rejected")
    return web.json_response({"quarantine": await request.app[SERVICE].store.quarantine.held(state)})


async def conflicts(request: web.Request) -> web.Response:
    """Sales that the ledger accepted with a conflict to settle (a coupon or points spent twice offline)."""
    return web.json_response({"conflicts": await request.app[SERVICE].store.reports.conflicts()})


async def member_account(request: web.Request) -> web.Response:
    account = await request.app[SERVICE].store.members.account(param(request, "member_id"))
    if account is None:
        return problem(404, "unknown-member", "no such member")
    return web.json_response(account)


# Who may call what: terminals fetch rules, sync and hold; the member app issues codes and binds
# identifiers; operators see conflicts and quarantine, and revoke. Unlisted routes are public.
ROLE: dict[Callable[..., object], str] = {
    hello: "terminal",
    rulebook: "terminal",
    members: "terminal",
    revocations: "terminal",
    staff_desk.serve: "terminal",
    returns_desk.sale_for_return: "terminal",
    sync_desk.sync_batch: "terminal",
    identifier: "terminal",
    terminal_records: "terminal|operator",
    hold_desk.reserve: "terminal",
    hold_desk.release: "terminal",
    hold_desk.wallet_hold: "terminal",
    hold_desk.wallet_hold_state: "terminal",
    hold_desk.wallet_release: "terminal",
    member_qr: "app",
    bind_card: "terminal",
    wallet_statement: "terminal",
    add_identifier: "app",
    member_coupon: "app",
    member_account: "app",
    order_desk.catalogue: "app|terminal",
    order_desk.place_order: "app",
    order_desk.member_orders: "app",
    order_desk.cancel_order: "app",
    order_desk.fulfil_order: "terminal",
    card_desk.balance: "terminal",
    card_desk.hold: "terminal",
    card_desk.release: "terminal",
    revoke_coupon: "operator",
    conflicts: "operator",
    quarantine: "operator",
    metrics: "operator",
}


def build_app(svc: LedgerService) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BATCH_BYTES)
    app[SERVICE] = svc
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/v1/enrol", enrol)
    app.router.add_get("/v1/hello", hello)
    app.router.add_get("/v1/rulebook", rulebook)
    app.router.add_get("/v1/members", members)
    app.router.add_get("/v1/revocations", revocations)
    app.router.add_get("/v1/staff", staff_desk.serve)
    app.router.add_get("/v1/sales/{txn_id}", returns_desk.sale_for_return)
    app.router.add_post("/v1/sync/batch", sync_desk.sync_batch)
    app.router.add_get("/v1/identifiers/{identifier}", identifier)
    app.router.add_get("/v1/terminals/{terminal_id}/transactions", terminal_records)
    app.router.add_post("/v1/reservations", hold_desk.reserve)
    app.router.add_delete("/v1/reservations/{reservation}", hold_desk.release)
    app.router.add_post("/v1/wallet/holds", hold_desk.wallet_hold)
    app.router.add_get("/v1/wallet/holds/{ref}", hold_desk.wallet_hold_state)
    app.router.add_delete("/v1/wallet/holds/{ref}", hold_desk.wallet_release)
    app.router.add_post("/v1/members/{member_id}/qr", member_qr)
    app.router.add_get("/v1/members/{member_id}", member_account)
    app.router.add_post("/v1/members/{member_id}/identifiers", add_identifier)
    app.router.add_post("/v1/cards", bind_card)
    app.router.add_get("/v1/giftcards/{number:GC[0-9]{12}}", card_desk.balance)  # not /v1/giftcards/holds
    app.router.add_post("/v1/giftcards/holds", card_desk.hold)
    app.router.add_delete("/v1/giftcards/holds/{ref}", card_desk.release)
    app.router.add_get("/v1/catalogue", order_desk.catalogue)
    app.router.add_post("/v1/members/{member_id}/orders", order_desk.place_order)
    app.router.add_get("/v1/members/{member_id}/orders", order_desk.member_orders)
    app.router.add_post("/v1/members/{member_id}/orders/{order_id}/cancel", order_desk.cancel_order)
    app.router.add_post("/v1/orders/{order_id}/fulfil", order_desk.fulfil_order)
    app.router.add_post("/v1/wallet/statement", wallet_statement)
    app.router.add_post("/v1/members/{member_id}/coupons", member_coupon)
    app.router.add_get("/v1/conflicts", conflicts)
    app.router.add_get("/v1/quarantine", quarantine)
    app.router.add_post("/v1/coupons/{coupon}/revoke", revoke_coupon)
    return app
