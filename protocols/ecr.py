"""The bank-card terminal's ECR link: framing and messages, sans I/O.

Framing (a common ECR shape): ``STX <data> ETX <LRC>``, where LRC is the XOR
of every byte of ``data`` and ``ETX``. The receiver answers ``ACK`` to a good
frame and ``NAK`` to a bad one; the sender retransmits on ``NAK`` or silence,
up to three times (the caller keeps the clock). Data is printable ASCII
fields separated by ``FS`` (0x1C): a message type, then ``key=value`` fields.
Full specification: ``docs/protocols/ecr.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.errors import ProtocolError

STX, ETX, ACK, NAK, FS = 0x02, 0x03, 0x06, 0x15, 0x1C
MAX_DATA = 1024
MAX_RETRANSMISSIONS = 3


class EcrError(ProtocolError):
    code = "ecr-invalid"


def lrc(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def frame(data: bytes) -> bytes:
    if len(data) > MAX_DATA:
        raise EcrError(f"ECR data longer than {MAX_DATA} bytes")
    if any(b in (STX, ETX) for b in data):
        raise EcrError("ECR data may not contain STX or ETX")
    return bytes((STX,)) + data + bytes((ETX, lrc(data + bytes((ETX,)))))


class Control(enum.Enum):
    ACK = ACK
    NAK = NAK


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame whose LRC did not match, or that overflowed: answer NAK."""

    reason: str


EcrEvent = Frame | BadFrame | Control


class EcrDecoder:
    """Incremental: feed bytes as they come, get frames, control bytes and bad frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._in_frame = False
        self._lrc_next = False  # ETX seen: the next byte is the LRC
        self._skipping = False  # an over-long frame: its rest, to its ETX and LRC, is not line noise to read

    def feed(self, data: bytes) -> list[EcrEvent]:
        out: list[EcrEvent] = []
        for b in data:
            if self._skipping:  # the refused frame runs on to its ETX; the byte after that is its LRC
                if b == STX:
                    self._skipping, self._lrc_next = False, False
                    self._in_frame, self._buffer = True, bytearray()
                elif self._lrc_next:
                    self._skipping, self._lrc_next = False, False
                elif b == ETX:
                    self._lrc_next = True
                continue
            if not self._in_frame:
                if b == STX:
                    self._in_frame, self._buffer = True, bytearray()
                elif b in (ACK, NAK):
                    out.append(Control(b))
                # anything else between frames is line noise: dropped
                continue
            if self._lrc_next:
                self._in_frame, self._lrc_next = False, False
                body = bytes(self._buffer)
                if lrc(body + bytes((ETX,))) == b:
                    out.append(Frame(body))
                else:
                    out.append(BadFrame("LRC mismatch"))
                continue
            if b == ETX:
                self._lrc_next = True
            elif b == STX:  # a new frame started inside one: the first was cut off
                out.append(BadFrame("frame cut off by a new STX"))
                self._buffer = bytearray()
            elif len(self._buffer) >= MAX_DATA:
                out.append(BadFrame(f"frame longer than {MAX_DATA} bytes"))
                self._in_frame, self._skipping = False, True
            else:
                self._buffer.append(b)
        return out


class MessageType(enum.StrEnum):
    SALE = "SALE"
    REFUND = "REFUND"
    CANCEL = "CANCEL"
    LAST = "LAST"  # last-transaction recovery after a lost answer
    RESULT = "RESULT"  # the terminal's answer to any of the above


@dataclass(frozen=True, slots=True)
class EcrMessage:
    kind: MessageType
    fields: dict[str, str]

    def encode(self) -> bytes:
        parts = [self.kind.value] + [f"{k}={v}" for k, v in sorted(self.fields.items())]
        text = chr(FS).join(parts)
        if not all(0x20 <= ord(c) <= 0x7E or c == chr(FS) for c in text) or any("=" in k for k in self.fields):
            raise EcrError("ECR fields must be printable ASCII, keys without '='")
        return text.encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> EcrMessage:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as err:
            raise EcrError("ECR message is not ASCII") from err
        head, *rest = text.split(chr(FS))
        try:
            kind = MessageType(head)
        except ValueError as err:
            raise EcrError(f"unknown ECR message type {head[:16]!r}") from err
        fields = {}
        for part in rest:
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise EcrError(f"ECR field {part[:16]!r} is not key=value")
            fields[key] = value
        return cls(kind, fields)


def masked_pan(pan: str) -> str:
    """What the gateway may keep of a card number: the first 6 and last 4 digits at most."""
    digits = "".join(c for c in pan if c.isdigit())
    if len(digits) < 12:
        raise EcrError("a card number has at least 12 digits")
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"
