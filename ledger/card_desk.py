"""Gift card routes for tills (``ledger/gift_cards.py``): a card's balance, and holds on what a payment takes."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from ledger import gift_cards, holds
from ledger.http import SERVICE, body_of, me, param, problem
from protocols.business_day import business_day
from protocols.gift_cards import NUMBER_PATTERN, is_number
from protocols.records import ID_PATTERN
from protocols.schema import Fields, Problems


def _number(request: web.Request) -> str | web.Response:
    number = request.match_info["number"]
    if not is_number(number):
        return problem(422, "bad-card-number", "a gift card number is GC and 12 digits, a check digit last")
    return number


async def balance(request: web.Request) -> web.Response:
    """A card's state, balance, what it may still pay (less live holds) and the day it ends."""
    number = _number(request)
    if isinstance(number, web.Response):
        return number
    card = await request.app[SERVICE].store.db.read(lambda tx: gift_cards.show(tx, number))
    if card is None:
        return problem(404, "unknown-card", f"no gift card {number}")
    return web.json_response(card)


async def hold(request: web.Request) -> web.Response:
    """``{"number", "amount", "ref"}``: hold what a payment takes from a card (201); 409 when it cannot pay."""
    svc = request.app[SERVICE]
    problems = Problems("gift card hold")
    f = Fields(await body_of(request), problems)
    number = f.text("number", pattern=NUMBER_PATTERN)
    amount = f.integer("amount", minimum=1, maximum=10**10)
    ref = f.text("ref", pattern=ID_PATTERN)
    f.done()
    problems.raise_if_any()
    if not is_number(number):
        return problem(422, "bad-card-number", "the card number's check digit is wrong")
    till, day = me(request).name, business_day(datetime.now(UTC), svc.rulebook.zone)
    held, why = await svc.store.db.write(lambda tx: gift_cards.hold(tx, number, amount, ref, till, day))
    if not held:
        return problem(409, "card-refused", why)
    return web.json_response({"ref": ref, "held": amount, "expires_in": holds.TTL["fen"]}, status=201)


async def release(request: web.Request) -> web.Response:
    """Give up a card hold of this terminal's (a payment that was not made)."""
    ref = param(request, "ref")
    voided = await request.app[SERVICE].store.db.write(lambda tx: holds.void(tx, ref, me(request).name))
    return web.json_response({"released": voided})
