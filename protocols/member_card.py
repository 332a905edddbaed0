"""The posgw member-card application: record, certificate, challenge-response.

A card carries its own P-256 key pair and a record (card number, issuer,
expiry, the card's public key) signed by the mall's Ed25519 issuer key. The
terminal SELECTs the application, reads the record, sends a fresh random
challenge (INTERNAL AUTHENTICATE) and checks, offline, that the issuer signed
the record and that the card signed the challenge with the key in it. A
copied card number or a cloned record without the private key fails.
Cards without the application are read by their contactless UID
(``FF CA 00 00 00``), a weaker identity. The full specification, for card
vendors, is ``docs/protocols/member-card.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols import tlv
from protocols.apdu import ApduError, CommandApdu, transceive
from protocols.errors import ProtocolError

MEMBER_AID = bytes.fromhex("F0504F53475701")  # proprietary RID F0 + "POSGW" + version 01
TAG_RECORD = 0x70
TAG_CARD_NUMBER = 0xDF01
TAG_ISSUER = 0xDF02
TAG_EXPIRY = 0xDF03
TAG_CARD_KEY = 0xDF04
TAG_KID = 0xDF05
TAG_CERT_SIGNATURE = 0xDF06
AUTH_CONTEXT = b"posgw-member-auth-v1"
CHALLENGE_LENGTH = 16
NOT_A_MEMBER_CARD = {0x6A82, 0x6A81, 0x6D00, 0x6E00, 0x6999}

SELECT = CommandApdu(0x00, 0xA4, 0x04, 0x00, MEMBER_AID, 256)
GET_RECORD = CommandApdu(0x00, 0xCA, 0x00, TAG_RECORD, le=256)
GET_UID = CommandApdu(0xFF, 0xCA, 0x00, 0x00, le=256)


class CardError(ProtocolError):
    """A card could not be read or was refused; the message is for the cashier."""

    code = "card-invalid"


class CardDataError(CardError):
    code = "card-unreadable"


class CardForgedError(CardError):
    code = "card-forged"


class CardExpiredError(CardError):
    code = "card-expired"


def authenticate_command(challenge: bytes) -> CommandApdu:
    return CommandApdu(0x00, 0x88, 0x00, 0x00, challenge, 256)


@dataclass(frozen=True, slots=True)
class MemberCardRecord:
    card_number: str
    issuer: str
    expiry: str  # YYYYMMDD, the last valid day
    card_key: bytes  # uncompressed P-256 point, 65 bytes
    kid: str
    signature: bytes  # issuer's Ed25519 signature over cert_body()

    def cert_body(self) -> bytes:
        return tlv.encode_many(
            [
                (TAG_CARD_NUMBER, self.card_number.encode("ascii")),
                (TAG_ISSUER, self.issuer.encode("ascii")),
                (TAG_EXPIRY, self.expiry.encode("ascii")),
                (TAG_CARD_KEY, self.card_key),
                (TAG_KID, self.kid.encode("ascii")),
            ]
        )

    def encode(self) -> bytes:
        return tlv.encode(TAG_RECORD, self.cert_body() + tlv.encode(TAG_CERT_SIGNATURE, self.signature))

    @classmethod
    def decode(cls, data: bytes) -> MemberCardRecord:
        try:
            outer = tlv.decode(data)
            if len(outer) != 1 or outer[0].tag != TAG_RECORD:
                raise CardDataError("card record is not a single 70 template")
            fields = {t.tag: t.value for t in outer[0].children()}
        except tlv.TlvError as err:
            raise CardDataError(f"card record is malformed: {err}") from err
        missing = [
            f"{t:X}"
            for t in (TAG_CARD_NUMBER, TAG_ISSUER, TAG_EXPIRY, TAG_CARD_KEY, TAG_KID, TAG_CERT_SIGNATURE)
            if t not in fields
        ]
        if missing:
            raise CardDataError(f"card record lacks {', '.join(missing)}")
        try:
            number, issuer, expiry, kid = (
                fields[t].decode("ascii") for t in (TAG_CARD_NUMBER, TAG_ISSUER, TAG_EXPIRY, TAG_KID)
            )
        except UnicodeDecodeError as err:
            raise CardDataError("card record text is not ASCII") from err
        if not re.fullmatch(r"[0-9A-Z]{6,20}", number):
            raise CardDataError("card number must be 6-20 digits or capital letters")
        if not re.fullmatch(r"\d{8}", expiry):
            raise CardDataError("card expiry must be YYYYMMDD")
        if len(fields[TAG_CARD_KEY]) != 65 or len(fields[TAG_CERT_SIGNATURE]) != 64:
            raise CardDataError("card key or certificate signature has the wrong length")
        return cls(number, issuer, expiry, fields[TAG_CARD_KEY], kid, fields[TAG_CERT_SIGNATURE])


def issue_card(
    card_number: str,
    issuer: str,
    expiry: str,
    card_public_key: ec.EllipticCurvePublicKey,
    issuer_key: Ed25519PrivateKey,
    kid: str,
) -> MemberCardRecord:
    """Personalisation: the issuer certifies a card's public key."""
    point = card_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    unsigned = MemberCardRecord(card_number, issuer, expiry, point, kid, b"")
    return MemberCardRecord(card_number, issuer, expiry, point, kid, issuer_key.sign(unsigned.cert_body()))


