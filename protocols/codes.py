"""Classify a scanned code: product, member token, coupon, payment code, unknown.

Rules (see docs/protocols/scan-codes.md):

* ``PM1.`` member QR token, ``CP1.`` coupon token, ``PW1.`` member wallet pay code,
  ``PR1.`` a promo code printed on a flyer (its code follows the prefix),
  ``RC1.<terminal>.<seq>.<txn_id>`` a receipt's return code (``data`` is the sale's txn_id);
* all digits, 18 long, starting 10–15: WeChat Pay payment code;
* all digits, 16–24 long, starting 25–30: Alipay payment code;
* all digits, 13 / 12 / 8 long with a valid GS1 check digit: EAN-13 / UPC-A / EAN-8;
* anything else is ``unknown`` and goes to the POS application untouched.

The length ranges do not overlap, so the order of the digit rules does not matter.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from protocols.promotions import PROMO_PREFIX


class CodeKind(enum.StrEnum):
    PRODUCT = "product"
    MEMBER_TOKEN = "member_token"
    COUPON_TOKEN = "coupon_token"
    WALLET_CODE = "wallet_code"
    PAYMENT_CODE = "payment_code"
    PROMO_CODE = "promo_code"  # ``PR1.<code>`` on a flyer: a promotion for everyone (not a secret)
    RETURN_CODE = "return_code"  # ``RC1.<terminal>.<seq>.<txn_id>`` on a receipt: the sale, for a return
    UNKNOWN = "unknown"


TOKEN_PREFIXES = {
    "PM1.": CodeKind.MEMBER_TOKEN,
    "CP1.": CodeKind.COUPON_TOKEN,
    "PW1.": CodeKind.WALLET_CODE,
    PROMO_PREFIX: CodeKind.PROMO_CODE,
}


@dataclass(frozen=True, slots=True)
class ScanCode:
    """What a scanned string is. ``detail`` names the GTIN type or payment provider."""

    kind: CodeKind
    data: str
    detail: str | None = None
    problem: str | None = None


def gs1_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits before it (weights 3,1 from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def has_valid_check_digit(code: str) -> bool:
    return code.isdigit() and len(code) >= 2 and gs1_check_digit(code[:-1]) == int(code[-1])


_GTIN_LENGTHS = {13: "ean-13", 12: "upc-a", 8: "ean-8"}


def payment_provider(code: str) -> str | None:
    """Which wallet issued a numeric payment code, by prefix and length."""
    if not code.isdigit():
        return None
    head = int(code[:2])
    if len(code) == 18 and 10 <= head <= 15:
        return "wechat"
    if 16 <= len(code) <= 24 and 25 <= head <= 30:
        return "alipay"
    return None


_RETURN = re.compile(r"RC1\.([A-Za-z0-9_.:-]{1,64})\.([0-9]{1,16})\.([0-9a-f-]{36})")


def classify(data: str) -> ScanCode:
    if data.startswith("RC1."):
        if (match := _RETURN.fullmatch(data)) is None:
            return ScanCode(CodeKind.UNKNOWN, data, problem="not a receipt's return code (RC1.<till>.<seq>.<txn>)")
        return ScanCode(CodeKind.RETURN_CODE, match[3], f"{match[1]} #{match[2]}")
    for prefix, kind in TOKEN_PREFIXES.items():
        if data.startswith(prefix):
            if kind is CodeKind.PROMO_CODE:
                return ScanCode(kind, data.removeprefix(prefix))
            return ScanCode(kind, data)
    if data.isascii() and data.isdigit():
        provider = payment_provider(data)
        if provider is not None:
            return ScanCode(CodeKind.PAYMENT_CODE, data, provider)
        gtin = _GTIN_LENGTHS.get(len(data))
        if gtin is not None:
            if has_valid_check_digit(data):
                return ScanCode(CodeKind.PRODUCT, data, gtin)
            return ScanCode(CodeKind.UNKNOWN, data, gtin, problem="bad check digit (misread?)")
    return ScanCode(CodeKind.UNKNOWN, data)
