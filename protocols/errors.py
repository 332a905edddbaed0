"""The one exception root of posgw and its two branches.

Every error the project raises derives from :class:`GatewayError`. Callers
decide what to do from the branch: a :class:`RetryableError` may succeed later
(a device that is not there yet, a ledger that is down); a :class:`FinalError`
will fail the same way again (a forged token, a malformed frame, a bad config).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error raised by posgw.

    ``code`` is a stable, machine-readable slug (used as the problem type in the
    local API); the message is written for the cashier or the operator.
    """

    code = "gateway-error"
    retryable = False


class RetryableError(GatewayError):
    """The same operation may succeed if tried again later."""

    code = "retryable"
    retryable = True


class FinalError(GatewayError):
    """The same input will fail the same way again; do not retry."""

    code = "final"


class ProtocolError(FinalError):
    """Bytes or text on a wire did not follow its protocol."""

    code = "protocol-error"


class FramingError(ProtocolError):
    """Scanner bytes could not be framed into a code."""

    code = "framing-error"


class CodeError(ProtocolError):
    """A scanned code is malformed (for example, a wrong check digit)."""

    code = "code-error"


class TokenError(ProtocolError):
    """A signed token (member QR, coupon, wallet code) was refused."""

    code = "token-invalid"


class TokenMalformedError(TokenError):
    code = "token-malformed"


class TokenForgedError(TokenError):
    code = "token-forged"


class TokenExpiredError(TokenError):
    code = "token-expired"


class SchemaError(FinalError):
    """A document (config, API body, wire message) does not match its schema.

    Carries every problem found, not just the first, so an operator can fix a
    file in one pass.
    """

    code = "invalid-document"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class MoneyError(FinalError):
    """An amount or an allocation is impossible (negative, overflowing, inconsistent)."""

    code = "money-error"
