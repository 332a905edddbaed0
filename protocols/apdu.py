"""ISO/IEC 7816-4 command and response APDUs, and the 61xx / 6Cxx dance.

Encoding picks short or extended length by itself. :func:`transceive` runs
one command through a caller-supplied ``send`` function (the I/O stays with
the caller) and follows the card's ``61xx`` (more data: GET RESPONSE) and
``6Cxx`` (wrong Le: resend with the exact length) answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.errors import ProtocolError


class ApduError(ProtocolError):
    """Bytes that are not a valid APDU, or a card that will not finish an exchange."""

    code = "apdu-invalid"


SW_OK = 0x9000
STATUS_WORDS: dict[int, str] = {
    0x9000: "success",
    0x6283: "selected file or application is invalidated",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6882: "secure messaging not supported",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6985: "conditions of use not satisfied",
    0x6A80: "incorrect data in the command",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1-P2",
    0x6A88: "referenced data not found",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def status_meaning(sw: int) -> str:
    """A human reading of a status word, for logs and cashier messages."""
    if sw in STATUS_WORDS:
        return STATUS_WORDS[sw]
    high, low = sw >> 8, sw & 0xFF
    if high == 0x61:
        return f"{low or 256} more bytes available"
    if high == 0x6C:
        return f"wrong Le; exact length is {low or 256}"
    if high == 0x63 and low & 0xF0 == 0xC0:
        return f"verification failed, {low & 0x0F} tries left"
    return f"status {sw:04X}"


@dataclass(frozen=True, slots=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # expected response length; 256 (short) / 65536 (extended) means "all"

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ApduError(f"{name} must be a byte")
        if len(self.data) > 65535:
            raise ApduError("command data longer than 65535 bytes")
        if self.le is not None and not 1 <= self.le <= 65536:
            raise ApduError("Le must be 1..65536")

    @property
    def extended(self) -> bool:
        return len(self.data) > 255 or (self.le is not None and self.le > 256)

    def encode(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        lc, le = b"", b""
        if self.extended:
            if self.data:
                lc = b"\x00" + len(self.data).to_bytes(2, "big")
            if self.le is not None:
                le = (self.le % 65536).to_bytes(2, "big")
                if not self.data:
                    le = b"\x00" + le
        else:
            if self.data:
                lc = bytes((len(self.data),))
            if self.le is not None:
                le = bytes((self.le % 256,))
        return header + lc + self.data + le

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse any of the seven ISO 7816-4 cases (1, 2S, 3S, 4S, 2E, 3E, 4E)."""
        if len(raw) < 4:
            raise ApduError(f"command APDU of {len(raw)} bytes is shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:  # short Lc
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
            raise ApduError(f"Lc {lc} does not match the {len(body) - 1} bytes that follow")
        if len(body) == 3:  # extended Le only
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536)
        if len(body) < 3:
            raise ApduError("truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduError("extended Lc of zero")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:])
        if len(body) == 5 + lc:
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], int.from_bytes(body[-2:], "big") or 65536)
        raise ApduError(f"extended Lc {lc} does not match the {len(body) - 3} bytes that follow")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    @property
    def meaning(self) -> str:
        return status_meaning(self.sw)

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise ApduError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


MAX_CHAINED_RESPONSES = 64


def transceive(send: Callable[[bytes], bytes], command: CommandApdu) -> ResponseApdu:
    """Send ``command``; follow ``6Cxx`` once and ``61xx`` until the card is done."""
    resp = ResponseApdu.decode(send(command.encode()))
    if resp.sw >> 8 == 0x6C:
        exact = resp.sw & 0xFF or 256
        resp = ResponseApdu.decode(
            send(CommandApdu(command.cla, command.ins, command.p1, command.p2, command.data, exact).encode())
        )
    data = resp.data
    for _ in range(MAX_CHAINED_RESPONSES):
        if resp.sw >> 8 != 0x61:
            return ResponseApdu(data, resp.sw)
        get_response = CommandApdu(command.cla & 0x03, 0xC0, 0x00, 0x00, le=resp.sw & 0xFF or 256)
        resp = ResponseApdu.decode(send(get_response.encode()))
        data += resp.data
    raise ApduError(f"card kept answering 61xx after {MAX_CHAINED_RESPONSES} GET RESPONSE commands")
