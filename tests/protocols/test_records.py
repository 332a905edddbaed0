import dataclasses
import json

import pytest

from protocols.chain import GENESIS, canonical, link, with_chain
from protocols.errors import SchemaError
from protocols.records import RecordLine, Tender, TransactionRecord
from protocols.sync import SyncReply, SyncResult, batch_from_wire, batch_to_wire, seal_items


def record(**changes: object) -> TransactionRecord:
    base = TransactionRecord(
        txn_id="01a20b44-d22e-7abc-8def-0123456789ab",
        terminal_id="T-1",
        seq=1,
        kind="sale",
        created_at="2026-11-24T01:00:00.000Z",
        store_id="S-1",
        merchant_id="M-1",
        currency="CNY",
        lines=(RecordLine("6901234567892", "Egg tart", "bakery", 2, 3800, 7600, 1140, 6460),),
        total_gross=7600,
        total_discount=1140,
        total_due=6460,
        tenders=(Tender("cash", 7000),),
        change=540,
        member_id="M0001",
        member_via="qr",
        points_earned=0,
        rulebook_version=1,
        offline=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_wire_round_trip() -> None:
    r = record()
    assert TransactionRecord.from_wire(r.to_wire()) == r


def test_every_problem_is_reported_together() -> None:
    wire = record().to_wire()
    wire["seq"] = 0
    wire["currency"] = "cny"
    wire["surprise"] = True
    del wire["store_id"]
    with pytest.raises(SchemaError) as err:
        TransactionRecord.from_wire(wire)
    joined = "\n".join(err.value.problems)
    assert "seq: must be at least 1" in joined
    assert "currency" in joined
    assert "surprise: unknown key" in joined
    assert "store_id: is required" in joined


@pytest.mark.parametrize(
    "change",
    [
        {"total_due": 6461},
        {"change": 541},
        {"total_discount": 1},
        {"lines": (RecordLine("x", "x", "c", 2, 3800, 7601, 1141, 6460),)},
    ],
)
def test_sums_that_do_not_add_up_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(SchemaError, match=r"add up|equal|not total_due"):
        TransactionRecord.from_wire(record(**change).to_wire())


def test_batch_refuses_records_of_another_terminal() -> None:
    wire = batch_to_wire("T-1", [record(), record(terminal_id="T-2", seq=2)])
    with pytest.raises(SchemaError, match="problem"):
        batch_from_wire(wire)
    terminal, records = batch_from_wire(batch_to_wire("T-1", [record()]))
    assert terminal == "T-1"
    assert records == [record()]


def test_sync_reply_round_trip_and_garbage() -> None:
    reply = SyncReply((SyncResult("a", 1, "accepted"), SyncResult("b", 2, "rejected", "why")), 1)
    assert SyncReply.from_wire(reply.to_wire()) == reply
    with pytest.raises(SchemaError):
        SyncReply.from_wire({"results": [{"txn_id": "a", "seq": 1, "status": "maybe"}], "high_seq": -1})
    with pytest.raises(SchemaError):
        SyncReply.from_wire("<html>")


def test_seal_items_read_the_bytes_signed_before_the_schema_reads_the_batch() -> None:
    wire = batch_to_wire("T-1", [record()])
    wire["records"][0].update(prev_hash="00" * 32, hash="ab" * 32, signature="cd" * 64)
    claimed, items = seal_items(wire)
    assert claimed == "T-1"
    assert items == [("00" * 32, "ab" * 32, "cd" * 64, canonical(wire["records"][0]))]
    del wire["records"][0]["signature"]
    assert seal_items(wire)[1] == [("00" * 32, "ab" * 32, "", canonical(wire["records"][0]))]  # "unsigned" later
    assert seal_items({"terminal_id": "T 1", "records": []}) == (None, [])  # not an id: no key looked up
    assert seal_items({"terminal_id": "T-1", "records": [7]}) == ("T-1", None)  # the schema says what is wrong
    assert seal_items({"terminal_id": "T-1", "records": [{}] * 201}) == ("T-1", None)
    assert seal_items([]) == (None, None)


def test_a_record_kept_as_received_hashes_to_exactly_what_was_signed() -> None:
    """The ledger keeps a record as its canonical bytes with the chain fields put back (``with_chain``): taking
    them off again gives the very bytes that were hashed, whatever the till wrote (an integer as 25.0, text
    beyond ASCII), so an auditor checks the signature on what is stored."""
    wire = {"txn_id": "t-1", "total_due": 25.0, "lines": [{"name": "蛋挞", "qty": 1}], "member_id": None}
    body = canonical(wire)
    digest = link(GENESIS, body)
    kept = json.loads(with_chain(body, GENESIS.hex(), digest.hex(), "ab" * 64))
    assert canonical(kept) == body
    assert (kept["prev_hash"], kept["hash"], kept["signature"]) == (GENESIS.hex(), digest.hex(), "ab" * 64)
    assert json.loads(with_chain(b"{}", "p", "h", "s")) == {"prev_hash": "p", "hash": "h", "signature": "s"}
    with pytest.raises(ValueError, match="JSON object"):
        with_chain(b"[1]", "p", "h", "s")
