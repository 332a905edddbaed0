"""The steps after *pay* for a payment the ledger holds (the member wallet, a gift card): one hold primitive, so
one way to ask about it, give it back and let it go."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from gateway.errors import LedgerError, LedgerRefusedError, LedgerUnreachableError
from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from protocols.micropay import Answer, Reply, Step


async def held_step(client: LedgerClient, step: Step, ref: str) -> Reply:
    """Query, refund or reverse a payment held at the ledger under ``ref``."""
    if step is Step.REFUND:  # the refund record's tender gives it back when it syncs
        return Reply(Answer.SUCCESS)
    if step is Step.QUERY:
        try:
            state = await client.wallet_hold_state(ref)
        except LedgerError:
            return Reply(Answer.UNKNOWN)
        return Reply(Answer.SUCCESS if state in ("held", "spent") else Answer.NOT_FOUND)
    with contextlib.suppress(LedgerError):  # not reachable: the hold lapses by itself
        await client.release_wallet(ref)
    return Reply(Answer.SUCCESS)


async def hold_online(
    link: LedgerLink, hold: Callable[[], Awaitable[None]], detail: dict[str, str], what: str
) -> Reply | None:
    """Ask the ledger to hold a payment while it is online: the reply, or None when the offline rules must
    decide (offline, or found unreachable now). A refusal is final; any other failure leaves the hold unknown."""
    if not link.online:
        return None
    try:
        await hold()
    except LedgerRefusedError as err:
        return Reply(Answer.FAILED, {**detail, "reason": f"{what} cannot pay this: {err}"})
    except LedgerUnreachableError as err:
        link.set_online(False, str(err))  # nothing left: the offline rules decide
        return None
    except LedgerError:
        return Reply(Answer.UNKNOWN, detail)  # the hold may have been made: ask
    return Reply(Answer.SUCCESS, detail)
