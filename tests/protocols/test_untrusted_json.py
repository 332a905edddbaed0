"""The one reader of untrusted JSON, and what fuzzing found at each door it now guards (each failed before)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.chain import canonical_json
from protocols.ecr import ACK, ETX, MAX_DATA, STX, BadFrame, Control, EcrDecoder, Frame, frame
from protocols.errors import CodeError, GatewayError, SchemaError, TokenMalformedError
from protocols.mqtt_topics import MqttPayloadError, command, version_notice
from protocols.phone import normalise_phone
from protocols.rulebook import Rulebook
from protocols.tokens import b64url_encode, verify_token
from protocols.untrusted_json import UntrustedJsonError, read_json


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"[" * 400 + b"]" * 400, "nested more than 32 deep"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested more than 32 deep"),
        (b'{"name": "\\ud800"}', "lone surrogate"),
        (b'["\\udfff", 1]', "lone surrogate"),
        (b'{"\\ud800": 1}', "lone surrogate"),
        (b"[NaN]", "NaN is not a number"),
        (b'{"x": -Infinity}', "-Infinity is not a number"),
        (b"[1e999]", "out of range"),
        (b"[" + b"9" * 309 + b"]", "an integer of 309 digits"),
        (b"\xff\xfe[]", "not UTF-8"),
        (b"[1, 2", "not JSON"),
        (b"x" * 2000, "more than 1,024"),
    ],
    ids=["deep-array", "deep-object", "surrogate", "low-surrogate", "surrogate-key", "nan", "infinity",
         "float-overflow", "huge-int", "not-utf8", "truncated", "too-large"],
)  # fmt: skip
def test_what_the_reader_refuses_and_says(data: bytes, said: str) -> None:
    with pytest.raises(UntrustedJsonError, match=said) as err:
        read_json(data, "a test document", max_bytes=1024)
    assert isinstance(err.value, GatewayError)  # under the one root
    assert "a test document" in str(err.value)


def test_what_it_accepts_canonicalises_and_round_trips() -> None:
    text = '{"emoji": "\\ud83d\\ude00", "depth": [[[[1]]]], "big": 9223372036854775807, "f": 1.5, "s": "}]\\""}'
    value = read_json(text.encode(), "doc", max_bytes=1024)
    assert value["emoji"] == "\U0001f600"  # a surrogate pair is one character, and fine
    assert read_json(canonical_json(value), "again", max_bytes=1024) == value  # canonical encoding cannot fail


_TRICKY_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\/ab\u00e9\U0001f600\n'), max_size=12)
_VALUES = st.recursive(
    st.none() | st.integers(-(10**6), 10**6) | _TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, ascii_only=st.booleans(), spaced=st.booleans())
def test_the_depth_is_measured_exactly_whatever_the_strings_hold(value: object, ascii_only: bool, spaced: bool) -> None:
    """Brackets, quotes and backslashes inside strings never count; the document's own nesting always does."""
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if spaced else None).encode()
    depth = _depth(value)
    assert read_json(text, "doc", max_bytes=1 << 20, max_depth=depth) == value
    if depth:
        with pytest.raises(UntrustedJsonError, match=f"nested more than {depth - 1} deep"):
            read_json(text, "doc", max_bytes=1 << 20, max_depth=depth - 1)


def test_mqtt_payloads_nested_too_deep_are_a_typed_refusal_not_a_recursion_error() -> None:
    for reader in (version_notice, command):
        with pytest.raises(MqttPayloadError, match="nested"):
            reader(b"[" * 1000)


def test_a_huge_integer_or_nan_in_a_number_field_is_a_schema_problem() -> None:
    base = Rulebook(1, "CNY", {}, frozenset(), {}).to_wire()
    for bad in (10**309, float("nan"), float("inf")):
        wire = {**base, "risk": {**base.get("risk", {}), "max_offline_hours": bad}}
        with pytest.raises(SchemaError, match="max_offline_hours"):
            Rulebook.from_wire(wire)


def test_a_token_whose_payload_is_deep_or_holds_a_surrogate_is_malformed() -> None:
    for payload in ("[" * 300, '{"sub": "\\ud800"}'):
        token = f"PM1.{b64url_encode(payload.encode())}.{b64url_encode(b'x' * 64)}"
        with pytest.raises(TokenMalformedError, match="not JSON posgw reads"):
            verify_token(token, "PM1.", {}, now=0)


@pytest.mark.parametrize("phone", ["１３８００１３８０００", "١٣٨٠٠١٣٨٠٠٠", "1３800138000"])
def test_phone_numbers_are_ascii_digits(phone: str) -> None:
    with pytest.raises(CodeError):
        normalise_phone(phone)


def test_after_an_over_long_ecr_frame_its_lrc_byte_is_not_read_as_an_ack() -> None:
    data = bytes([0x41] * MAX_DATA + [0x47])  # LRC of the lot, with ETX: whatever it is, it must not be an event
    stream = bytes([STX]) + data + bytes([ETX, ACK]) + frame(b"NEXT")  # the LRC byte happens to be 0x06
    events = EcrDecoder().feed(stream)
    assert events == [BadFrame(f"frame longer than {MAX_DATA} bytes"), Frame(b"NEXT")]
    assert Control(ACK) not in events


def test_json_of_the_standard_library_would_have_taken_them() -> None:
    """What the reader stands in front of (so the regressions above test something real)."""
    assert json.loads('["\\ud800"]') == ["\ud800"]
    with pytest.raises(RecursionError):
        json.loads("[" * 100_000 + "]" * 100_000)


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(UntrustedJsonError, match="'a' is given twice"):
        read_json(b'{"b": 1, "a": 1, "a": 2}', "doc", max_bytes=100)
    assert read_json(b'{"a": {"a": 1}}', "doc", max_bytes=100) == {"a": {"a": 1}}  # the same key at two levels


def test_a_time_zone_name_too_long_for_a_file_name_is_a_typed_refusal() -> None:
    """Found by atheris: a rulebook zone of 100 characters raised OSError (file name too long) from zoneinfo."""
    wire = {**Rulebook(1, "CNY", {}, frozenset(), {}).to_wire(), "zone": "Asia/Shangha" + "9" * 100}
    with pytest.raises(SchemaError, match="zone"):
        Rulebook.from_wire(wire)
    for name in ("../../etc/passwd", "Asia/Shanghai\x00", ""):
        wire["zone"] = name
        with pytest.raises(SchemaError, match="zone"):
            Rulebook.from_wire(wire)
