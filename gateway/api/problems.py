"""Errors as RFC 9457 ``application/problem+json``, never a stack trace."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway import errors as gw
from gateway.events import TooManySubscribersError
from offline_queue.errors import (
    CouponAlreadyRedeemedError,
    IdempotencyConflictError,
    JournalError,
    JournalFullError,
    MemberCodeUsedError,
)
from offline_queue.limits import JournalLimitError
from offline_queue.payments import PaymentNotSettleableError
from protocols.errors import CodeError, GatewayError, SchemaError, TokenError
from protocols.refunds import RefundRefusedError

log = structlog.get_logger("posgw.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[GatewayError], int]] = [
    (gw.UnauthorizedError, 401),
    (gw.PinLockedError, 429),  # too many wrong PINs: wait (Retry-After)
    (gw.PinRefusedError, 403),
    (gw.CashierRequiredError, 403),
    (gw.ApprovalRequiredError, 403),
    (gw.BadRequestError, 400),
    (gw.NotFoundError, 404),
    (IdempotencyConflictError, 422),  # the same key with another request (the IETF Idempotency-Key draft)
    (CouponAlreadyRedeemedError, 409),
    (MemberCodeUsedError, 422),
    (gw.ConflictError, 409),
    (gw.LedgerRefusedError, 409),  # the ledger answered and said no
    (RefundRefusedError, 409),
    (SchemaError, 422),
    (TokenError, 422),
    (CodeError, 422),
    (gw.UnknownMemberError, 404),  # nobody behind that card, code or phone number: not found
    (gw.MemberRefusedError, 422),
    (gw.TenderError, 422),
    (gw.PaymentCodeError, 422),
    (gw.CouponRevokedError, 422),
    (gw.PaymentUnavailableError, 422),
    (PaymentNotSettleableError, 409),
    (gw.RiskLimitError, 422),
    (gw.PointsRefusedError, 422),
    (JournalFullError, 507),
    (JournalLimitError, 503),
    (JournalError, 503),
    (gw.RulesUnavailableError, 503),
    (gw.DrainingError, 503),
    (TooManySubscribersError, 503),
]


def status_for(err: GatewayError) -> int:
    for cls, status in STATUS:
        if isinstance(err, cls):
            return status
    return 503 if err.retryable else 500


def problem(status: int, code: str, title: str, detail: str, **extra: object) -> web.Response:
    body = {"type": f"urn:posgw:problem:{code}", "title": title, "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


def from_error(err: GatewayError) -> web.Response:
    extra: dict[str, object] = {"retryable": err.retryable}
    detail = str(err)
    if isinstance(err, SchemaError):
        extra["problems"] = err.problems
        detail = f"{len(err.problems)} problem(s) in the request"
    response = problem(status_for(err), err.code, err.code.replace("-", " ").capitalize(), detail, **extra)
    if isinstance(err, gw.UnauthorizedError):  # RFC 9110: a 401 says how to authenticate
        response.headers["WWW-Authenticate"] = 'Bearer realm="posgw"'
    if isinstance(err, gw.PinLockedError):
        response.headers["Retry-After"] = str(err.retry_after)
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as err:
        return from_error(err)
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413, "too-large", "Request too large", "the body is larger than the API accepts (api.max_body_bytes)"
        )
    except web.HTTPException as err:
        if err.status < 400:
            raise
        response = problem(err.status, "http", err.reason, err.text or err.reason)
        if "Allow" in err.headers:  # a 405 says which methods the path takes (RFC 9110)
            response.headers["Allow"] = err.headers["Allow"]
        return response
    except Exception:  # an unexpected bug answers 500 and is logged, the daemon keeps running
        log.exception("api_unhandled", path=request.path)
        return problem(500, "internal", "Internal error", "the gateway hit an unexpected error; it was logged")
