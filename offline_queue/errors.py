"""Journal errors. Each message is written for the cashier or the operator."""

from __future__ import annotations

from protocols.errors import FinalError, RetryableError


class JournalError(RetryableError):
    """The journal could not commit; the sale was NOT recorded and must not be paid."""

    code = "journal-unavailable"


class JournalFullError(JournalError):
    code = "journal-disk-full"


class JournalKeyError(FinalError):
    """A key the journal needs is missing, unreadable or wrong; the daemon will not start."""

    code = "journal-key"


class JournalCorruptError(FinalError):
    """The journal file is damaged or was written by a newer posgw; the daemon will not start."""

    code = "journal-corrupt"


class CouponAlreadyRedeemedError(FinalError):
    """This coupon was already used on a sale at this terminal."""

    code = "coupon-redeemed"


class MemberCodeUsedError(FinalError):
    """This member QR code was already used for a sale at this terminal."""

    code = "member-code-used"


class IdempotencyConflictError(FinalError):
    """An Idempotency-Key was reused for a different request."""

    code = "idempotency-conflict"
