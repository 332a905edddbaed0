from __future__ import annotations

import pytest

from protocols.errors import CodeError
from protocols.payer import payer_identifier


def test_a_payer_id_becomes_a_salted_digest_per_wallet() -> None:
    one = payer_identifier("wechat", "oXy-123", b"salt-a")
    assert one.startswith("payer:wechat:")
    assert "oXy-123" not in one
    assert one == payer_identifier("wechat", "oXy-123", b"salt-a")  # the till and the ledger agree
    assert one != payer_identifier("wechat", "oXy-123", b"salt-b")  # another mall, another digest
    assert one.split(":")[2] != payer_identifier("alipay", "oXy-123", b"salt-a").split(":")[2]


@pytest.mark.parametrize(("wallet", "payer"), [("card", "x"), ("wechat", ""), ("wechat", "a b"), ("alipay", "x" * 65)])
def test_bad_payer_ids_are_refused(wallet: str, payer: str) -> None:
    with pytest.raises(CodeError):
        payer_identifier(wallet, payer, b"salt")
