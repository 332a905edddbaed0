"""The sync batch's reader in C against the reference readers: one answer, on valid batches and damaged ones.

``protocols/fast_records.py`` may only say "these records" or "ask the reference"; whenever it says the
former, ``batch_from_wire`` and ``seal_items`` must say exactly the same. The batches are records of every
kind and version, then damaged one field at a time the way a careless or hostile till would.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.chain import canonical
from protocols.errors import GatewayError
from protocols.fast_records import read_batch, signed_bytes
from protocols.records import Benefit, RecordLine, Tender, TransactionRecord
from protocols.shifts import ShiftReport
from protocols.stored_value import TOPUP_SKU
from protocols.sync import batch_from_wire, seal_items

HEX64, HEX128 = "ab" * 32, "cd" * 64


def _sealed(**fields: Any) -> TransactionRecord:
    base = TransactionRecord(
        txn_id="01a20b44-d22e-7abc-8def-0123456789ab", terminal_id="T-1", seq=7, kind="sale",
        created_at="2026-11-24T01:00:00.000Z", store_id="S-1", merchant_id="M-1", currency="CNY",
        lines=(RecordLine("6901234567892", "Egg tart", "bakery", 2, 3800, 7600, 1140, 6460),),
        total_gross=7600, total_discount=1140, total_due=6460, tenders=(Tender("cash", 7000),), change=540,
        member_id="M0001", member_via="qr", points_earned=0, rulebook_version=1, offline=False,
        prev_hash=HEX64, hash=HEX64, signature=HEX128,
    )  # fmt: skip
    return dataclasses.replace(base, **fields)


V2_LINE = RecordLine(
    "SKU-9", "Coat 大衣", "fashion", 1, 120_000, 120_000, 13_000, 107_000, 0, 3_000, 1_070, 1_070, 3_000
)  # fmt: skip
NOTHING_MOVES: dict[str, Any] = {
    "lines": (), "total_gross": 0, "total_discount": 0, "total_due": 0, "tenders": (), "change": 0,
}  # fmt: skip
SAMPLES = [
    _sealed(),  # version 1, the form the fleet simulator sells
    _sealed(  # version 2: benefits per line, a tier, promo codes, a bank card, a price changed by hand
        version=2,
        member_tier="gold",
        lines=(dataclasses.replace(V2_LINE, list_price=130_000, merchant="M-9"),),
        total_gross=120_000,
        total_discount=13_000,
        total_due=107_000,
        change=0,
        tenders=(Tender("card", 107_000, "R1", "UnionPay", "622588******1234", "A1B2"),),
        points_earned=1_070,
        growth_earned=1_070,
        points_redeemed=3_000,
        coupons=("CPN-1",),
        benefits=(Benefit("tier", "gold", 10_000), Benefit("offset", "offset", 3_000)),
        promo_codes=("SPRING-26",),
        cashier="C1",
        approved_by="S.9",
        shift="shift-1",
        epoch=3,
        member_code="k1:n0nce",
    ),
    _sealed(  # a refund at another till
        version=2,
        kind="refund",
        refund_of="01a20b44-d22e-7abc-8def-0123456789ac",
        sale_terminal="T-2",
        lines=(dataclasses.replace(V2_LINE, refund_line=1),),
        total_gross=120_000,
        total_discount=13_000,
        total_due=107_000,
        tenders=(Tender("wechat", 107_000, "W-1", provider_txn="4200001"),),
        change=0,
        points_clawback=1_070,
        growth_clawback=1_070,
        points_returned=3_000,
        coupons_restored=("CPN-1",),
    ),
    _sealed(  # a join: its member and nothing else
        version=2,
        kind="join",
        **NOTHING_MOVES,
        member_id="J-T-1-4",
        joined="phone:" + "A" * 22,
    ),
    _sealed(  # a top-up with a bonus, paid with Alipay
        version=2,
        kind="topup",
        lines=(RecordLine(TOPUP_SKU, "Top-up", TOPUP_SKU, 1, 50_000, 50_000, 0, 50_000),),
        total_gross=50_000,
        total_discount=0,
        total_due=50_000,
        tenders=(Tender("alipay", 50_000, "A-1"),),
        change=0,
        bonus=5_000,
    ),
    _sealed(tenders=(Tender("giftcard", 6_460, card="GC123456789012"),), change=0),  # a gift card pays
    _sealed(  # a shift's open: the reference reads it (shift reports are rare)
        version=2,
        kind="shift_open",
        **NOTHING_MOVES,
        member_id=None,
        member_via=None,
        cashier="C1",
        shift="s1",
        shift_report=ShiftReport(100),
    ),
]
LENGTHS = (0, 1, 3, 12, 22, 31, 32, 33, 36, 63, 64, 65, 128, 129, 200, 201, 4096, 4097)
BOUNDS = (0, 1, 20, 100, 500, 501, 100_000, 100_001, 10**6, 10**10, 10**12, 10**15, 2**53)
VALUES: list[object] = [
    None, True, False, 25.0, "", [], {}, ["x"], [{}], {"kind": "cash"}, "sale", "refund", "join", "topup",
    "no_sale", "cash", "giftcard", "tier", "T-1", "A1\n", "CPN-1", "GC123456789012", "2026-11-24T01:00:00Z",
    "a" * 64, "f" * 128, "x:y", "PHONE:" + "A" * 22, "phone:" + "A" * 22, "SPRING-26", "spring-26",
    *("x" * n for n in LENGTHS), *(b + d for b in BOUNDS for d in (-1, 0, 1)), -(2**53), 2**53 + 1,
]  # fmt: skip


def _batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"terminal_id": "T-1", "records": records}


def _reference(data: object) -> tuple[list[TransactionRecord], list[tuple[str, str, str, bytes]]] | None:
    try:
        _, records = batch_from_wire(data)
    except GatewayError:
        return None
    _, items = seal_items(data)
    assert items is not None, "the reference readers disagree"
    return records, items


def _places(wire: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object of a record: itself, its lines, tenders and benefits."""
    return [wire, *(x for key in ("lines", "tenders", "benefits") for x in wire.get(key, []))]