def auth_message(challenge: bytes, card_number: str) -> bytes:
    return AUTH_CONTEXT + challenge + card_number.encode("ascii")


def sign_challenge(card_key: ec.EllipticCurvePrivateKey, challenge: bytes, card_number: str) -> bytes:
    """What the card computes: ECDSA P-256 / SHA-256, as raw r ‖ s (64 bytes)."""
    r, s = decode_dss_signature(card_key.sign(auth_message(challenge, card_number), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class CardReading:
    """What a reader got from a card; verified by :func:`verify_reading`."""

    record: MemberCardRecord | None = None
    challenge: bytes = b""
    signature: bytes = b""
    uid: bytes | None = None

    @property
    def identifier(self) -> str:
        if self.record is not None:
            return f"card:{self.record.card_number}"
        return f"uid:{(self.uid or b'').hex()}"


def read_card(send: Callable[[bytes], bytes], challenge: bytes) -> CardReading:
    """The terminal's side of a tap, over any ``send(command) -> response``."""
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"challenge must be {CHALLENGE_LENGTH} bytes")
    try:
        selected = transceive(send, SELECT)
        if selected.sw in NOT_A_MEMBER_CARD:
            uid = transceive(send, GET_UID)
            if not uid.ok or len(uid.data) not in (4, 7, 10):
                raise CardDataError(f"not a member card, and no usable UID ({uid.meaning})")
            return CardReading(uid=uid.data)
        if not selected.ok:
            raise CardDataError(f"member application could not be selected ({selected.meaning})")
        got = transceive(send, GET_RECORD)
        if not got.ok:
            raise CardDataError(f"card record could not be read ({got.meaning})")
        record = MemberCardRecord.decode(got.data)
        auth = transceive(send, authenticate_command(challenge))
        if not auth.ok:
            raise CardForgedError(f"card refused to authenticate ({auth.meaning})")
        return CardReading(record, challenge, auth.data)
    except ApduError as err:
        raise CardDataError(f"card answered garbage: {err}") from err


def verify_reading(reading: CardReading, issuer_keys: Mapping[str, Ed25519PublicKey], today: str) -> None:
    """Check the issuer's certificate, the challenge signature and the expiry (``today`` is YYYYMMDD)."""
    record = reading.record
    if record is None:
        return  # a UID is not verifiable; callers treat it as a weaker identity
    issuer = issuer_keys.get(record.kid)
    if issuer is None:
        raise CardForgedError("card certified by an unknown issuer key")
    try:
        issuer.verify(record.signature, record.cert_body())
    except InvalidSignature as err:
        raise CardForgedError("card certificate is not the issuer's") from err
    if len(reading.signature) != 64:
        raise CardForgedError("card authentication signature has the wrong length")
    try:
        card_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), record.card_key)
        der = encode_dss_signature(
            int.from_bytes(reading.signature[:32], "big"), int.from_bytes(reading.signature[32:], "big")
        )
        card_key.verify(der, auth_message(reading.challenge, record.card_number), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as err:
        raise CardForgedError("card failed the challenge: it is not the card the certificate was issued to") from err
    if today > record.expiry:
        raise CardExpiredError(f"card expired on {record.expiry[:4]}-{record.expiry[4:6]}-{record.expiry[6:]}")
