"""A sync batch of ordinary records, read in C. Sans I/O.

msgspec converts the batch's records straight into :class:`TransactionRecord` (its fields carry their own
bounds, ``protocols/records.py``) and encodes each record's signed bytes, about ten times faster than the
reference readers in ``protocols/sync.py`` (``batch_from_wire``, which names every problem of every record,
and ``seal_items``). It only ever says yes or "ask the reference": :func:`read_batch` answers ``None`` for
anything out of the ordinary — a field of another JSON type (``25.0`` for 25), a key a record's version
does not have, a shift report, an empty batch, any problem at all — and the caller reads that batch the
reference way, which reports it (or accepts it) as it always did. So this module can never accept what the
reference refuses, nor read a record differently: a property test holds the two to one answer on valid
batches and on every kind of damage to them (``tests/protocols/test_fast_records.py``).

The signed bytes: ``canonical_json`` is Python's ``json.dumps`` (keys sorted, no spaces, UTF-8); msgspec's
sorted encoding gives the same bytes for what a record read here can hold (strings, integers within 2**53,
booleans, null, lists and objects; no floats), which the property test checks too.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from protocols.chain import CHAIN_FIELDS
from protocols.records import (
    ID_PATTERN,
    V2_LINE_KEYS,
    V2_RECORD_KEYS,
    Benefit,
    RecordLine,
    Tender,
    TransactionRecord,
    check_record,
)
from protocols.schema import Problems
from protocols.sync import MAX_BATCH

SealItem = tuple[str, str, str, bytes]  # prev_hash, hash, signature, the bytes they seal

_V2_RECORD_KEYS: Final = frozenset(TransactionRecord.__dataclass_fields__)
_RECORD_KEYS: Final = _V2_RECORD_KEYS - V2_RECORD_KEYS
_V2_LINE_KEYS: Final = frozenset(RecordLine.__dataclass_fields__)
_LINE_KEYS: Final = _V2_LINE_KEYS - V2_LINE_KEYS
_TENDER_KEYS: Final = frozenset(Tender.__dataclass_fields__)
_BENEFIT_KEYS: Final = frozenset(Benefit.__dataclass_fields__)
_ID: Final = re.compile(ID_PATTERN)
_CHAIN: Final = frozenset(CHAIN_FIELDS)
_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_RECORDS: Final = list[TransactionRecord]


def read_batch(data: object) -> tuple[str, list[TransactionRecord], list[SealItem]] | None:
    """A batch's terminal, its records and what each record's seal covers; ``None``: read it the reference way."""
    if type(data) is not dict or data.keys() != {"terminal_id", "records"}:
        return None
    terminal_id, wires = data["terminal_id"], data["records"]
    if type(terminal_id) is not str or _ID.fullmatch(terminal_id) is None:
        return None
    if type(wires) is not list or not 0 < len(wires) <= MAX_BATCH or not all(_plain(w) for w in wires):
        return None
    try:
        records = msgspec.convert(wires, _RECORDS)
    except msgspec.ValidationError:
        return None
    problems = Problems("sync batch")
    for record in records:
        check_record(record, problems)
        if problems.items or record.terminal_id != terminal_id:
            return None
    return terminal_id, records, [_seal_item(w) for w in wires]


def _plain(wire: object) -> bool:
    """Whether ``wire`` is a record object holding only the keys its version has, and no shift report (a
    shift's reports are rare: the reference reads them). Types and bounds are msgspec's to check."""
    if type(wire) is not dict:
        return False
    v2 = wire.get("version") == 2 and type(wire["version"]) is int
    if not wire.keys() <= (_V2_RECORD_KEYS if v2 else _RECORD_KEYS) or wire.get("shift_report") is not None:
        return False
    return (
        _objects(wire.get("lines", []), _V2_LINE_KEYS if v2 else _LINE_KEYS)
        and _objects(wire.get("tenders", []), _TENDER_KEYS)
        and _objects(wire.get("benefits", []), _BENEFIT_KEYS)
    )


def _objects(items: object, keys: frozenset[str]) -> bool:
    return type(items) is list and all(type(item) is dict and item.keys() <= keys for item in items)


def _seal_item(wire: dict[str, Any]) -> SealItem:
    return wire.get("prev_hash", ""), wire.get("hash", ""), wire.get("signature", ""), signed_bytes(wire)


def signed_bytes(wire: dict[str, Any]) -> bytes:
    """``protocols.chain.canonical`` in C, for a record read here: the same bytes (see the module docstring)."""
    return _ENCODER.encode({k: v for k, v in wire.items() if k not in _CHAIN})
