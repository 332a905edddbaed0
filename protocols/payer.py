"""A wallet account as a member identifier ("pay = member"), without keeping the account id.

When a member binds their WeChat Pay or Alipay account in the app, the ledger
keeps ``payer:<wallet>:<digest>``: SHA-256 of the wallet's payer id under the
mall's identifier salt (the rulebook's ``phone_salt``). After a payment the
till hashes the payer id the provider returned and looks the digest up, in
its member cache or at the ledger. Payer ids are long and random, so a fast
hash is enough here (unlike phone numbers, which need scrypt).
"""

from __future__ import annotations

import hashlib
import re

from protocols.errors import CodeError
from protocols.tokens import b64url_encode

WALLETS = ("wechat", "alipay")
_PAYER = re.compile(r"[0-9A-Za-z_-]{1,64}")


def payer_identifier(wallet: str, payer: str, salt: bytes) -> str:
    if wallet not in WALLETS or not _PAYER.fullmatch(payer):
        raise CodeError("not a wallet payer id")
    digest = hashlib.sha256(salt + f"{wallet}:{payer}".encode()).digest()[:16]
    return f"payer:{wallet}:{b64url_encode(digest)}"
