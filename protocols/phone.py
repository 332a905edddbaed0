"""Phone numbers as member identifiers, without ever keeping the number.

A member's phone number is known to terminals only as ``phone:<digest>``, the
scrypt hash of the normalised number under the mall's salt (carried in the
signed rulebook). The till hashes what the cashier typed and looks the digest
up in its member cache, or asks the ledger with the digest, never the number.
scrypt is slow on purpose (about 35 ms here), so a stolen member cache cannot
be turned back into phone numbers by trying every number.
"""

from __future__ import annotations

import hashlib
import re

from protocols.errors import CodeError
from protocols.tokens import b64url_encode

_MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")  # ASCII digits: "１３８…" or "١٣٨…" is another identifier


def normalise_phone(text: str) -> str:
    """Mainland China mobile numbers, with or without +86 / spaces / dashes."""
    digits = re.sub(r"[\s\-()]", "", text)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not _MAINLAND_MOBILE.fullmatch(digits):
        raise CodeError("not a mainland mobile number (11 digits starting 13-19)")
    return digits


def phone_identifier(phone: str, salt: bytes) -> str:
    digest = hashlib.scrypt(normalise_phone(phone).encode(), salt=salt, n=2**14, r=8, p=1, dklen=16)
    return f"phone:{b64url_encode(digest)}"
