"""The steps after *pay* for a payment the ledger holds (the member wallet, a gift card): one hold primitive, so
one way to ask about it, give it back and let it go."""

from __future__ import annotations

import contextlib

from gateway.errors import LedgerError
from gateway.ledger_link.client import LedgerClient
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
