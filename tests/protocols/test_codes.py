import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.codes import CodeKind, classify, gs1_check_digit, has_valid_check_digit


@pytest.mark.parametrize(
    ("code", "kind", "detail"),
    [
        ("6901234567892", CodeKind.PRODUCT, "ean-13"),
        ("036000291452", CodeKind.PRODUCT, "upc-a"),
        ("96385074", CodeKind.PRODUCT, "ean-8"),
        ("6901234567891", CodeKind.UNKNOWN, "ean-13"),
        ("134567890123456789", CodeKind.PAYMENT_CODE, "wechat"),
        ("284567890123456789", CodeKind.PAYMENT_CODE, "alipay"),
        ("2845678901234567", CodeKind.PAYMENT_CODE, "alipay"),
        ("284567890123456789012345", CodeKind.PAYMENT_CODE, "alipay"),
        ("164567890123456789", CodeKind.UNKNOWN, None),
        ("2845678901234567890123456", CodeKind.UNKNOWN, None),
        ("PM1.payload.sig", CodeKind.MEMBER_TOKEN, None),
        ("CP1.payload.sig", CodeKind.COUPON_TOKEN, None),
        ("PW1.payload.sig", CodeKind.WALLET_CODE, None),
        ("https://example.com/x", CodeKind.UNKNOWN, None),
        ("١٢٣٤٥٦٧٨", CodeKind.UNKNOWN, None),
    ],
)
def test_classification(code: str, kind: CodeKind, detail: str | None) -> None:
    result = classify(code)
    assert result.kind is kind
    assert result.detail == detail


def test_a_misread_ean_is_flagged() -> None:
    assert classify("6901234567891").problem == "bad check digit (misread?)"


def test_known_check_digits() -> None:
    assert gs1_check_digit("690123456789") == 2
    assert gs1_check_digit("03600029145") == 2
    assert gs1_check_digit("9638507") == 4


@given(st.text(alphabet="0123456789", min_size=7, max_size=12))
def test_computed_check_digit_validates(body: str) -> None:
    assert has_valid_check_digit(body + str(gs1_check_digit(body)))


@given(st.text(alphabet="0123456789", min_size=7, max_size=12), st.data())
def test_any_single_digit_error_is_caught(body: str, data: st.DataObject) -> None:
    code = body + str(gs1_check_digit(body))
    pos = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != code[pos]]))
    assert not has_valid_check_digit(code[:pos] + wrong + code[pos + 1 :])
