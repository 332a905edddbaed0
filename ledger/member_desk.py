"""Routes for a member at a till's counter: what a till may do for a member only while they are there.

A till's credentials say which till asks, not that the member is at its
counter. So these routes take the member's own code from the app (``PM1.``
or ``PW1.``, signed by the ledger, short-lived) and the ledger checks it
itself (:func:`shown`): binding a card to their account, reading their
stored value's history.
"""

from __future__ import annotations

import time

from aiohttp import web

from ledger.http import SERVICE, body_of, me, problem
from ledger.identity import CardOwnedError, CodeUsedError, UnknownMemberError
from ledger.service import LedgerService
from protocols.errors import GatewayError
from protocols.records import ID_PATTERN
from protocols.schema import Fields, Problems
from protocols.tokens import TokenClaims, verify_token

CODE_LEEWAY = 120  # a member's code is taken this long past its expiry (shown, then the card tapped)
CODE_PATTERN = r"P[MW]1\.[A-Za-z0-9_.-]+"


async def shown(request: web.Request, what: str, **more: str) -> tuple[str, TokenClaims, dict[str, str]] | web.Response:
    """Read ``{"member_id", "code", <more: name → pattern>}`` and check the code is the member's own, signed by
    this ledger and fresh: (member id, the code's claims, the other fields), or the 422 to answer."""
    svc = request.app[SERVICE]
    problems = Problems(what)
    f = Fields(await body_of(request), problems)
    member_id = f.text("member_id", pattern=ID_PATTERN)
    code = f.text("code", max_len=512, pattern=CODE_PATTERN)
    fields = {name: f.text(name, pattern=pattern) for name, pattern in more.items()}
    f.done()
    problems.raise_if_any()
    claims = code_of(svc, code, member_id, CODE_LEEWAY)
    if isinstance(claims, str):
        return problem(422, "member-code-refused", f"the member's code {claims}")
    return member_id, claims, fields


def code_of(svc: LedgerService, code: str, member_id: str, leeway: int, prefix: str = "") -> TokenClaims | str:
    """The claims of ``code`` (a ``PM1.``/``PW1.`` code; ``prefix``: only that kind) if this ledger signed it,
    it is fresh (``leeway`` seconds past its expiry at most) and ``member_id``'s; else why not."""
    try:
        keys = {svc.kid: svc.issuer.public_key()}
        claims = verify_token(code, prefix or code[:4], keys, now=int(time.time()), leeway=leeway)
    except GatewayError as err:
        return f"does not hold: {err}"
    return claims if claims.subject == member_id else "is another member's: a member shows their own"


async def bind_card(request: web.Request) -> web.Response:
    """A till binds an unbound member card to the member at its counter: ``{"member_id", "identifier",
    "code"}``, the identifier ``card:<number>`` (its certificate checked at the till, or typed: weak) or
    ``uid:<hex>``, the code the member's own ``PM1.`` or ``PW1.`` code from the app: the member is there.

    The ledger checks the code itself (its signature, fresh, this member's; one code binds one card), so a
    till's credentials alone can never give anyone's identity a card. 201 bound now, 200 already this
    member's; another member's card is ``409 identifier-owned`` naming that member masked (``owner``) and the
    operator's commands that move or merge; a code already used for a binding ``409 code-used``; a code that
    does not hold 422; an unknown member 404."""
    svc = request.app[SERVICE]
    read = await shown(request, "card binding", identifier=r"card:[0-9]{6,19}|uid:[0-9A-Fa-f]{8,20}")
    if isinstance(read, web.Response):
        return read
    member_id, claims, fields = read
    identifier = fields["identifier"]
    try:
        bound = await svc.store.members.bind_card(
            member_id, identifier, me(request).name, f"{claims.kid}:{claims.nonce}"
        )
    except UnknownMemberError as err:
        return problem(404, err.code, str(err))
    except CardOwnedError as err:
        return problem(409, err.code, str(err), owner=err.owner)
    except CodeUsedError as err:
        return problem(409, err.code, str(err))
    answer = {"member_id": member_id, "identifier": identifier, "bound": "now" if bound else "already"}
    return web.json_response(answer, status=201 if bound else 200)


WALLET_HISTORY = 20  # the latest stored-value movements a statement shows


async def wallet_statement(request: web.Request) -> web.Response:
    """The stored value of the member at the counter: ``{"member_id", "code"}`` → their balance, the top-up
    bonuses still to spend (and the day each lapses), and the latest movements, newest first."""
    svc = request.app[SERVICE]
    read = await shown(request, "wallet statement")
    if isinstance(read, web.Response):
        return read
    member_id, _, _ = read
    statement = await svc.store.members.wallet_statement(member_id, WALLET_HISTORY)
    if statement is None:
        return problem(404, "unknown-member", f"no member {member_id}")
    return web.json_response(statement)
