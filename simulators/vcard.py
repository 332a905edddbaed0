"""A virtual member card plugged into the real ``pcscd`` through ``vsmartcard-vpcd``.

vpcd (the reader driver inside pcscd) listens on TCP, 35963 for its first
reader. A virtual card connects to it ("insert"), and answers with 2-byte
big-endian length-prefixed frames: a 1-byte frame is a control byte (0 power
off, 1 power on, 2 reset, 4 get ATR — only ATR is answered), anything longer
is a command APDU answered with a response APDU. Closing the socket is
pulling the card out.

The card's logic, :class:`MemberCardApplet`, implements the posgw member
application (see ``docs/protocols/member-card.md``) with a real P-256 key, and
can misbehave on purpose: modes ``uid-only``, ``cloned``, ``expired``,
``garbage`` and ``pulled``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from protocols.apdu import CommandApdu, ResponseApdu
from protocols.member_card import MEMBER_AID, TAG_RECORD, MemberCardRecord, issue_card, sign_challenge
from protocols.tokens import key_id

MODES = ("member", "uid-only", "cloned", "expired", "garbage", "pulled")
VPCD_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


def make_atr(historical: bytes = b"posgw-MC") -> bytes:
    """A T=1 ATR (TS 3B, T0, TD1 80, TD2 01, historical bytes, TCK)."""
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


ATR = make_atr()


def _sw(sw: int, data: bytes = b"") -> bytes:
    return ResponseApdu(data, sw).encode()


@dataclass
class MemberCardApplet:
    """The card's side of the member application, as plain bytes in and out."""

    mode: str
    record: MemberCardRecord | None
    card_key: ec.EllipticCurvePrivateKey
    uid: bytes
    _selected: bool = False
    _pending: bytes = field(default=b"", repr=False)

    def process(self, raw: bytes) -> bytes | None:
        """Answer one command APDU; ``None`` means the card is pulled out now."""
        try:
            cmd = CommandApdu.decode(raw)
        except ValueError:
            return _sw(0x6700)
        if (cmd.cla, cmd.ins) == (0xFF, 0xCA):
            return _sw(0x9000, self.uid)
        if cmd.ins == 0xA4 and cmd.p1 == 0x04:
            if self.mode == "uid-only" or cmd.data != MEMBER_AID:
                return _sw(0x6A82)
            self._selected = True
            return _sw(0x9000)
        if not self._selected:
            return _sw(0x6985)
        if cmd.ins == 0xCA and cmd.p2 == TAG_RECORD:
            if self.mode == "pulled":
                return None
            if self.mode == "garbage":
                return _sw(0x9000, b"\x70\x85\x01garbage")
            assert self.record is not None
            # Answer in two parts (61xx, then GET RESPONSE) as a T=0 card would.
            data = self.record.encode()
            self._pending = data[200:]
            return _sw(0x6100 | (len(self._pending) & 0xFF), data[:200]) if self._pending else _sw(0x9000, data)
        if cmd.ins == 0xC0:
            data, self._pending = self._pending, b""
            return _sw(0x9000, data)
        if cmd.ins == 0x88:
            assert self.record is not None
            return _sw(0x9000, sign_challenge(self.card_key, cmd.data, self.record.card_number))
        return _sw(0x6D00)


def make_applet(
    mode: str,
    issuer_key: Ed25519PrivateKey,
    card_number: str = "8600000001",
    issuer: str = "DEMO-MALL",
    today: datetime | None = None,
    uid: bytes | None = None,
) -> MemberCardApplet:
    """A freshly personalised card in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    now = today or datetime.now(UTC)
    expiry = (now + timedelta(days=-1 if mode == "expired" else 3 * 365)).strftime("%Y%m%d")
    card_key = ec.generate_private_key(ec.SECP256R1())
    record = issue_card(card_number, issuer, expiry, card_key.public_key(), issuer_key, key_id(issuer_key.public_key()))
    if mode == "cloned":
        # Same number and a genuine certificate copied off the real card, but
        # the clone cannot know the real card's private key.
        card_key = ec.generate_private_key(ec.SECP256R1())
    uid = uid or b"\x04" + os.urandom(6)
    return MemberCardApplet(mode, None if mode == "uid-only" else record, card_key, uid)


def load_issuer_key(path: Path) -> Ed25519PrivateKey:
    """The issuer key a personalisation bureau signs cards with (the ledger's ``issuer.key``)."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


class VirtualCard:
    """One virtual card that can be inserted into and removed from a vpcd reader."""

    def __init__(self, applet: MemberCardApplet, port: int = VPCD_PORT, host: str = "127.0.0.1") -> None:
        self.applet = applet
        self.port = port
        self.host = host
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.apdus = 0

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self) -> None:
        if self._sock is not None:
            return
        self.applet._selected = False
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="vcard", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    break
                (length,) = struct.unpack(">H", header)
                payload = _recv_exact(sock, length)
                if payload is None:
                    break
                if length == 1:
                    if payload[0] == CTRL_ATR:
                        sock.sendall(struct.pack(">H", len(ATR)) + ATR)
                    continue
                self.apdus += 1
                reply = self.applet.process(payload)
                if reply is None:
                    break
                sock.sendall(struct.pack(">H", len(reply)) + reply)
        if self._sock is sock:
            self._sock = None
        with contextlib.suppress(OSError):
            sock.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
