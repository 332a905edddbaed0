"""Errors the gateway raises to the till; each maps to one HTTP problem type."""

from __future__ import annotations

from protocols.errors import FinalError, RetryableError


class NotFoundError(FinalError):
    code = "not-found"


class PromoCodeUnknownError(NotFoundError):
    """A promo code no promotion in force answers to."""

    code = "promo-code-unknown"


class ConflictError(FinalError):
    """The request does not fit the current state (a completed basket, say)."""

    code = "conflict"


class UnknownMemberError(FinalError):
    code = "unknown-member"


class MemberRefusedError(FinalError):
    """The member exists but may not be served (frozen, blacklisted)."""

    code = "member-refused"


class RulesUnavailableError(RetryableError):
    """This terminal has no rulebook yet: it has never reached the ledger."""

    code = "rules-unavailable"


class RiskLimitError(FinalError):
    """Offline, this spending is past a risk limit; the cashier takes another tender or removes points."""

    code = "offline-limit"


class PointsRefusedError(FinalError):
    """Online, the ledger would not hold the points (the balance is short)."""

    code = "points-refused"


class TenderError(FinalError):
    code = "tender-invalid"


class DrainingError(RetryableError):
    """The daemon is shutting down and takes no new work."""

    code = "shutting-down"


class UnauthorizedError(FinalError):
    code = "unauthorized"


class BadRequestError(FinalError):
    code = "bad-request"


class LedgerError(RetryableError):
    """The ledger could not be used just now; work stays queued."""

    code = "ledger-unavailable"


class LedgerUnreachableError(LedgerError):
    """No connection to the ledger could be made: the request never left."""

    code = "ledger-unreachable"


class LedgerGarbageError(LedgerError):
    """The ledger answered something that is not its protocol."""

    code = "ledger-bad-reply"


class LedgerUnverifiedError(LedgerError):
    """An answer not signed by the ledger key this till pinned, or not bound to its request: not believed."""

    code = "ledger-unverified"


class LedgerRefusedError(FinalError):
    """The ledger answered, and said no (for example: not enough points)."""

    code = "ledger-refused"


class AlreadyMemberError(ConflictError):
    """A customer asked to join with a phone number a member already carries: attach them instead."""

    code = "already-a-member"


class CardBindingRefusedError(ConflictError):
    """The ledger would not bind this card: another member's (named masked, with the operator's way out)."""

    code = "card-owned"


class LedgerAuthError(LedgerError):
    """The ledger refused this terminal's credentials (fix the config)."""

    code = "ledger-auth"


class PaymentCodeError(FinalError):
    """The scanned code is not a payment code this till can take."""

    code = "payment-code"


class PaymentUnavailableError(FinalError):
    """No provider is set up for this wallet here; the customer pays another way."""

    code = "payment-unavailable"


class CouponRevokedError(FinalError):
    """The mall withdrew this copy of the coupon."""

    code = "coupon-revoked"


class StartupError(FinalError):
    """The daemon cannot start here; restarting it will not help until a person acts.

    ``exit_code`` is a sysexits code the systemd unit's ``RestartPreventExitStatus`` names.
    """

    code = "cannot-start"
    exit_code = 70  # EX_SOFTWARE


class AddressInUseError(StartupError):
    """The API's address is taken (another posgw, or another program)."""

    code = "address-in-use"
    exit_code = 69  # EX_UNAVAILABLE


class StateDirError(StartupError):
    """The state directory cannot be made or written."""

    code = "state-dir"
    exit_code = 73  # EX_CANTCREAT


class CashierRequiredError(FinalError):
    """The till holds the mall's staff list and nobody is signed in (or the one signed in may not do this)."""

    code = "cashier-required"


class PinRefusedError(FinalError):
    """A staff id and PIN that do not match (how many tries are left is said)."""

    code = "pin-refused"


class PinLockedError(FinalError):
    """Too many wrong PINs: this staff id (or the till's PIN entry) is locked for a while."""

    code = "pin-locked"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApprovalRequiredError(FinalError):
    """The act needs a supervisor's approval (their staff id and PIN), and none, or not a supervisor's, came."""

    code = "approval-required"


class ShiftRequiredError(ConflictError):
    """No shift is open on this till (sales need one), or one is open where none may be."""

    code = "shift-required"
