"""Holds a till places before a sale is made: a member's points, their stored value (two phases: the sale's
record posts the hold, ``ledger/holds.py``), their state and their release.

A terminal may hold for any member it serves but see and release only its own
holds; a stored-value hold takes the member's own ``PW1.`` wallet code, which
the ledger checks itself and lets pay one payment only.
"""

from __future__ import annotations

import re

from aiohttp import web

from ledger import holds
from ledger.auth import AuthError
from ledger.http import SERVICE, body_of, me, own, param, problem
from ledger.member_desk import code_of
from protocols.errors import SchemaError
from protocols.money import format_cny
from protocols.records import ID_PATTERN, MAX_POINTS
from protocols.schema import Fields, Problems

WALLET_CODE_LEEWAY = 30  # seconds a wallet code is still taken past its expiry (the two clocks differ)
MAX_POINTS_HOLD = 10**9
MAX_FEN_HOLD = 10**10
assert MAX_POINTS_HOLD <= MAX_POINTS


async def _hold_request(request: web.Request, what: str, amount: str, maximum: int) -> tuple[str, int, str, str | None]:
    """``member_id``, the amount, the ref and (stored value) the wallet code of a hold request; a
    ``terminal_id`` in it must be the caller's."""
    problems = Problems(what)
    f = Fields(await body_of(request), problems)
    member_id = f.text("member_id", pattern=ID_PATTERN)
    value = f.integer(amount, minimum=1, maximum=maximum)
    wallet = amount == "amount"
    ref = f.text("ref", pattern=ID_PATTERN) if wallet else f.text("txn_id", pattern=r"[0-9a-f-]{36}")
    code = f.text("code", max_len=512, pattern=r"PW1\.[A-Za-z0-9_.-]+") if wallet else None
    terminal_id = f.optional_text("terminal_id", pattern=ID_PATTERN)
    f.done()
    problems.raise_if_any()
    if terminal_id is not None:
        own(request, terminal_id, "hold a balance")
    return member_id, value, ref, code


async def reserve(request: web.Request) -> web.Response:
    """Hold a member's points for a sale about to be made (two-phase: the sale record posts the hold)."""
    svc = request.app[SERVICE]
    member_id, points, txn_id, _ = await _hold_request(request, "reservation", "points", MAX_POINTS_HOLD)
    held = await svc.store.holds.reserve_points(member_id, points, txn_id, me(request).name)
    if held is None:
        available = await svc.store.holds.available(member_id, "points")
        return problem(409, "insufficient-points", f"the member has {available} points available, not {points}")
    svc.metrics.held("points")
    return web.json_response({"reservation": held, "expires_in": holds.TTL["points"]}, status=201)


async def release(request: web.Request) -> web.Response:
    """Give up a points hold of this terminal's (a sale that was not made)."""
    await _void(request, "reservation", "points")
    return web.json_response({"released": True})


async def _void(request: web.Request, name: str, unit: str) -> None:
    svc = request.app[SERVICE]
    ref = param(request, name) if name == "ref" else request.match_info[name]
    if not re.fullmatch(ID_PATTERN, ref):
        raise SchemaError(f"path {name}", [f"{name}: not an id"])
    hold = await svc.store.holds.get(ref)
    if hold is not None:
        if hold.unit != unit:
            raise AuthError(403, "not-your-hold", "no such hold of this terminal's")
        own(request, hold.terminal_id, "release a hold")
        await svc.store.holds.void(ref, me(request).name)


async def wallet_hold(request: web.Request) -> web.Response:
    """Hold stored value for a payment about to be made: ``{"member_id", "amount", "ref", "code"}``.

    ``code`` is the member's ``PW1.`` wallet code itself: the ledger checks it
    (its own signature, not expired, this member's) rather than believe the
    till, and lets it pay one payment only.
    """
    svc = request.app[SERVICE]
    member_id, amount, ref, code = await _hold_request(request, "wallet hold", "amount", MAX_FEN_HOLD)
    assert code is not None
    claims = code_of(svc, code, member_id, WALLET_CODE_LEEWAY, "PW1.")
    if isinstance(claims, str):
        return problem(422, "wallet-code-refused", f"the wallet code {claims}")
    nonce = f"{claims.kid}:{claims.nonce}"
    held, left, earlier = await svc.store.holds.hold_wallet(member_id, amount, ref, me(request).name, nonce)
    if earlier is not None:
        return problem(409, "code-used", f"this wallet code already paid ({earlier}): ask for a fresh code")
    if not held:
        return problem(409, "insufficient-funds", f"the member's wallet has {format_cny(left)} available")
    svc.metrics.held("fen")
    return web.json_response({"ref": ref, "available": left, "expires_in": holds.TTL["fen"]}, status=201)


async def wallet_hold_state(request: web.Request) -> web.Response:
    """``held``, ``spent`` (its sale arrived) or ``none``: of this terminal's holds only."""
    svc = request.app[SERVICE]
    ref = param(request, "ref")
    hold = await svc.store.holds.get(ref)
    if hold is not None and hold.terminal_id != me(request).name:
        return web.json_response({"state": "none"})  # not theirs: as if unknown (nothing to learn)
    return web.json_response({"state": await svc.store.holds.state(ref)})


async def wallet_release(request: web.Request) -> web.Response:
    await _void(request, "ref", "fen")
    return web.json_response({"released": True})
