import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import tlv
from protocols.apdu import ApduError, CommandApdu, ResponseApdu, status_meaning, transceive

byte = st.integers(0, 255)


@given(byte, byte, byte, byte, st.binary(max_size=400), st.one_of(st.none(), st.integers(1, 65536)))
def test_command_apdu_round_trip(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> None:
    cmd = CommandApdu(cla, ins, p1, p2, data, le)
    raw = cmd.encode()
    decoded = CommandApdu.decode(raw)
    assert decoded.data == data
    if le is None:
        assert decoded.le is None
    elif cmd.extended:
        assert decoded.le == le
    else:
        assert decoded.le == le


@pytest.mark.parametrize(
    ("hexstr", "case"),
    [
        ("00A40400", (b"", None)),
        ("00CA007000", (b"", 256)),
        ("00A4040007F0504F5347570100", (bytes.fromhex("F0504F53475701"), 256)),
        ("0088000002AABB", (b"\xaa\xbb", None)),
        ("00B0000000FFFF", (b"", 65535)),
        ("00B0000000000000", None),
    ],
)
def test_known_encodings(hexstr: str, case: tuple[bytes, int | None] | None) -> None:
    if case is None:
        with pytest.raises(ApduError):
            CommandApdu.decode(bytes.fromhex(hexstr))
        return
    cmd = CommandApdu.decode(bytes.fromhex(hexstr))
    assert (cmd.data, cmd.le) == case


@given(st.binary(max_size=300))
def test_decoding_garbage_raises_only_apdu_errors(raw: bytes) -> None:
    with contextlib.suppress(ApduError):
        CommandApdu.decode(raw)
    try:
        ResponseApdu.decode(raw)
    except ApduError:
        assert len(raw) < 2


def test_status_meanings() -> None:
    assert status_meaning(0x9000) == "success"
    assert status_meaning(0x6A82) == "file or application not found"
    assert status_meaning(0x6110) == "16 more bytes available"
    assert status_meaning(0x6C05) == "wrong Le; exact length is 5"
    assert status_meaning(0x63C2) == "verification failed, 2 tries left"
    assert status_meaning(0x6B00) == "status 6B00"


def test_transceive_follows_61xx_and_6cxx() -> None:
    payload = bytes(range(250)) * 2
    sent: list[bytes] = []

    def card(raw: bytes) -> bytes:
        sent.append(raw)
        cmd = CommandApdu.decode(raw)
        if cmd.ins == 0xB0 and cmd.le != 10:
            return bytes.fromhex("6C0A")
        if cmd.ins == 0xB0:
            return payload[:200] + bytes.fromhex("6100")
        return payload[200:] + b"\x90\x00"

    resp = transceive(card, CommandApdu(0x00, 0xB0, 0, 0, le=256))
    assert resp.ok
    assert resp.data == payload
    assert [CommandApdu.decode(s).ins for s in sent] == [0xB0, 0xB0, 0xC0]


def test_transceive_gives_up_on_an_endless_61xx() -> None:
    with pytest.raises(ApduError, match="kept answering 61xx"):
        transceive(lambda raw: b"\x01\x61\x01", CommandApdu(0, 0xCA, 0, 0x70, le=256))


tags = st.sampled_from([0x5A, 0x84, 0x9F36, 0xDF01, 0xDF8101, 0x70, 0xA5, 0x7F21])


@given(st.lists(st.tuples(tags, st.binary(max_size=300)), max_size=10))
def test_tlv_round_trip(items: list[tuple[int, bytes]]) -> None:
    decoded = tlv.decode(tlv.encode_many(items))
    assert [(t.tag, t.value) for t in decoded] == items


@given(st.binary(max_size=200))
def test_tlv_garbage_raises_only_tlv_errors(raw: bytes) -> None:
    try:
        for item in tlv.decode(raw):
            if item.constructed:
                item.children()
    except tlv.TlvError:
        pass


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x5a\x05abc", "claims 5 bytes"),
        (b"\x5a\x80", "indefinite"),
        (b"\x5a\x85\x01\x02\x03\x04\x05", "too long"),
        (b"\xdf", "truncated multi-byte tag"),
        (b"\xdf\x81\x81\x81\x01", "longer than 3 bytes"),
    ],
)
def test_tlv_errors_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(tlv.TlvError, match=message):
        tlv.decode(raw)


def test_tlv_nesting_is_bounded() -> None:
    value = b"\x04\x01x"
    for _ in range(tlv.MAX_DEPTH + 2):
        value = tlv.encode(0x70, value)

    def walk(node: tlv.Tlv, depth: int) -> None:
        for child in node.children(depth):
            if child.constructed:
                walk(child, depth + 1)

    with pytest.raises(tlv.TlvError, match="nested deeper"):
        walk(tlv.decode(value)[0], 0)


def test_long_lengths() -> None:
    value = b"x" * 70_000
    encoded = tlv.encode(0xDF01, value)
    assert encoded[:5] == b"\xdf\x01\x83\x01\x11"
    assert tlv.decode(encoded)[0].value == value
