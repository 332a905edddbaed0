"""ECR framing and messages: round trips, any chunking, noise and corruption."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.ecr import (
    ACK,
    NAK,
    BadFrame,
    Control,
    EcrDecoder,
    EcrError,
    EcrMessage,
    Frame,
    MessageType,
    frame,
    masked_pan,
)

payload = st.binary(max_size=200).map(lambda b: bytes(x for x in b if x not in (0x02, 0x03)))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(st.lists(payload, min_size=1, max_size=5), st.lists(st.integers(0, 2000), max_size=10))
def test_frames_survive_any_chunking(bodies: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(frame(b) for b in bodies)
    decoder = EcrDecoder()
    events = [e for part in chunked(wire, cuts) for e in decoder.feed(part)]
    assert events == [Frame(b) for b in bodies]


@given(payload, st.data())
def test_any_single_byte_corruption_is_caught(body: bytes, data: st.DataObject) -> None:
    wire = bytearray(frame(body))
    pos = data.draw(st.integers(1, len(wire) - 1))  # not the STX
    flip = data.draw(st.integers(1, 255))
    wire[pos] ^= flip
    events = EcrDecoder().feed(bytes(wire))
    assert Frame(body) not in events


def test_control_bytes_noise_and_cut_frames() -> None:
    decoder = EcrDecoder()
    events = decoder.feed(bytes((ACK,)) + b"noise" + bytes((NAK,)) + b"\x02ABC\x02" + frame(b"OK")[1:])
    assert events == [Control.ACK, Control.NAK, BadFrame("frame cut off by a new STX"), Frame(b"OK")]


def test_message_round_trip_and_refusals() -> None:
    msg = EcrMessage(MessageType.SALE, {"amount": "12345", "currency": "CNY", "ref": "01a2"})
    assert EcrMessage.decode(msg.encode()) == msg
    with pytest.raises(EcrError, match="unknown ECR message type"):
        EcrMessage.decode(b"PAYME\x1camount=1")
    with pytest.raises(EcrError, match="key=value"):
        EcrMessage.decode(b"SALE\x1camount")
    with pytest.raises(EcrError, match="printable"):
        EcrMessage(MessageType.SALE, {"name": "caf\u00e9"}).encode()


def test_only_a_masked_pan_is_kept() -> None:
    assert masked_pan("6222 0200 1234 5678 901") == "622202*********8901"
    with pytest.raises(EcrError):
        masked_pan("1234")
