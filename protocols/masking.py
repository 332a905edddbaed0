"""Masking of what must never reach a log or an event stream.

Card numbers and payment codes (long digit runs), phone numbers, signed
tokens and bearer secrets are cut down to a recognisable stub.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

# 11+ digits covers mainland mobile numbers, card PANs and payment codes.
_DIGITS = re.compile(r"\d{11,}")
_TOKEN = re.compile(r"\b(PM1|CP1|PW1)\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)bearer\s+\S+")
_SECRET_KEYS = {"token", "authorization", "secret", "password", "api_token"}


def mask_member_id(member_id: str) -> str:
    """Enough of a member id for a cashier to tell two apart, not enough to act for the member: ``M0…42``."""
    if len(member_id) <= 3:
        return "…"
    keep = 2 if len(member_id) >= 6 else 1
    return f"{member_id[:keep]}…{member_id[-keep:]}"


def mask_text(text: str) -> str:
    text = _TOKEN.sub(lambda m: f"{m.group(1)}.…", text)
    text = _BEARER.sub("Bearer ***", text)
    return _DIGITS.sub(lambda m: f"{m.group()[:4]}…{m.group()[-2:]}", text)


def mask_value(value: object) -> object:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: "***" if k in _SECRET_KEYS else mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value


def mask_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = "***" if key in _SECRET_KEYS else mask_value(value)
    return event