_DROP = object()  # the key taken away


def _near(value: object) -> list[object]:
    """Values beside a field's own: one more and one less, its text with a newline after or a letter changed."""
    if type(value) is int:
        return [value - 1, value + 1, float(value)]
    if isinstance(value, str):
        return [value + "\n", "\n" + value, value.upper(), value.lower(), value + "x", value[:-1], value + "é"]
    if isinstance(value, list):
        return [value * 21, value[:-1], [*value, None], [*value, 1]]
    return []


def damaged(wire: dict[str, Any]) -> list[dict[str, Any]]:
    """Every one-key damage to one of the record's objects: a key taken away, changed (to a value near its
    own or any of :data:`VALUES`) or added (a key the record's other objects or version have, or none)."""
    out: list[dict[str, Any]] = []
    known = {k for place in _places(wire) for k in place} | {"member_tier", "offset", "epoch", "surprise", "version"}
    for at in range(len(_places(wire))):
        for key in sorted(known):
            present = key in _places(wire)[at]
            for value in [*_near(_places(wire)[at].get(key)), *VALUES, *([_DROP] if present else [])]:
                copy = json.loads(json.dumps(wire))
                place = _places(copy)[at]
                if value is _DROP:
                    del place[key]
                else:
                    place[key] = value
                out.append(copy)
    return out


def test_every_sample_is_a_valid_record() -> None:
    for r in SAMPLES:
        assert TransactionRecord.from_wire(r.to_wire()) == r


def test_ordinary_batches_are_read_fast_and_read_alike() -> None:
    ordinary = [r for r in SAMPLES if r.shift_report is None]
    data = _batch([json.loads(json.dumps(r.to_wire())) for r in ordinary])
    fast = read_batch(data)
    assert fast is not None  # the fast reader really reads them: the property below is not vacuous
    assert (fast[1], fast[2]) == _reference(data)
    assert fast[1] == ordinary


def test_a_shift_report_goes_to_the_reference() -> None:
    shift = next(r for r in SAMPLES if r.shift_report is not None)
    data = _batch([json.loads(json.dumps(shift.to_wire()))])
    assert read_batch(data) is None
    assert _reference(data) is not None


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda r: f"{r.kind}-v{r.version}")
def test_a_damaged_record_read_fast_is_read_alike(sample: TransactionRecord) -> None:
    read_fast = 0
    for wire in damaged(json.loads(json.dumps(sample.to_wire()))):
        data = _batch([wire])
        fast = read_batch(data)
        if fast is not None:
            read_fast += 1
            assert _reference(data) == (fast[1], fast[2]), wire
    assert read_fast or sample.shift_report is not None  # some damage is harmless: the fast reader did read


def test_a_batch_is_read_fast_alike_whatever_its_order() -> None:
    ordinary = [json.loads(json.dumps(r.to_wire())) for r in SAMPLES if r.shift_report is None]
    for records in (ordinary[::-1], ordinary * 2, ordinary[1:3]):
        fast = read_batch(_batch(records))
        assert fast is not None
        assert _reference(_batch(records)) == (fast[1], fast[2])


@settings(max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(SAMPLES), st.sampled_from(["terminal_id", "records", "surprise"]), st.sampled_from(VALUES))
def test_a_damaged_envelope_read_fast_is_read_alike(r: TransactionRecord, key: str, value: object) -> None:
    data: dict[str, Any] = _batch([json.loads(json.dumps(r.to_wire()))])
    data[key] = value
    fast = read_batch(data)
    if fast is not None:
        assert _reference(data) == (fast[1], fast[2])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, derandomize=True, deadline=None, database=None)
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_the_signed_bytes_are_python_s_canonical_json(value: dict[str, Any]) -> None:
    """What a record read fast can hold (no floats) encodes to the bytes the till signed with ``json``."""
    assert signed_bytes(value) == canonical(value)
