"""What the cashier is told about a payment or a refund part, and a payment as JSON."""

from __future__ import annotations

from typing import Any

from offline_queue.payments import PaymentIntent
from protocols.micropay import Outcome
from protocols.refund import RefundOutcome

MESSAGES = {
    Outcome.PENDING: "waiting for the wallet (the customer may be entering a password)",
    Outcome.PAID: "paid",
    Outcome.DECLINED: "declined by the wallet: nothing was charged; ask for another way to pay",
    Outcome.UNREACHABLE: "the payment service cannot be reached (no network): nothing was charged; take cash",
    Outcome.REVERSED: "no confirmed payment: it was cancelled and nothing is charged; ask for another way to pay",
    Outcome.ATTENTION: (
        "the payment could not be confirmed or cancelled: money may be held; do not hand over goods, call store IT"
    ),
}


REFUND_MESSAGES = {
    RefundOutcome.PENDING: "asking the wallet to give the money back",
    RefundOutcome.REFUNDED: "given back to the wallet or card that paid",
    RefundOutcome.REFUSED: "the wallet would not take this refund: pay it in cash",
    RefundOutcome.UNKNOWN: (
        "the refund could not be confirmed: it may or may not have gone back; call store IT, do not pay it again"
    ),
}


def message(p: PaymentIntent) -> str:
    """What the cashier is told about a payment; a refusal says why when the provider did."""
    if isinstance(p.state, RefundOutcome):
        return REFUND_MESSAGES[p.state]
    if p.state is Outcome.DECLINED and (reason := p.detail.get("reason")):
        return f"{reason}; nothing was charged"
    return MESSAGES[p.state]


def payment_view(p: PaymentIntent) -> dict[str, Any]:
    return {
        "payment_id": p.payment_id,
        "wallet": p.wallet,
        "code_hint": p.code_hint,
        "amount": p.amount,
        "state": p.state,
        "message": message(p),
        "history": list(p.history),
        "txn_id": p.txn_id,
    }
