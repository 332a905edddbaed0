"""BER-TLV (ISO/IEC 7816-4 annex / X.690 subset): tags of 1–3 bytes, definite lengths.

Decoding is strict: a length that runs past the data, trailing bytes, an
indefinite length or nesting deeper than :data:`MAX_DEPTH` raise
:class:`TlvError`. Nothing a card sends can make it loop or allocate without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import ProtocolError

MAX_DEPTH = 8


class TlvError(ProtocolError):
    code = "tlv-invalid"


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes(tag_size(self.tag), "big")[0]
        return bool(first & 0x20)

    def children(self, depth: int = 0) -> list[Tlv]:
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive and has no children")
        return decode(self.value, depth + 1)

    def encode(self) -> bytes:
        return encode(self.tag, self.value)


def tag_size(tag: int) -> int:
    return max(1, (tag.bit_length() + 7) // 8)


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(raw) > 3:
        raise TlvError("value too long for BER-TLV here (over 16 MiB)")
    return bytes((0x80 | len(raw),)) + raw


def encode(tag: int, value: bytes) -> bytes:
    if not 0 < tag <= 0xFFFFFF:
        raise TlvError(f"tag {tag:X} out of range")
    return tag.to_bytes(tag_size(tag), "big") + encode_length(len(value)) + value


def encode_many(items: list[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(tag, value) for tag, value in items)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated tag")
    first = data[pos]
    tag, pos = first, pos + 1
    if first & 0x1F == 0x1F:
        for _ in range(2):
            if pos >= len(data):
                raise TlvError("truncated multi-byte tag")
            tag = tag << 8 | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                return tag, pos
        raise TlvError("tag longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length is not allowed")
    if count > 3:
        raise TlvError(f"{count}-byte length field is too long")
    if pos + count > len(data):
        raise TlvError("truncated length")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def decode(data: bytes, depth: int = 0) -> list[Tlv]:
    """Decode a sequence of TLVs that must fill ``data`` exactly."""
    if depth > MAX_DEPTH:
        raise TlvError(f"TLV nested deeper than {MAX_DEPTH}")
    items = []
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF):  # padding between objects, as ISO 7816-4 allows
            pos += 1
            continue
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise TlvError(f"tag {tag:X} claims {length} bytes but only {len(data) - pos} remain")
        items.append(Tlv(tag, bytes(data[pos : pos + length])))
        pos += length
    return items


def find(items: list[Tlv], tag: int) -> Tlv | None:
    return next((t for t in items if t.tag == tag), None)
