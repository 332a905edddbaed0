"""The points mall's routes (``ledger/points_mall.py``): the member app orders and cancels; a service desk till
fulfils an order for the member at its counter, who shows their own code (the till's credentials alone take
no one's points)."""

from __future__ import annotations

from aiohttp import web

from ledger import points_mall
from ledger.http import SERVICE, body_of, me, param, problem
from ledger.member_desk import shown
from ledger.points_mall import PointsMallError
from protocols.schema import Fields, Problems


def _refused(err: PointsMallError) -> web.Response:
    return problem(err.status, err.code, str(err))


async def catalogue(request: web.Request) -> web.Response:
    """What the points mall offers now (in stock, not withdrawn)."""
    svc = request.app[SERVICE]
    return web.json_response({"items": await svc.store.db.read(lambda tx: points_mall.catalogue(tx, True))})


async def place_order(request: web.Request) -> web.Response:
    """``{"item_id", "quantity"}`` for the member: their points held, the item out of stock; 201 with the order."""
    svc = request.app[SERVICE]
    member_id = param(request, "member_id")
    problems = Problems("order")
    f = Fields(await body_of(request), problems)
    item_id = f.text("item_id", pattern=r"[A-Za-z0-9_.-]{1,64}")
    quantity = f.integer("quantity", 1, minimum=1, maximum=points_mall.MAX_QUANTITY)
    f.done()
    problems.raise_if_any()
    if await svc.store.members.account(member_id) is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    try:
        order = await svc.store.db.write(lambda tx: points_mall.place(tx, member_id, item_id, quantity))
    except PointsMallError as err:
        return _refused(err)
    return web.json_response(order, status=201)


async def member_orders(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    member_id = param(request, "member_id")
    return web.json_response({"orders": await svc.store.db.read(lambda tx: points_mall.orders_of(tx, member_id))})


async def cancel_order(request: web.Request) -> web.Response:
    """The member cancels an order not yet collected: nothing was taken, the hold is voided."""
    svc = request.app[SERVICE]
    member_id, order_id = param(request, "member_id"), param(request, "order_id")
    try:
        order = await svc.store.db.write(lambda tx: points_mall.cancel(tx, order_id, member_id, "member-app"))
    except PointsMallError as err:
        return _refused(err)
    return web.json_response(order)


async def fulfil_order(request: web.Request) -> web.Response:
    """A service desk hands the order over: ``{"member_id", "code"}`` (the member's own code, checked here);
    the held points are taken. 404 an order that is not this member's; 409 one already closed or lapsed."""
    svc = request.app[SERVICE]
    order_id = param(request, "order_id")
    read = await shown(request, "order fulfilment")
    if isinstance(read, web.Response):
        return read
    member_id, claims, _ = read
    till, zone, code = me(request).name, svc.rulebook.zone, f"{claims.kid}:{claims.nonce}"
    try:
        order = await svc.store.db.write(lambda tx: points_mall.fulfil(tx, order_id, member_id, till, zone, code))
    except PointsMallError as err:
        return _refused(err)
    if svc.notices is not None:  # the member's balance changed: terminals fetch the delta now
        svc.notices.members(await svc.store.members.revision())
    return web.json_response(order)
